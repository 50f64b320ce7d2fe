// The whole evening at a glance, from the edge's and the backend's metrics every 2 s: what
// the edge let through and refused per second, orders reserved and written per second, stock
// left in the busy sales, the writer's backlog, the waiting rooms, refunds due; the alerts
// firing (Prometheus's, when it runs; else the same checks done here on the scrape).

import { Chart, Scraper } from "./charts.js";
import { el } from "./api.js";
import { outcome } from "./words.js";

// Edge outcomes that let a request on (everything else is a refusal).
const LET_THROUGH = new Set(["passed", "issued", "admitted", "waiting", "draw"]);

const scraper = new Scraper();
let charts = null;

export function init() {
  const chart = (id, unit) => new Chart(document.getElementById(id), unit);
  charts = {
    edge: chart("chart-edge", "requests/s"),
    orders: chart("chart-orders", "orders/s"),
    stock: chart("chart-stock", "units"),
    backlog: chart("chart-backlog", "orders"),
    queue: chart("chart-queue", ""),
    refunds: chart("chart-refunds", "payments"),
  };
}

export async function tick() {
  let m;
  try {
    m = await scraper.scrape();
  } catch (e) {
    document.getElementById("scrape-status").textContent = `Metrics unavailable: ${e.message}`;
    return null;
  }
  document.getElementById("scrape-status").textContent = `Updated ${new Date(m.at).toLocaleTimeString()}`;
  if (m.first) return m; // rates need two scrapes
  // "let through", and each refusal once it has happened in the window (a series of zeros
  // for every reason there is would bury the ones that matter).
  const edge = { "let through": m.rateOf("seckill_edge_requests_total", (s) => LET_THROUGH.has(s.labels.outcome)) };
  for (const s of m.find("seckill_edge_requests_total", (s) => !LET_THROUGH.has(s.labels.outcome))) {
    const name = outcome(s.labels.outcome);
    const r = m.rate(s);
    if (r > 0 || charts.edge.names.includes(name)) edge[name] = (edge[name] || 0) + r;
  }
  charts.edge.push(m.at, edge);
  charts.orders.push(m.at, {
    reserved: m.rateOf("seckill_reservations_total", (s) => s.labels.outcome === "queued"),
    written: m.rateOf("seckill_orders_written_total"),
    paid: m.rateOf("seckill_payments_total", (s) => s.labels.result === "paid"),
    expired: m.rateOf("seckill_orders_expired_total"),
  });
  charts.stock.push(m.at, { "stock left (busy sales)": m.sum("seckill_stock_left") });
  charts.backlog.push(m.at, { "writer backlog": m.sum("seckill_stream_backlog") });
  charts.queue.push(m.at, {
    waiting: m.sum("seckill_queue_length"),
    "admitted/s": m.rateOf("seckill_queue_admitted"),
  });
  charts.refunds.push(m.at, { "refunds due": m.sum("seckill_refunds_due") });
  edgeTables(m);
  await alerts(m);
  return m;
}

function edgeTables(m) {
  const rows = (id, pred) => {
    const list = m.find("seckill_edge_requests_total", pred).sort((a, b) => m.rate(b) - m.rate(a) || b.value - a.value);
    document.querySelector(`#${id} tbody`).replaceChildren(...list.map((s) => el("tr", null,
      el("td", null, s.labels.route.replaceAll("_", " ")), el("td", null, outcome(s.labels.outcome)),
      el("td", { className: "num" }, m.rate(s).toFixed(1)), el("td", { className: "num" }, s.value.toLocaleString()))));
  };
  rows("edge-refusals", (s) => !LET_THROUGH.has(s.labels.outcome));
  rows("edge-passed", (s) => LET_THROUGH.has(s.labels.outcome));
}

// The checks of ops/alerts.yml that one scrape can make, for when Prometheus is not running.
function localChecks(m) {
  const out = [];
  for (const s of m.find("seckill_stock_drift", (s) => s.value !== 0)) {
    out.push({ name: "StockDrift", text: `sale ${s.labels.sale}: Redis and MariaDB disagree by ${s.value}` });
  }
  for (const s of m.find("seckill_breaker_open", (s) => s.value === 1)) {
    out.push({ name: "CircuitOpen", text: `${s.labels.dep}: the circuit breaker is open` });
  }
  const backlog = m.sum("seckill_stream_backlog");
  if (backlog > 1000) out.push({ name: "OrderBacklog", text: `${backlog} orders not yet written to MariaDB` });
  const fivexx = m.rateOf("seckill_http_requests_total", (s) => s.labels.status && s.labels.status.startsWith("5"));
  if (fivexx > 1) out.push({ name: "High5xxRate", text: `${fivexx.toFixed(1)} backend 5xx answers a second` });
  const dead = m.rateOf("seckill_writer_dead_letters_total");
  if (dead > 0) out.push({ name: "OrdersDeadLettered", text: "the writer set orders aside it could not write" });
  return out;
}

async function alerts(m) {
  const box = document.getElementById("alerts");
  let list;
  let source;
  const r = await fetch("/ops/alerts").catch(() => null);
  const body = r && r.ok ? await r.json().catch(() => null) : null;
  if (body && body.status === "success") {
    list = body.data.alerts.filter((a) => a.state === "firing").map((a) => ({
      name: a.labels.alertname,
      text: (a.annotations && (a.annotations.summary || a.annotations.description)) || JSON.stringify(a.labels),
    }));
    source = "Prometheus";
  } else {
    list = localChecks(m);
    source = "checks on the desk's scrape (Prometheus is not running: scripts/up --with-prometheus)";
  }
  box.className = list.length ? "alerts firing" : "alerts calm";
  box.replaceChildren(
    el("strong", null, list.length ? `${list.length} alert${list.length > 1 ? "s" : ""} firing` : "No alerts firing"),
    el("small", null, ` — from ${source}`),
    ...list.map((a) => el("div", { className: "alert" }, el("b", null, a.name), ": ", a.text)));
}

