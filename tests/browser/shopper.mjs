// The shopper around the buy (issue 22), in Debian's Chromium through the CDN POP, each state
// screenshotted at phone (390x844) and desktop (1280x800) size as shop-<state>-<size>.png:
//   - a wrong answer says so, brings a new picture, and the next try works (no page error);
//   - "New image" brings a new picture; an expiring picture is replaced by itself;
//   - a winner who reloads keeps the order and its timer; a second tab shows it too; paying
//     shows the receipt; My orders lists it;
//   - a unit that comes back (its order unpaid past the deadline) reopens buying for a
//     shopper still on the page;
//   - a lapsed turn in a waiting room says so and offers the back of the line;
//   - a random draw checks itself against its published seed;
//   - the 404 page and the slash-less address, through the POP.
// Run by scripts/test with POP, EDGE, ADMIN_TOKEN, PUBLIC_DIR, ARTIFACTS (as buy.mjs); the
// backend's captcha test hook gives the answers (read from the network, never the page).
import assert from "node:assert/strict";
import path from "node:path";
import { POP, ARTIFACTS, ok, passedCount, createSale, publish, launch } from "./lib.mjs";

const PHONE = { width: 390, height: 844 };
const DESKTOP = { width: 1280, height: 800 };
const browser = await launch();
const pageErrors = [];

// Every captcha any page was sent: its picture -> its answer (the test hook's, read from the
// network, never from the page).
const answers = new Map();

async function shopper(name, saleId, viewport = PHONE) {
  const ctx = await browser.newContext({ viewport });
  const page = await ctx.newPage();
  page.on("pageerror", (e) => pageErrors.push(`${name}: ${e}`));
  page.on("response", async (r) => {
    if (!/^\/api\/sales\/\d+\/captcha$/.test(new URL(r.url()).pathname) || r.status() !== 200) return;
    const j = await r.json().catch(() => null);
    if (j) answers.set(j.image, j.answer);
  });
  await page.goto(`${POP}/sales/${saleId}/`);
  await page.fill("#name", `${name}-${saleId}`);
  await page.click("#signin-button");
  return page;
}

// Both sizes of the same moment.
async function shot(page, state) {
  const size = page.viewportSize();
  await page.screenshot({ path: path.join(ARTIFACTS, `shop-${state}-phone.png`), fullPage: true });
  await page.setViewportSize(DESKTOP);
  await page.screenshot({ path: path.join(ARTIFACTS, `shop-${state}-desktop.png`), fullPage: true });
  await page.setViewportSize(size);
}

// The answer of the captcha the page shows (once it shows one other than `notSrc`): whatever
// the page fetched and whenever, the picture on screen is what a person answers.
async function shownAnswer(page, notSrc = null) {
  const shown = await page.waitForFunction((not) => {
    const img = document.getElementById("captcha-image");
    const src = img && !document.getElementById("captcha").hidden && img.getAttribute("src");
    return src && src !== not ? src : null;
  }, notSrc, { timeout: 40000 });
  const src = await shown.jsonValue();
  for (let i = 0; i < 200 && !answers.has(src); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(answers.has(src), "the picture shown is one the API sent");
  return answers.get(src);
}

const mineText = (page) => page.textContent("#mine");

try {
  // ---- Wrong answer, new image, a win, a reload, a second tab, paying, My orders.
  const sale = await createSale("Shop test phone", 2, 6000, { pay_window_s: 600,
    description: "A test phone.\nIn two lines.", image_url: "/assets/favicon.svg" });
  publish(sale.id);
  const a = await shopper("alice", sale.id);
  await a.waitForSelector("#countdown:not([hidden])");
  await a.waitForFunction(() => /\d\d:\d\d:\d\d/.test(document.getElementById("clock").textContent));
  assert.match(await a.textContent("#rules"), /At most 1 per customer.*Pay within 10 min/s);
  assert.match(await a.textContent("#description"), /A test phone/);
  await shot(a, "countdown");
  ok("before the start: a countdown, the date, the rules, the description");
  await a.waitForSelector("#captcha:not([hidden])", { timeout: 30000 });
  await shownAnswer(a);
  const box = await a.locator("#captcha-image").boundingBox();
  assert.ok(box.width >= 240 && box.height >= 80, `the captcha is ${box.width}x${box.height} CSS px on a phone`);
  assert.match(await a.textContent("#captcha-timer"), /This picture: 00:0\d:\d\d left/);
  await shot(a, "captcha");
  ok(`the captcha is large enough on a phone (${Math.round(box.width)}x${Math.round(box.height)}) and shows its time left`);

  const firstSrc = await a.getAttribute("#captcha-image", "src");
  await a.fill("#answer", "WRONG");
  await a.press("#answer", "Enter");
  await a.waitForFunction(() => /not the code shown/.test(document.getElementById("captcha-error").textContent));
  await shownAnswer(a, firstSrc); // a new picture after a wrong answer
  await shot(a, "wrong-answer");
  ok("a wrong answer says so and brings a new picture");
  const secondSrc = await a.getAttribute("#captcha-image", "src");
  await a.click("#new-image");
  const renewed = await shownAnswer(a, secondSrc);
  ok("New image brings another picture");
  await a.fill("#answer", renewed);
  await a.click("#buy-button");
  await a.waitForFunction(() => /You got it!/.test(document.getElementById("mine").textContent), null, { timeout: 30000 });
  assert.match(await mineText(a), /Time to pay: 00:\d\d:\d\d/);
  await shot(a, "won");
  ok("the next try wins: the order, its deadline and a live timer");

  await a.reload();
  await a.waitForFunction(() => /You got it!/.test(document.getElementById("mine").textContent), null, { timeout: 20000 });
  await a.waitForFunction(() => /Time to pay: 00:\d\d:\d\d/.test(document.getElementById("mine").textContent));
  assert.ok(await a.isHidden("#captcha"), "no captcha for a shopper at the limit");
  ok("a reload keeps the win, its Pay button and its timer");
  const tab = await a.context().newPage();
  await tab.goto(`${POP}/sales/${sale.id}/`);
  await tab.waitForFunction(() => /You got it!/.test(document.getElementById("mine").textContent), null, { timeout: 20000 });
  await tab.close();
  ok("a second tab shows the same order");
  await a.click("#mine button");
  await a.waitForFunction(() => /Paid .*Receipt: order \d+/.test(document.getElementById("mine").textContent), null, { timeout: 30000 });
  await shot(a, "paid");
  ok("paying shows the receipt");
  await a.goto(`${POP}/orders/`);
  await a.waitForFunction(() => /Shop test phone: Paid/.test(document.getElementById("orders").textContent), null, { timeout: 20000 });
  await shot(a, "my-orders");
  ok("My orders lists the paid order with its sale");

  // ---- A unit that comes back reopens buying for a shopper still on the page.
  const back = await createSale("Shop test returns", 1, 3000, { pay_window_s: 3 });
  publish(back.id);
  const winner = await shopper("winner", back.id);
  await winner.fill("#answer", await shownAnswer(winner));
  await winner.click("#buy-button");
  await winner.waitForFunction(() => /You got it!/.test(document.getElementById("mine").textContent), null, { timeout: 30000 });
  const late = await shopper("late", back.id);
  await late.waitForFunction(() => /Sold out for now/.test(document.getElementById("message").textContent), null, { timeout: 20000 });
  await shot(late, "sold-out");
  ok("a latecomer is told it is sold out for now, and that units may come back");
  await winner.waitForFunction(() => /expired: it was not paid/.test(document.getElementById("mine").textContent), null, { timeout: 40000 });
  await shot(winner, "expired-order");
  ok("the winner who did not pay is told plainly that the order expired");
  await late.waitForSelector("#captcha:not([hidden])", { timeout: 30000 });
  await late.fill("#answer", await shownAnswer(late));
  await late.click("#buy-button");
  await late.waitForFunction(() => /You got it!/.test(document.getElementById("mine").textContent), null, { timeout: 30000 });
  ok("the unit came back and the latecomer, still on the page, bought it");

  // ---- A lapsed turn in a waiting room: said, and the back of the line offered.
  const line = await createSale("Shop test line", 3, 8000, { queue: "fifo", admit_ttl_s: 10 });
  publish(line.id);
  const idle = await shopper("idle", line.id);
  await idle.waitForSelector("#join-button:not([hidden])");
  await idle.click("#join-button");
  await idle.waitForFunction(() => document.getElementById("queue-place").textContent === "#1");
  assert.ok(await idle.isVisible("#queue-hint"), "you can leave this tab open");
  await idle.waitForFunction(() => /Starts in \d\d:\d\d:\d\d/.test(document.getElementById("queue-clock").textContent));
  await shot(idle, "queue-waiting");
  await idle.waitForSelector("#captcha:not([hidden])", { timeout: 30000 });
  await idle.waitForFunction(() => /Your turn: 00:00:\d\d left/.test(document.getElementById("turn-timer").textContent));
  await shot(idle, "queue-turn");
  ok("in line: the place, a countdown to the start, then the turn with its timer");
  await idle.waitForFunction(() => /Your turn passed/.test(document.getElementById("queue-detail").textContent), null, { timeout: 40000 });
  assert.ok(await idle.isHidden("#captcha"), "no captcha once the turn passed");
  await idle.waitForSelector("#rejoin-button:not([hidden])");
  await shot(idle, "queue-lapsed");
  ok("a lapsed turn says so and offers to join again at the back");
  await idle.click("#rejoin-button");
  // Alone in line, the new number at the back is admitted at once.
  await idle.waitForFunction(() => /^(#\d+|Your turn!)$/.test(document.getElementById("queue-place").textContent)
    && !/passed/.test(document.getElementById("queue-detail").textContent), null, { timeout: 20000 });
  const again = await idle.evaluate((id) => localStorage.getItem(`seckill.ticket.${id}`), line.id);
  assert.match(again, new RegExp(`^${line.id}\\.\\d+\\.2\\.`), "the new ticket is number 2, at the back");
  ok(`joined again at the back (ticket number 2: ${await idle.textContent("#queue-place")})`);

  // ---- A random draw checks itself against its published seed.
  const draw = await createSale("Shop test draw", 5, 4000, { queue: "random" });
  publish(draw.id);
  const lucky = await shopper("lucky", draw.id);
  await lucky.click("#join-button");
  await lucky.waitForFunction(() => /SHA-256 [0-9a-f]{64}/.test(document.getElementById("audit-text").textContent), null, { timeout: 20000 });
  await lucky.waitForFunction(() => /^Verified/.test(document.getElementById("audit-text").textContent), null, { timeout: 30000 });
  await lucky.click("#audit summary");
  await shot(lucky, "draw-verified");
  ok("the draw's commitment shows before it, and the page verifies its place after it");

  // ---- Through the POP: an unknown sale is a friendly page; no redirect leaves the CDN.
  const missing = await fetch(`${POP}/sales/2000000000/`);
  assert.equal(missing.status, 404);
  assert.match(missing.headers.get("content-type"), /text\/html/);
  assert.match(await missing.text(), /This page does not exist/);
  const bare = await fetch(`${POP}/sales/${sale.id}`, { redirect: "manual" });
  assert.equal(bare.status, 301);
  assert.equal(bare.headers.get("location"), `/sales/${sale.id}/`);
  assert.doesNotMatch(bare.headers.get("content-type"), /html/);
  ok("an unknown sale is an HTML 404; /sales/ID redirects on the POP, without an HTML body");

  assert.deepEqual(pageErrors, [], "no script error on any page");
  ok("no script error on any page");
  console.log(`browser shopper: ${passedCount()} passed; screenshots in ${ARTIFACTS}/shop-*.png`);
} finally {
  await browser.close();
}
