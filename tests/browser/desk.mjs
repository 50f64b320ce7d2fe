// The operator's desk (issue 23), in Debian's Chromium against the edge's /ops/, each step
// screenshotted as desk-<step>.png: a wrong token is refused and the right one signs in; the
// form shows the API's refusal next to its field (stock, a start in the past); a sale is
// created unlisted, changed (title, start now), published (the storefront lists it), paused
// (the edge refuses it and the shop page says so), resumed, watched on the evening's charts
// while a small crowd buys, ended early (the shop page says so), checked against MariaDB, and
// found again with the filters; signing out forgets the token.
// Run by scripts/test with POP, EDGE, ADMIN_TOKEN, PUBLIC_DIR, ARTIFACTS, and CROWD_BIN,
// CROWD_SECRETS, REDIS_URL, MYSQL_URL, BACKEND for the crowd.
import assert from "node:assert/strict";
import path from "node:path";
import { spawn } from "node:child_process";
import { EDGE, ADMIN, ARTIFACTS, env, ok, passedCount, launch } from "./lib.mjs";

const browser = await launch();
const pageErrors = [];
const shot = (page, name) => page.screenshot({ path: path.join(ARTIFACTS, `desk-${name}.png`), fullPage: true });

// Polls `f` until it returns a truthy value (or fails after `ms`).
async function until(what, f, ms = 15000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const edgeState = (id) => fetch(`${EDGE}/edge/sales/${id}`).then((r) => r.json());
// Every id the storefront lists, page by page.
async function storefront() {
  const ids = [];
  for (let after = ""; after !== null;) {
    const r = await fetch(`${EDGE}/api/sales${after ? `?after=${after}` : ""}`);
    if (r.status === 429) { // the edge's per-address limit: a person pages slower
      await new Promise((done) => setTimeout(done, 1000));
      continue;
    }
    const b = await r.json();
    assert.equal(r.status, 200, JSON.stringify(b));
    ids.push(...b.sales.map((s) => s.id));
    after = b.next_after;
  }
  return ids;
}

// A datetime-local value `ms` from now, in the browser's (the test's) time zone.
function localIn(ms) {
  const t = Date.now() + ms;
  return new Date(t - new Date(t).getTimezoneOffset() * 60000).toISOString().slice(0, 19);
}

function crowd() {
  const args = ["--users", "300", "--stock", "30", "--concurrency", "32", "--quiet",
    "--edge", EDGE, "--backend", env("BACKEND"), "--secrets", env("CROWD_SECRETS"),
    "--redis-url", env("REDIS_URL"), "--mysql-url", env("MYSQL_URL")];
  return new Promise((resolve, reject) => {
    const p = spawn(env("CROWD_BIN"), args, { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    p.stdout.on("data", (d) => { out += d; });
    p.on("exit", (code) => code === 0 ? resolve(out.trim().split("\n").pop()) : reject(new Error(`crowd exited ${code}: ${out}`)));
  });
}

const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
const desk = await ctx.newPage();
try {
  desk.on("pageerror", (e) => pageErrors.push(`desk: ${e}`));

  // ---- Signing in.
  await desk.goto(`${EDGE}/ops/`);
  await desk.waitForSelector("#signin:not([hidden])");
  await desk.fill("#token", "not-the-token");
  await desk.click("#signin-form button[type=submit]");
  await desk.waitForFunction(() => /refused/.test(document.getElementById("signin-error").textContent));
  assert.equal(await desk.isVisible("#desk"), false);
  ok("a wrong token is refused, and the desk stays closed");
  await desk.fill("#token", ADMIN);
  await desk.click("#signin-form button[type=submit]");
  await desk.waitForSelector("#desk:not([hidden])");
  await desk.waitForSelector("#all-sales tbody tr");
  await desk.waitForFunction(() => document.querySelector("#chart-edge canvas"), null, { timeout: 15000 });
  await shot(desk, "overview");
  ok("the right token opens the desk: the evening's charts and the sales");

  // ---- The form: refusals next to their fields.
  await desk.click("#new-sale");
  await desk.fill("[name=price]", "12,50");
  await desk.fill("[name=stock]", "0");
  await desk.click("#form-submit");
  await desk.waitForFunction(() => document.querySelector('.field-error[data-for="stock"]').textContent.length > 0);
  assert.match(await desk.textContent('.field-error[data-for="stock"]'), /^Stock: a whole number/);
  assert.match(await desk.textContent('.field-error[data-for="title"]'), /^Title:/);
  assert.equal(await desk.textContent('.field-error[data-for="price"]'), "", "12,50 is a price");
  assert.equal(await desk.getAttribute("[name=stock]", "aria-invalid"), "true");
  await shot(desk, "field-error");
  ok("an empty title and a stock of 0 are both said, each next to its field");
  await desk.fill("[name=title]", "Desk test");
  await desk.fill("[name=stock]", "5");
  await desk.fill("[name=image_url]", "/assets/a picture.png");
  await desk.click("#form-submit");
  await desk.waitForFunction(() => /spaces/.test(document.querySelector('.field-error[data-for="image_url"]').textContent));
  assert.match(await desk.textContent('.field-error[data-for="image_url"]'), /^Picture URL:/);
  ok("the API's refusal (a picture address with a space) is shown next to its field");
  await desk.fill("[name=image_url]", "");
  await desk.fill("[name=starts_at]", localIn(-3600_000));
  await desk.click("#form-submit");
  await desk.waitForFunction(() => /past/.test(document.querySelector('.field-error[data-for="starts_at"]').textContent));
  assert.equal(await desk.textContent('.field-error[data-for="stock"]'), "");
  ok("a start an hour ago is refused next to the start field");

  // ---- The waiting room a new sale gets: the draw, and the form says what speed buys.
  assert.equal(await desk.inputValue("[name=queue]"), "random", "a new sale is a draw unless chosen");
  assert.match(await desk.textContent("#queue-note"), /same chance/);
  await desk.selectOption("[name=queue]", "none");
  assert.match(await desk.textContent("#queue-note"), /fastest clients win/);
  ok("a new sale is a draw by default; the form says what speed buys in each mode");
  // This sale is a race (the shop page below shows the captcha at once).

  // ---- Create (unlisted), change, publish.
  await desk.fill("[name=starts_at]", localIn(600_000));
  await desk.fill("[name=ends_at]", localIn(4200_000));
  await desk.uncheck("[name=listed]");
  await desk.click("#form-submit");
  await desk.waitForFunction(() => /Created sale \d+/.test(document.getElementById("sale-message").textContent));
  const id = Number(/Created sale (\d+)/.exec(await desk.textContent("#sale-message"))[1]);
  assert.match(await desk.textContent("#sale-badge"), /upcoming.*unlisted/);
  assert.ok(!(await storefront()).includes(id), "an unlisted sale is not on the storefront");
  ok(`created sale ${id} from the form, upcoming and unlisted`);

  await desk.click("#sale-edit");
  await desk.fill("[name=title]", "Desk test phone");
  await desk.check("[name=start_now]");
  await desk.click("#form-submit");
  await desk.waitForFunction(() => /Desk test phone/.test(document.getElementById("sale-title").textContent));
  await desk.waitForFunction(() => /live/.test(document.getElementById("sale-badge").textContent));
  await desk.click("#sale-edit");
  assert.equal(await desk.isDisabled("[name=stock]"), true, "stock is locked once started");
  assert.equal(await desk.isDisabled("[name=title]"), false);
  await desk.click("#form-cancel");
  ok("changed before its start (title, start now); once live, only the allowed fields are editable");

  await desk.click("#sale-publish");
  await desk.waitForFunction(() => /Published/.test(document.getElementById("sale-message").textContent));
  await until("the storefront to list the sale", async () => (await storefront()).includes(id), 10000);
  ok("published: the storefront lists it");

  // ---- Pause: the edge refuses, the shop page says so; resume.
  const shopCtx = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const shop = await shopCtx.newPage();
  shop.on("pageerror", (e) => pageErrors.push(`shop: ${e}`));
  await shop.goto(`${EDGE}/sales/${id}/`);
  await shop.fill("#name", `desk-shopper-${id}`);
  await shop.click("#signin-button");
  await shop.waitForSelector("#captcha:not([hidden])", { timeout: 20000 });
  const pausedAt = Date.now();
  await desk.click("#sale-pause");
  await until("the edge to know the pause", async () => (await edgeState(id)).paused, 10000);
  const pauseMs = Date.now() - pausedAt;
  await shop.waitForFunction(() => /Paused by the shop/.test(document.body.innerText), null, { timeout: 20000 });
  await shot(shop, "shop-paused");
  await shot(desk, "paused");
  ok(`paused from the desk: the edge refused it after ${pauseMs} ms, and the shop page says so`);
  await desk.click("#sale-resume");
  await until("the edge to know the resume", async () => !(await edgeState(id)).paused, 10000);
  await shop.waitForFunction(() => !/Paused by the shop/.test(document.body.innerText), null, { timeout: 20000 });
  ok("resumed: the shop page goes on by itself");

  // ---- The charts move while a small crowd buys.
  const result = JSON.parse(await crowd());
  assert.ok(result.sold > 0, JSON.stringify(result));
  await desk.waitForFunction(() => {
    const p = JSON.parse(document.getElementById("chart-orders").dataset.latest || "{}");
    return p.reserved > 0 || p.written > 0;
  }, null, { timeout: 20000 });
  await shot(desk, "charts");
  ok(`the evening's orders chart moved while a crowd bought ${result.sold} units`);

  // ---- End early, check, find it again.
  desk.once("dialog", (d) => d.accept());
  await desk.click("#sale-end");
  await desk.waitForFunction(() => /ended/.test(document.getElementById("sale-badge").textContent));
  await until("the edge to know the end", async () => (await edgeState(id)).status === "ended", 10000);
  await shop.waitForFunction(() => /has ended/.test(document.body.innerText), null, { timeout: 20000 });
  ok("ended early from the desk: the shop page says so");
  await desk.click("#sale-reconcile");
  await desk.waitForFunction(() => /In agreement/.test(document.getElementById("reconcile-result").textContent), null, { timeout: 15000 });
  await shot(desk, "reconciled");
  ok("checked against MariaDB from the desk: in agreement");
  await desk.fill("#filters [name=q]", "Desk test phone");
  await desk.selectOption("#filters [name=status]", "ended");
  await desk.click("#filters button[type=submit]");
  await desk.waitForFunction((id) => Array.from(document.querySelectorAll("#all-sales tbody tr td:first-child"))
    .some((td) => td.textContent === String(id)), id);
  ok("the filters (ended, title words) find it");

  await desk.setViewportSize({ width: 390, height: 844 });
  await desk.screenshot({ path: path.join(ARTIFACTS, "desk-phone.png") });
  assert.ok(await desk.evaluate(() => document.documentElement.scrollWidth <= 400), "nothing wider than a phone");
  await desk.setViewportSize({ width: 1400, height: 900 });
  ok("on a phone the desk fits the screen's width");

  await desk.click("#signout");
  await desk.waitForSelector("#signin:not([hidden])");
  assert.equal(await desk.evaluate(() => sessionStorage.length), 0);
  ok("signing out forgets the token");
  assert.deepEqual(pageErrors, []);
  ok("no page error");
} catch (e) {
  await shot(desk, "failure").catch(() => {});
  const errors = await desk.evaluate(() => Array.from(document.querySelectorAll(".field-error, #form-error, #sale-message"))
    .map((e) => e.textContent).filter(Boolean)).catch(() => []);
  console.error(`desk: failed; the page says: ${JSON.stringify(errors)}`);
  throw e;
} finally {
  await browser.close();
}
console.log(`desk: ${passedCount()} checks passed`);
