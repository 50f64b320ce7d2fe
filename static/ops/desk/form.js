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
  });
  input("queue").addEventListener("change", queueFields);
  document.getElementById("form-cancel").addEventListener("click", () => close());
}

function queueFields() {
  const mode = input("queue").value;
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

function showError(r) {
  const field = r.body.field;
  const name = INPUT_OF[field] || field;
  const box = name && form().querySelector(`.field-error[data-for="${name}"]`);
  if (box) {
    box.textContent = r.body.message;
    input(name).setAttribute("aria-invalid", "true");
    input(name).focus();
  } else {
    document.getElementById("form-error").textContent = explain(r);
  }
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
    price_cents: f.price.value === "" ? "" : Math.round(Number(f.price.value) * 100),
    stock: number(f.stock.value),
    per_user_limit: number(f.per_user_limit.value),
    pay_window_s: f.pay_window_min.value === "" ? "" : Math.round(Number(f.pay_window_min.value) * 60),
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
