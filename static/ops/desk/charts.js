// Time-series charts (uPlot, vendored) that keep the last five minutes, and the scrape of
// the edge's and the backend's Prometheus text they are fed from. Every chart also writes its
// latest values as text under it (for people who do not read charts, and for tests).

/* global uPlot */

const WINDOW = 150; // points kept: five minutes at one scrape per 2 s
const COLORS = ["#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2", "#ca8a04",
  "#db2777", "#4b5563", "#65a30d", "#7c3aed", "#0d9488"];

export class Chart {
  constructor(box, unit) {
    this.box = box;
    this.unit = unit;
    this.names = [];
    this.times = [];
    this.values = new Map();
    this.plot = null;
    this.canvas = box.querySelector(".plot");
    this.latest = box.querySelector(".latest");
    new ResizeObserver(() => this.plot && this.plot.setSize(this.size())).observe(this.canvas);
  }

  size() {
    return { width: Math.max(240, this.canvas.clientWidth), height: 170 };
  }

  // Adds one moment: {series name: value}. A new name adds a series (the chart is rebuilt).
  push(atMs, point) {
    this.times.push(atMs / 1000);
    for (const name of Object.keys(point)) {
      if (!this.values.has(name)) {
        this.values.set(name, this.times.slice(1).map(() => null));
        this.names.push(name);
        this.plot = null;
      }
    }
    for (const [name, list] of this.values) list.push(point[name] ?? null);
    if (this.times.length > WINDOW) {
      this.times.shift();
      for (const list of this.values.values()) list.shift();
    }
    this.draw();
    this.latest.textContent = this.names.length
      ? this.names.map((n) => `${n}: ${format(point[n])}`).join(" · ") + (this.unit ? ` (${this.unit})` : "")
      : "no data yet";
    this.box.dataset.latest = JSON.stringify(point);
  }

  reset() {
    this.names = [];
    this.times = [];
    this.values = new Map();
    this.plot = null;
    this.canvas.replaceChildren();
    this.latest.textContent = "no data yet";
  }

  draw() {
    const data = [this.times, ...this.names.map((n) => this.values.get(n))];
    if (this.plot) {
      this.plot.setData(data);
      return;
    }
    this.canvas.replaceChildren();
    const series = [{}, ...this.names.map((label, i) => ({
      label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: false,
      value: (u, v) => format(v),
    }))];
    this.plot = new uPlot({
      ...this.size(), series,
      cursor: { drag: { x: false, y: false } },
      scales: {
        // Always the last five minutes, however few points there are yet.
        x: { time: true, range: () => { const end = this.times[this.times.length - 1] || Date.now() / 1000; return [end - WINDOW * 2, end]; } },
        y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] },
      },
      axes: [{}, { size: 50, values: (u, vals) => vals.map(format) }],
      legend: { live: false },
    }, data, this.canvas);
  }
}

function format(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString();
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

// ---- Prometheus text, and rates between two scrapes.

function parse(text) {
  const out = [];
  for (const line of text.split("\n")) {
    const m = /^([a-z_]+)(?:\{([^}]*)\})? ([0-9.eE+-]+|NaN)$/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const kv of (m[2] || "").matchAll(/([a-z_]+)="([^"]*)"/g)) labels[kv[1]] = kv[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

const key = (s) => s.name + JSON.stringify(s.labels);

// One scrape of both: samples, and rate(sample) per second against the scrape before.
export class Scraper {
  constructor() { this.last = null; }

  async scrape() {
    const texts = await Promise.all(["edge", "backend"].map(async (who) => {
      const r = await fetch(`/ops/metrics/${who}`);
      if (!r.ok) throw new Error(`${who} metrics: ${r.status}`);
      return r.text();
    }));
    const samples = texts.flatMap(parse);
    const at = Date.now();
    const prev = this.last;
    this.last = { at, values: new Map(samples.map((s) => [key(s), s.value])) };
    const rate = (s) => {
      if (!prev) return 0;
      const before = prev.values.get(key(s));
      return before === undefined ? 0 : Math.max(0, (s.value - before) / ((at - prev.at) / 1000));
    };
    const find = (name, pred = () => true) => samples.filter((s) => s.name === name && pred(s));
    return {
      at, first: !prev, find, rate,
      sum: (name, pred) => find(name, pred).reduce((a, s) => a + s.value, 0),
      rateOf: (name, pred) => find(name, pred).reduce((a, s) => a + rate(s), 0),
    };
  }
}
