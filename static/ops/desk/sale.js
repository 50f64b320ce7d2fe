// One sale, opened from the list: its settings and numbers (every 2 s), a chart of its stock
// left, orders, paid and waiting, and what an operator does to it: change it, pause and
// resume, end it now, publish it, check it against MariaDB (reconcile), open its shop page.

import { admin, explain, when, el } from "./api.js";
import { money, minutes } from "./words.js";
import { Chart } from "./charts.js";
import { badge } from "./sales.js";
import * as form from "./form.js";

let current = null; // the sale as last read
let chart = null;
let changed = () => {};

export function init(onChanged) {
  changed = onChanged;
  chart = new Chart(document.getElementById("chart-sale"), "");
  const on = (id, f) => document.getElementById(id).addEventListener("click", f);
  on("sale-edit", () => current && form.openEdit(current));
  on("sale-pause", () => act("pause", "Paused: every edge refuses it within a second; its page says so."));
  on("sale-resume", () => act("resume", current && current.starts_ms > Date.now()
    ? "Resumed: buying opens at the start." : "Resumed: buying is open again."));
  on("sale-publish", () => act("publish", "Published: the storefront lists it within a second."));
  on("sale-unpublish", () => unpublish());
  on("sale-end", () => {
    if (current && confirm(`End “${current.title}” now? Shoppers are refused at once; orders taken stay.`)) {
      act("end", current.starts_ms > Date.now()
        ? "Called off: it will not open." : "Ended: shoppers are refused; unpaid orders expire as usual.");
    }
  });
  on("sale-reconcile", reconcile);
  on("sale-close", close);
}

export async function open(id) {
  if (!current || current.id !== id) chart.reset();
  current = { id };
  document.getElementById("sale-panel").hidden = false;
  say("");
  document.getElementById("reconcile-result").replaceChildren();
  await refresh();
  document.getElementById("sale-panel").scrollIntoView({ block: "start" });
  if (location.hash !== `#sale-${id}`) history.pushState(null, "", `#sale-${id}`);
}

export function close() {
  current = null;
  document.getElementById("sale-panel").hidden = true;
  if (location.hash) history.pushState(null, "", location.pathname);
}

async function unpublish() {
  const r = await admin("PATCH", `/admin/sales/${current.id}`, { listed: false });
  if (r.status === 200) {
    say("Taken off the storefront (its page still works for those who have the link).", "ok");
    await refresh();
    changed();
  } else {
    say(`Could not take it off the storefront: ${explain(r)}`, "bad");
  }
}

export const openId = () => current && current.id;

function say(text, cls = "") {
  const p = document.getElementById("sale-message");
  p.textContent = text;
  p.className = cls;
}

export async function refresh() {
  if (!current) return;
  const r = await admin("GET", `/admin/sales/${current.id}`);
  if (r.status !== 200) {
    say(`Could not read sale ${current.id}: ${explain(r)}`, "bad");
    return;
  }
  current = r.body;
  render(current);
  chart.push(Date.now(), {
    "stock left": current.stock_left, orders: current.orders, paid: current.paid,
    ...(current.queue === "none" ? {} : { waiting: current.waiting }),
  });
}

function render(s) {
  document.getElementById("sale-title").textContent = `${s.title} (sale ${s.id})`;
  document.getElementById("sale-badge").replaceChildren(badge(s));
  const facts = [
    ["Starts", when(s.starts_ms)], ["Ends", when(s.ends_ms)],
    ["Price", money(s.price_cents)],
    ["Stock left", `${(s.stock_left ?? "?").toLocaleString()} of ${s.stock.toLocaleString()}`],
    ["Orders", s.orders.toLocaleString()], ["Paid", s.paid.toLocaleString()],
    ["Per customer", s.per_user_limit], ["Pay within", minutes(s.pay_window_s)],
    ["Waiting room", s.queue === "none" ? "none" : `${s.queue === "fifo" ? "first come, first served" : "random draw"}, ${s.waiting.toLocaleString()} waiting`],
    ["Busy now", s.busy ? "yes (selling, units coming back, or orders being written)" : "no"],
    ["Storefront", s.listed ? "listed" : "not listed (Publish lists it)"],
  ];
  document.getElementById("sale-facts").replaceChildren(...facts.flatMap(([k, v]) =>
    [el("dt", null, k), el("dd", null, String(v))]));
  const ended = s.status === "ended";
  const show = (id, yes) => { document.getElementById(id).hidden = !yes; };
  show("sale-pause", !ended && !s.paused);
  show("sale-resume", !ended && s.paused);
  show("sale-end", !ended);
  show("sale-publish", !ended && !s.listed);
  show("sale-unpublish", !ended && s.listed);
  show("sale-edit", !ended);
  document.getElementById("sale-shop").href = `/sales/${s.id}/`;
}

async function act(what, success) {
  const id = current.id;
  const r = await admin("POST", `/admin/sales/${id}/${what}`);
  if (r.status === 200) {
    say(success, "ok");
    await refresh();
    changed();
  } else {
    say(`Could not ${what} sale ${id}: ${explain(r)}`, "bad");
  }
}

async function reconcile() {
  const box = document.getElementById("reconcile-result");
  box.replaceChildren(el("p", null, "Checking Redis against MariaDB…"));
  const r = await admin("POST", `/admin/reconcile?sale=${current.id}`);
  if (r.status !== 200) {
    box.replaceChildren(el("p", { className: "bad" }, `The check failed: ${explain(r)}`));
    return;
  }
  const c = r.body.sales[0] || {};
  const money = r.body.money;
  box.replaceChildren(
    el("p", { className: r.body.ok ? "ok" : "bad" }, r.body.ok
      ? "In agreement: Redis and MariaDB count the same units, and every order's money adds up."
      : "Not in agreement — see below; “Repair” makes Redis follow MariaDB."),
    el("details", null, el("summary", null, "The figures"), el("pre", null, JSON.stringify({ sale: c, money }, null, 1))));
  if (!r.body.ok) {
    const repair = el("button", { type: "button", textContent: "Repair" });
    repair.addEventListener("click", async () => {
      const fix = await admin("POST", `/admin/reconcile?sale=${current.id}&repair=1`);
      box.append(el("p", { className: fix.status === 200 && fix.body.ok ? "ok" : "bad" },
        fix.status === 200 ? (fix.body.ok ? "Repaired." : "Still not in agreement after the repair.") : explain(fix)));
    });
    box.append(repair);
  }
}
