// The operations page: live sales (stock left, drift, backlog), orders/s and edge refusals by
// reason, computed from two successive scrapes of the Prometheus text.
"use strict";
(function () {
  function parse(text) {
    const out = [];
    for (const line of text.split("\n")) {
      const m = /^([a-z_]+)(?:\{([^}]*)\})? ([0-9.eE+-]+)$/.exec(line);
      if (!m) continue;
      const labels = {};
      for (const kv of (m[2] || "").matchAll(/([a-z_]+)="([^"]*)"/g)) labels[kv[1]] = kv[2];
      out.push({ name: m[1], labels, value: Number(m[3]) });
    }
    return out;
  }
  const key = (s) => s.name + JSON.stringify(s.labels);
  let last = null;

  function rows(id, list) {
    const body = document.querySelector(`#${id} tbody`);
    body.innerHTML = "";
    for (const cells of list) {
      const tr = document.createElement("tr");
      for (const c of cells) {
        const td = document.createElement("td");
        if (c && c.cls) { td.className = c.cls; td.textContent = c.text; } else td.textContent = c;
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
  }

  async function poll() {
    try {
      const [edge, backend] = await Promise.all(["edge", "backend"].map((w) =>
        fetch(`/ops/metrics/${w}`).then((r) => r.text())));
      const samples = parse(edge).concat(parse(backend));
      const now = Date.now();
      const prev = last;
      last = { at: now, values: new Map(samples.map((s) => [key(s), s.value])) };
      const rate = (s) => prev ? Math.max(0, (s.value - (prev.values.get(key(s)) ?? s.value)) / ((now - prev.at) / 1000)) : 0;
      const find = (name) => samples.filter((s) => s.name === name);
      const sales = {};
      for (const s of find("seckill_stock_left")) (sales[s.labels.sale] ??= {}).left = s.value;
      for (const s of find("seckill_stock_drift")) (sales[s.labels.sale] ??= {}).drift = s.value;
      for (const s of find("seckill_stream_backlog")) (sales[s.labels.sale] ??= {}).backlog = s.value;
      rows("sales", Object.entries(sales).sort((a, b) => b[0] - a[0]).map(([id, s]) =>
        [id, s.left ?? "?", s.drift ? { cls: "drift", text: s.drift } : (s.drift ?? "?"), s.backlog ?? "?"]));
      const sum = (name, pred = () => true) => find(name).filter(pred).reduce((a, s) => a + rate(s), 0);
      rows("rates", [
        ["requests decided at the edge", sum("seckill_edge_requests_total").toFixed(1)],
        ["buys reaching the backend", sum("seckill_http_requests_total", (s) => s.labels.route === "buy").toFixed(1)],
        ["units reserved in Redis", sum("seckill_reservations_total", (s) => s.labels.outcome === "queued").toFixed(1)],
        ["orders written to MariaDB", sum("seckill_orders_written_total").toFixed(1)],
      ]);
      rows("edge", find("seckill_edge_requests_total")
        .sort((a, b) => b.value - a.value)
        .map((s) => [s.labels.route, s.labels.outcome, rate(s).toFixed(1), s.value]));
      document.getElementById("updated").textContent = "Updated " + new Date(now).toLocaleTimeString();
    } catch (e) {
      document.getElementById("updated").textContent = "Scrape failed: " + e;
    }
  }
  poll();
  setInterval(poll, 2000);
})();
