// The sales: the busy ones first (selling, units coming back, orders not yet written), then
// a page of all of them, filtered by status, start time and title words, 50 at a time. A row
// opens the sale. Both lists come from GET /admin/sales and refresh every 5 s, so 10,000
// sales cost the same as 50: only the shown page is read.

import { admin, explain, when, el } from "./api.js";
import { money, status } from "./words.js";

const PAGE = 50;
let open = () => {};
let cursors = [null]; // `before` of each page seen, for going back
let page = 0;

export function init(onOpen) {
  open = onOpen;
  const form = document.getElementById("filters");
  form.addEventListener("submit", (e) => { e.preventDefault(); cursors = [null]; page = 0; refresh(); });
  form.addEventListener("change", () => { cursors = [null]; page = 0; refresh(); });
  document.getElementById("next-page").addEventListener("click", () => { page += 1; refresh(); });
  document.getElementById("prev-page").addEventListener("click", () => { page = Math.max(0, page - 1); refresh(); });
}

function filterQuery() {
  const f = new FormData(document.getElementById("filters"));
  const from = f.get("starts_from"), to = f.get("starts_to");
  document.getElementById("filter-note").textContent =
    from && to && new Date(from) > new Date(to) ? "“Starting from” is after “to”: nothing can match." : "";
  const q = new URLSearchParams({ limit: PAGE });
  if (f.get("status")) q.set("status", f.get("status"));
  if (f.get("q")) q.set("q", f.get("q").trim());
  for (const name of ["starts_from", "starts_to"]) {
    if (f.get(name)) q.set(name, new Date(f.get(name)).toISOString().replace(/\.\d+Z$/, "Z"));
  }
  if (cursors[page]) q.set("before", cursors[page]);
  return q;
}

export async function refresh() {
  const [busy, list] = await Promise.all([
    admin("GET", "/admin/sales?busy=1&limit=20"),
    admin("GET", `/admin/sales?${filterQuery()}`),
  ]);
  const status = document.getElementById("list-status");
  if (list.status !== 200) {
    status.textContent = `Could not list the sales: ${explain(list)}`;
    status.className = "bad";
    return;
  }
  status.className = "";
  cursors[page + 1] = list.body.next_before;
  status.textContent = `${list.body.total} sale${list.body.total === 1 ? "" : "s"} match; page ${page + 1}.`;
  document.getElementById("next-page").disabled = !list.body.next_before;
  document.getElementById("prev-page").disabled = page === 0;
  fill("all-sales", list.body.sales);
  const busySales = busy.status === 200 ? busy.body.sales : [];
  document.getElementById("busy-count").textContent = busy.status === 200 ? busy.body.busy : "?";
  document.getElementById("busy").hidden = busySales.length === 0;
  fill("busy-sales", busySales);
}

// The status a person reads: the API's status, with paused and unlisted said too.
export function badge(s) {
  const words = [status(s.status)];
  if (s.paused && s.status !== "paused" && s.status !== "ended") words.push("paused");
  if (!s.listed) words.push("unlisted");
  return el("span", { className: `badge ${s.status}` }, words.join(" · "));
}

function fill(tableId, sales) {
  const body = document.querySelector(`#${tableId} tbody`);
  body.replaceChildren(...sales.map((s) => {
    const title = el("a", { href: `#sale-${s.id}`, textContent: s.title });
    title.addEventListener("click", (e) => { e.preventDefault(); open(s.id); });
    const tr = el("tr", { className: s.busy ? "busy" : "" },
      el("td", null, String(s.id)), el("td", null, title), el("td", null, badge(s)),
      el("td", null, when(s.starts_ms)), el("td", { className: "wide-only" }, when(s.ends_ms)),
      el("td", { className: "num" }, `${(s.stock_left ?? "?").toLocaleString()} / ${s.stock.toLocaleString()}`),
      el("td", { className: "num" }, s.orders.toLocaleString()),
      el("td", { className: "num wide-only" }, s.paid.toLocaleString()),
      el("td", { className: "num wide-only" }, s.queue === "none" ? "–" : s.waiting.toLocaleString()),
      el("td", { className: "num wide-only" }, money(s.price_cents)));
    tr.addEventListener("dblclick", () => open(s.id));
    return tr;
  }));
  if (!sales.length) body.append(el("tr", null, el("td", { colSpan: 10, className: "empty" }, "No sales here.")));
}
