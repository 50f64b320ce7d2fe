// Shared by the browser tests: the environment scripts/test sets, Debian's Chromium, creating
// and publishing a sale, and numbered "ok" lines.
import { chromium } from "playwright-core";
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import assert from "node:assert/strict";
import path from "node:path";

export const env = (k) => { const v = process.env[k]; if (!v) throw new Error(`${k} is not set`); return v; };
export const POP = env("POP"), EDGE = env("EDGE"), ADMIN = env("ADMIN_TOKEN"), ARTIFACTS = env("ARTIFACTS");
export const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
mkdirSync(ARTIFACTS, { recursive: true });

let passed = 0;
export const ok = (what) => { passed++; console.log(`  ok ${passed} - ${what}`); };
export const passedCount = () => passed;

// Creates a sale through the edge's admin location: a race (queue "none") unless `extra`
// says otherwise; `extra` adds fields (e.g. the queue).
export async function createSale(title, stock, startsInMs, extra = {}) {
  const starts = Date.now() + startsInMs;
  const res = await fetch(`${EDGE}/admin/sales`, {
    method: "POST",
    headers: { Authorization: `Bearer ${ADMIN}`, "Content-Type": "application/json" },
    body: JSON.stringify({ title, price_cents: 4999, stock, per_user_limit: 1,
      starts_at: starts, ends_at: starts + 3600_000, queue: "none", ...extra }),
  });
  const text = await res.text();
  assert.equal(res.status, 201, text);
  return { id: JSON.parse(text).id, starts };
}

export function publish(...ids) {
  return execFileSync(path.join(ROOT, "scripts/publish"), ids.map(String), {
    env: { ...process.env, EDGE, POP, PUBLIC_DIR: env("PUBLIC_DIR") }, encoding: "utf8" });
}

// Debian's Chromium, never a downloaded one.
export function launch() {
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--no-first-run"],
  });
}
