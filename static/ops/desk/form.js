// The sale form, for a new sale and for changing one. Inputs are named by the API's fields
// (price and the payment window are asked in units people use and converted); a refusal
// naming a field is shown next to that field, anything else above the buttons. Changing a
// sale sends only the fields that changed; once a sale has started only the fields the API
// still accepts (title, description, picture, end, listed) stay editable.

import { admin, explain } from "./api.js";

const AFTER_START = ["title", "description", "image_url", "ends_at", "listed"];
let editing = null; // the sale being changed, or null for a new one
let done = () => {};

const form = () => document.getElementById("sale-form");
const input = (name) => form().elements.namedItem(name);

export function init(onDone) {
  done = onDone;
  form().addEventListener("submit", (e) => { e.preventDefault(); submit(); });
  input("start_now").addEventListener("change", () => {
    input("starts_at").disabled = input("start_now").checked;
    if (input("start_now").checked) input("starts_at").value = "";
  });
  input("queue").addEventListener("change", queueFields);
  document.getElementById("form-cancel").addEventListener("click", () => close());
}

// What speed buys in each mode, said where the operator picks it (docs/waiting-room.md).
const QUEUE_NOTES = {
  random: "Everyone who joins before the start (plus the draw delay) is placed by a draw: a script that reads the captcha in 30 ms has the same chance as a person who takes 5 s.",
  fifo: "First come, first served by arrival in the line, which opens 15 minutes before the start: scripts that join at that second take the first places.",
  none: "A race at the start: the fastest clients win. A script reads the captcha in ~30 ms and buys at the exact second; a person needs 2–10 s. Bots will take most of a popular sale.",
};

function queueFields() {
  const mode = input("queue").value;
  document.getElementById("queue-note").textContent = QUEUE_NOTES[mode] || "";
  for (const name of ["admit_multiple", "admit_ttl_s"]) input(name).closest("label").hidden = mode === "none";
  input("queue_grace_s").closest("label").hidden = mode !== "random";
}

// A datetime-local value for epoch ms, in this browser's time zone.
function local(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 19);
}

export function openNew() {
  editing = null;
  form().reset();
  const start = Date.now() + 10 * 60000;
  input("starts_at").value = local(start - start % 60000);
  input("ends_at").value = local(start - start % 60000 + 3600000);
  input("starts_at").disabled = false;
  for (const i of form().elements) if (i.name) i.disabled = false;
  input("listed").checked = true;
  show("New sale", "Create sale");
}

export function openEdit(sale) {
  editing = sale;
  form().reset();
  const f = form().elements;
  f.title.value = sale.title;
  f.description.value = sale.description || "";
  f.image_url.value = sale.image_url || "";
  f.price.value = (sale.price_cents / 100).toFixed(2);
  f.stock.value = sale.stock;
  f.per_user_limit.value = sale.per_user_limit;
  f.pay_window_min.value = Math.round(sale.pay_window_s / 60 * 100) / 100;
  f.starts_at.value = local(sale.starts_ms);
  f.ends_at.value = local(sale.ends_ms);
  f.queue.value = sale.queue;
  f.queue_grace_s.value = sale.queue_grace_s ?? 0;
  f.admit_multiple.value = sale.admit_multiple;
  f.admit_ttl_s.value = sale.admit_ttl_s;
  f.listed.checked = sale.listed;
  const started = sale.starts_ms <= Date.now();
  for (const i of form().elements) {
    if (!i.name) continue;
    const field = fieldOf(i.name);
    i.disabled = started && !AFTER_START.includes(field);
  }
  document.getElementById("form-note").textContent = started
    ? "This sale has started: only its title, description, picture, end and listing can change."
    : "Before the start every field can change.";
  show(`Change sale ${sale.id}`, "Save changes");
}

function show(heading, button) {
  document.getElementById("form-heading").textContent = heading;
  document.getElementById("form-submit").textContent = button;
  if (!editing) document.getElementById("form-note").textContent = "A start in the past is refused unless you tick “start now”.";
  clearErrors();
  queueFields();
  document.getElementById("form-panel").hidden = false;
  input("title").focus();
}

export function close() {
  document.getElementById("form-panel").hidden = true;
}

// The input an API field is asked through.
const INPUT_OF = { price_cents: "price", pay_window_s: "pay_window_min" };
const fieldOf = (name) => ({ price: "price_cents", pay_window_min: "pay_window_s", start_now: "starts_at" })[name] || name;

function clearErrors() {
  for (const e of form().querySelectorAll(".field-error")) e.textContent = "";
  for (const i of form().querySelectorAll("[aria-invalid]")) i.removeAttribute("aria-invalid");
  document.getElementById("form-error").textContent = "";
}

// The names people read, for the API's fields.
const LABELS = { title: "Title", description: "Description", image_url: "Picture URL",
  price_cents: "Price", stock: "Stock", per_user_limit: "Per customer",
  pay_window_s: "Pay within", starts_at: "Starts", ends_at: "Ends", queue: "Waiting room",
  queue_grace_s: "Draw after", admit_multiple: "Admissions per unit left",
  admit_ttl_s: "Admission lasts", listed: "List on the storefront" };

// Marks `field` wrong with `text` (the field's label first); the first marked gets the focus.
function mark(field, text) {
  const name = INPUT_OF[field] || field;
  const box = form().querySelector(`.field-error[data-for="${name}"]`);
  if (!box) return false;
  box.textContent = `${LABELS[field] || field}: ${text}`;
  input(name).setAttribute("aria-invalid", "true");
  if (box === form().querySelector(".field-error:not(:empty)")) input(name).focus();
  return true;
}

// The API's refusal, said with the form's words (its units are cents and seconds).
function showError(r) {
  const field = r.body.field;
  let text = (r.body.message || "").replace(/^[a-z_]+: /, "");
  if (field === "starts_at" && /past/.test(text)) text = "this is in the past: pick a later time, or tick “Start now”";
  else if (field === "price_cents") text = "enter an amount from 0.00 to 1,000,000,000.00";
  else if (field === "pay_window_s") text = "from 1 second to 1,440 minutes";
  if (!field || !mark(field, text)) document.getElementById("form-error").textContent = explain(r);
}

// What can be told before asking the server: every problem at once, each at its field.
// Returns true when nothing is wrong.
function check() {
  const f = form().elements;
  const on = (name) => !f[name].disabled && !f[name].closest("[hidden]");
  const whole = (v, lo, hi) => /^\d+$/.test(v.trim()) && Number(v) >= lo && Number(v) <= hi;
  const problems = [];
  if (on("title") && !f.title.value.trim()) problems.push(["title", "give it a title"]);
  if (on("price")) {
    const p = f.price.value.trim().replace(",", ".");
    if (!/^\d+(\.\d{1,2})?$/.test(p)) problems.push(["price_cents", "enter an amount like 19.99"]);
    else if (Number(p) > 1e9) problems.push(["price_cents", "at most 1,000,000,000.00"]);
  }
  if (on("stock") && !whole(f.stock.value, 1, 10000000)) problems.push(["stock", "a whole number from 1 to 10,000,000"]);
  if (on("per_user_limit") && !whole(f.per_user_limit.value, 1, 30)) problems.push(["per_user_limit", "a whole number from 1 to 30"]);
  if (on("pay_window_min")) {
    const m = Number(f.pay_window_min.value.replace(",", "."));
    if (!(m * 60 >= 1 && m <= 1440)) problems.push(["pay_window_s", "from 1 second to 1,440 minutes"]);
  }
  const starts = f.start_now.checked ? Date.now() : Date.parse(f.starts_at.value);
  if (on("start_now") && !f.start_now.checked) {
    if (!f.starts_at.value) problems.push(["starts_at", "pick a time, or tick “Start now”"]);
    else if (starts < Date.now() - 5000 && (!editing || starts !== editing.starts_ms)) {
      problems.push(["starts_at", "this is in the past: pick a later time, or tick “Start now”"]);
    }
  }
  if (on("ends_at")) {
    const ends = Date.parse(f.ends_at.value);
    if (!f.ends_at.value) problems.push(["ends_at", "pick a time"]);
    else if (ends <= starts) problems.push(["ends_at", "must be after the start"]);
    else if (ends <= Date.now()) problems.push(["ends_at", "this is in the past"]);
  }
  const url = f.image_url.value.trim();
  if (on("image_url") && url && !/^(\/|https:\/\/)/.test(url)) {
    problems.push(["image_url", "a path on this site (/assets/...) or an https:// address"]);
  }
  if (on("admit_multiple") && !whole(f.admit_multiple.value, 1, 10)) problems.push(["admit_multiple", "a whole number from 1 to 10"]);
  if (on("admit_ttl_s") && !whole(f.admit_ttl_s.value, 10, 3600)) problems.push(["admit_ttl_s", "from 10 to 3,600 seconds"]);
  if (on("queue_grace_s") && !whole(f.queue_grace_s.value, 0, 3600)) problems.push(["queue_grace_s", "from 0 to 3,600 seconds"]);
  for (const [field, text] of problems) mark(field, text);
  return problems.length === 0;
}

// The body the API is sent: every field of a new sale; only the changed ones of a change.
function body() {
  const f = form().elements;
  const time = (v) => v ? new Date(v).toISOString().replace(/\.\d+Z$/, "Z") : v;
  const number = (v) => v === "" ? v : Number(v);
  const all = {
    title: f.title.value.trim(),
    description: f.description.value.trim() || null,
    image_url: f.image_url.value.trim() || null,
    price_cents: f.price.value === "" ? "" : Math.round(Number(f.price.value.trim().replace(",", ".")) * 100),
    stock: number(f.stock.value),
    per_user_limit: number(f.per_user_limit.value),
    pay_window_s: f.pay_window_min.value === "" ? "" : Math.round(Number(f.pay_window_min.value.replace(",", ".")) * 60),
    starts_at: f.start_now.checked ? "now" : time(f.starts_at.value),
    ends_at: time(f.ends_at.value),
    queue: f.queue.value,
    listed: f.listed.checked,
  };
  if (all.queue !== "none") {
    all.admit_multiple = number(f.admit_multiple.value);
    all.admit_ttl_s = number(f.admit_ttl_s.value);
  }
  if (all.queue === "random") all.queue_grace_s = number(f.queue_grace_s.value);
  if (!editing) {
    for (const k of Object.keys(all)) if (all[k] === null) delete all[k];
    return all;
  }
  const s = editing;
  const before = {
    title: s.title, description: s.description || null, image_url: s.image_url || null,
    price_cents: s.price_cents, stock: s.stock, per_user_limit: s.per_user_limit,
    pay_window_s: s.pay_window_s, starts_at: s.starts_at, ends_at: s.ends_at, queue: s.queue,
    listed: s.listed, admit_multiple: s.admit_multiple, admit_ttl_s: s.admit_ttl_s,
    queue_grace_s: s.queue_grace_s ?? 0,
  };
  const changed = {};
  for (const [k, v] of Object.entries(all)) {
    const input = form().elements.namedItem(k === "starts_at" ? "start_now" : INPUT_OF[k] || k);
    if (input && input.disabled) continue;
    if (k === "starts_at" && !f.start_now.checked && Date.parse(v) === s.starts_ms) continue;
    if (k === "ends_at" && Date.parse(v) === s.ends_ms) continue;
    if (v !== before[k]) changed[k] = v;
  }
  return changed;
}

async function submit() {
  clearErrors();
  if (!check()) return;
  const b = body();
  if (editing && !Object.keys(b).length) {
    document.getElementById("form-error").textContent = "Nothing changed.";
    return;
  }
  const button = document.getElementById("form-submit");
  button.disabled = true;
  const r = editing
    ? await admin("PATCH", `/admin/sales/${editing.id}`, b)
    : await admin("POST", "/admin/sales", b);
  button.disabled = false;
  if (r.status === 200 || r.status === 201) {
    close();
    done(r.body, editing ? "changed" : "created");
  } else {
    showError(r);
  }
}
