// The waiting room in a real browser (Debian's Chromium, driven by playwright-core), through
// the CDN POP: two shoppers join the line of a one-unit fifo sale before it starts, see their
// place and ETA move, the first is admitted, solves the captcha and buys; the second, still in
// line, is told it sold out (and that the place is kept). Screenshots of each step.
// Run by scripts/test with POP, EDGE, ADMIN_TOKEN, PUBLIC_DIR, ARTIFACTS (as buy.mjs).
import assert from "node:assert/strict";
import path from "node:path";
import { POP, ARTIFACTS, ok, passedCount, createSale, publish, launch } from "./lib.mjs";

const shot = (page, name) => page.screenshot({ path: path.join(ARTIFACTS, `browser-queue-${name}.png`), fullPage: true });

const { id: saleId, starts } = await createSale("Queue test console", 1, 12000,
  { price_cents: 29900, queue: "fifo", admit_ttl_s: 60 });
publish(saleId);

const browser = await launch();
try {
  async function shopper(name) {
    const ctx = await browser.newContext({ viewport: { width: 390, height: 844 } });
    const page = await ctx.newPage();
    await page.goto(`${POP}/sales/${saleId}/`);
    await page.fill("#name", `${name}-${saleId}`);
    await page.click("#signin-button");
    await page.waitForSelector("#queue:not([hidden])");
    await page.waitForSelector("#join-button:not([hidden])");
    await page.click("#join-button");
    await page.waitForFunction(() => /^#\d+$/.test(document.getElementById("queue-place").textContent));
    return page;
  }
  const a = await shopper("ann");
  const b = await shopper("ben");
  assert.equal(await a.textContent("#queue-place"), "#1");
  assert.equal(await b.textContent("#queue-place"), "#2");
  ok("two shoppers join the line and see their places (#1, #2)");
  assert.ok(await b.isHidden("#join-button"), "no second join button once in line");

  // The first is admitted at the start: its ETA is the time to the start, counting down.
  const eta = async () => Number((/about (\d+) s/.exec(await a.textContent("#queue-detail")) || [])[1]);
  await a.waitForFunction(() => /about \d+ s/.test(document.getElementById("queue-detail").textContent), null, { timeout: 15000 });
  const first = await eta();
  await shot(a, "waiting");
  await a.waitForFunction((n) => {
    const m = /about (\d+) s/.exec(document.getElementById("queue-detail").textContent);
    return m && Number(m[1]) < n;
  }, first, { timeout: 15000 });
  ok(`the ETA moves (${first} s, then ${await eta()} s)`);
  assert.match(await b.textContent("#queue-detail"), /1 ahead of you/);
  await shot(b, "second-in-line");
  ok("the second shopper sees one ahead");

  // A reload keeps the place (the ticket is kept by the page).
  await b.reload();
  await b.waitForFunction(() => document.getElementById("queue-place").textContent === "#2", null, { timeout: 15000 });
  assert.ok(await b.isHidden("#join-button"));
  ok("a reload keeps the place");

  const captchaAnswer = a.waitForResponse((r) => new URL(r.url()).pathname === `/api/sales/${saleId}/captcha`, { timeout: 30000 })
    .then((r) => r.json()).then((j) => j.answer);
  await a.waitForSelector("#captcha:not([hidden])", { timeout: 30000 });
  assert.ok(Date.now() >= starts - 200, "admitted before the start");
  assert.match(await a.textContent("#queue-place"), /Your turn/);
  await shot(a, "admitted");
  ok("the first shopper is admitted at the start and gets the captcha");
  await a.fill("#answer", await captchaAnswer);
  await a.click("#buy-button");
  await a.waitForFunction(() => /You got it/.test(document.getElementById("mine").textContent), null, { timeout: 30000 });
  await shot(a, "got-it");
  ok("the admitted shopper buys");

  await b.waitForFunction(() => /Sold out/.test(document.getElementById("queue-detail").textContent), null, { timeout: 15000 });
  assert.match(await b.textContent("#queue-detail"), /keep your place/);
  assert.ok(await b.isHidden("#captcha"), "a shopper still in line never got a captcha");
  await shot(b, "sold-out");
  ok("the second shopper, still in line, is told it sold out (and keeps the place)");

  // Polls are cacheable per ticket at the POP.
  const ticket = await b.evaluate((id) => localStorage.getItem(`seckill.ticket.${id}`), saleId);
  const poll = () => fetch(`${POP}/api/sales/${saleId}/queue?ticket=${encodeURIComponent(ticket)}`);
  await poll();
  const again = await poll();
  assert.equal(again.headers.get("x-cache"), "HIT");
  assert.match(again.headers.get("cache-control"), /max-age=1/);
  ok("a poll repeated within a second is a POP cache HIT (per ticket)");
  console.log(`browser queue: ${passedCount()} passed; screenshots in ${ARTIFACTS}/browser-queue-*.png`);
} finally {
  await browser.close();
}
