// The shopper's path in a real browser (Debian's Chromium, driven by playwright-core),
// through the CDN POP, against the real edge, backend, Redis and MariaDB; then the POP's
// caching rules. Run by scripts/test, which starts everything and sets:
//   POP, EDGE (base URLs), ADMIN_TOKEN, PUBLIC_DIR, ARTIFACTS (where screenshots go).
// The backend runs with SECKILL_CAPTCHA_TEST_HOOK=true: the captcha response carries its
// answer, which this test reads from the network (never from the page).
import assert from "node:assert/strict";
import path from "node:path";
import { POP, ARTIFACTS, ok, passedCount, createSale, publish, launch } from "./lib.mjs";

const browser = await launch();
try {
  // ---- A shopper watches the countdown, answers the captcha, buys and pays.
  const sale = await createSale("Browser test phone", 1, 9000);
  publish(sale.id);
  const ctxA = await browser.newContext({ viewport: { width: 390, height: 844 } }); // a phone
  const a = await ctxA.newPage();
  await a.goto(`${POP}/sales/${sale.id}/`);
  await a.fill("#name", `alice-${sale.id}`);
  await a.click("#signin-button");
  await a.waitForSelector("#countdown:not([hidden])");
  await a.waitForFunction(() => /^\d\d:\d\d:\d\d$/.test(document.getElementById("clock").textContent)
    && document.getElementById("clock").textContent !== "00:00:00");
  const shownAt = await a.textContent("#clock");
  ok(`the countdown runs (${shownAt} before the start)`);
  const captchaAnswer = a.waitForResponse((r) => new URL(r.url()).pathname === `/api/sales/${sale.id}/captcha`)
    .then((r) => r.json()).then((j) => j.answer);
  await a.waitForSelector("#captcha:not([hidden])", { timeout: 30000 });
  const visibleAt = Date.now();
  assert.ok(visibleAt >= sale.starts - 150, `captcha shown ${sale.starts - visibleAt} ms before the start`);
  assert.ok(visibleAt <= sale.starts + 1500, `captcha shown ${visibleAt - sale.starts} ms after the start`);
  ok(`the captcha appears at zero (${visibleAt - sale.starts} ms from the server's start)`);
  await a.screenshot({ path: path.join(ARTIFACTS, "browser-captcha.png") });
  const answer = await captchaAnswer;
  assert.match(answer, /^[CDEHJKMPTUW3469]{4,6}$/);
  await a.fill("#answer", answer);
  await a.click("#buy-button");
  await a.waitForFunction(() => /You got it/.test(document.getElementById("mine").textContent), null, { timeout: 30000 });
  const got = await a.textContent("#mine");
  assert.match(got, /Pay by .*Time to pay: \d\d:\d\d:\d\d/);
  ok(`the shopper got it: "${got}"`);
  await a.screenshot({ path: path.join(ARTIFACTS, "browser-got-it.png"), fullPage: true });
  await a.click("#mine button");
  await a.waitForFunction(() => /Paid .*Receipt: order/.test(document.getElementById("mine").textContent), null, { timeout: 30000 });
  ok("the shopper paid and sees the receipt");
  await a.screenshot({ path: path.join(ARTIFACTS, "browser-paid.png"), fullPage: true });

  // ---- A second shopper comes to the sold-out sale.
  const ctxB = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const b = await ctxB.newPage();
  await b.goto(`${POP}/sales/${sale.id}/`);
  await b.waitForFunction(() => /Sold out/.test(document.body.textContent), null, { timeout: 20000 });
  ok("a second shopper sees sold out");
  await b.screenshot({ path: path.join(ARTIFACTS, "browser-sold-out.png"), fullPage: true });

  // ---- The POP: hashed assets are cache hits; HTML revalidates; a publish refreshes only
  // the pages it changed.
  const head = async (p, headers = {}) => {
    const r = await fetch(`${POP}${p}`, { headers });
    return { status: r.status, cache: r.headers.get("x-cache"), cc: r.headers.get("cache-control"), body: await r.text() };
  };
  const html = (await head(`/sales/${sale.id}/`)).body;
  const asset = /\/assets\/app\.[0-9a-f]{12}\.js/.exec(html)[0];
  await head(asset);
  const second = await head(asset);
  assert.equal(second.cache, "HIT");
  assert.match(second.cc, /immutable/);
  ok(`a hashed asset is a cache HIT the second time (${asset}, ${second.cc})`);
  await head(`/sales/${sale.id}/`);
  assert.equal((await head(`/sales/${sale.id}/`)).cache, "HIT");
  await new Promise((r) => setTimeout(r, 6000));
  const stale = await head(`/sales/${sale.id}/`);
  assert.equal(stale.cache, "REVALIDATED", `HTML after its max-age: ${stale.cache}`);
  ok("HTML past its max-age is revalidated with the origin (ETag, 304)");
  await head("/");
  assert.equal((await head("/")).cache, "HIT");
  const other = await createSale("Browser test tablet", 5, 3600_000);
  const out = publish(other.id);
  assert.match(out, /published \/\n/);
  assert.match(out, new RegExp(`published /sales/${other.id}/`));
  assert.doesNotMatch(out, new RegExp(`/sales/${sale.id}/`));
  const index = await head("/");
  assert.equal(index.cache, "HIT", "the refreshed list is served from the cache");
  assert.match(index.body, /Browser test tablet/, "the list was refreshed at once, not after max-age");
  assert.equal((await head(`/sales/${sale.id}/`)).cache, "HIT", "the unchanged page was not purged");
  ok("a publish refreshes the changed list page only; the unchanged sale page stays cached");
  // A title that looks like a placeholder is published as text, never substituted.
  const tricky = await createSale("Deal {{price}} {{title}} {{id}}", 5, 3600_000);
  publish(tricky.id);
  const page = await head(`/sales/${tricky.id}/`);
  assert.equal(page.status, 200);
  assert.match(page.body, /Deal \{\{price\}\} \{\{title\}\} \{\{id\}\}/);
  ok("a title with placeholders in it is published as written (one-pass rendering)");
  assert.equal((await head("/ops/")).status, 404);
  assert.equal((await head("/metrics")).status, 404);
  ok("operator pages are not served through the POP");
  console.log(`browser: ${passedCount()} passed; screenshots in ${ARTIFACTS}`);
} finally {
  await browser.close();
}
