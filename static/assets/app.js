// The shopper's side of a flash sale. The HTML carries no per-user data and no stock
// numbers (it is cached by the CDN); everything live comes from the API:
//   GET /api/time (clock offset), GET /api/sales/{id} (state), POST /api/login,
//   GET /api/sales/{id}/mine (what this shopper holds here: asked on every load, so a reload
//   or a second tab never loses a win), GET /api/orders (My orders),
//   POST /api/sales/{id}/pow (a proof-of-work challenge, solved here),
//   POST /api/sales/{id}/captcha?pow=..&pow_solution=.. (a PNG), POST /api/sales/{id}/path,
//   POST <path> (buy), GET /api/orders/{id} (poll), POST /api/orders/{id}/pay.
// A sale with a waiting room (sale.queue "fifo" or "random"): POST /api/sales/{id}/queue
// (join: a ticket), GET /api/sales/{id}/queue?ticket= (place, ETA, admission; answered by
// the edge), POST .../queue?again=<ticket> (back of the line after a lapsed turn).
// Three pages: the list (index.html), a sale (data-sale-id), My orders (data-page="orders").
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const show = (id, on = true) => { $(id).hidden = !on; };
  const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

  async function api(method, path, body, form) {
    const opts = { method, credentials: "same-origin", headers: {} };
    if (form) {
      opts.headers["Content-Type"] = "application/x-www-form-urlencoded";
      opts.body = new URLSearchParams(form).toString();
    } else if (body) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, opts);
    } catch (e) {
      return { status: 0, body: {} };
    }
    let data = {};
    try { data = await res.json(); } catch (e) { /* not JSON */ }
    return { status: res.status, body: data };
  }

  // ---- Proof of work: SHA-256 in plain JS (synchronous and fast for short messages; the
  // WebCrypto digest is asynchronous per call, far slower for thousands of tries).
  const K = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2]);
  const W = new Uint32Array(64);
  // The first 32 bits of SHA-256 of an ASCII string (all a leading-zero count needs).
  function sha256Head(text) {
    const n = text.length, blocks = ((n + 9 + 63) >> 6);
    const m = new Uint32Array(blocks * 16);
    for (let i = 0; i < n; i++) m[i >> 2] |= text.charCodeAt(i) << (24 - 8 * (i & 3));
    m[n >> 2] |= 0x80 << (24 - 8 * (n & 3));
    m[blocks * 16 - 1] = n * 8;
    let h0 = 0x6a09e667, h1 = 0xbb67ae85, h2 = 0x3c6ef372, h3 = 0xa54ff53a,
      h4 = 0x510e527f, h5 = 0x9b05688c, h6 = 0x1f83d9ab, h7 = 0x5be0cd19;
    const rotr = (x, r) => (x >>> r) | (x << (32 - r));
    for (let b = 0; b < blocks; b++) {
      for (let t = 0; t < 64; t++) {
        if (t < 16) { W[t] = m[b * 16 + t]; continue; }
        const x = W[t - 15], y = W[t - 2];
        W[t] = W[t - 16] + (rotr(x, 7) ^ rotr(x, 18) ^ (x >>> 3)) + W[t - 7]
          + (rotr(y, 17) ^ rotr(y, 19) ^ (y >>> 10));
      }
      let a = h0, c = h2, d = h3, e = h4, f = h5, g = h6, h = h7, bb = h1;
      for (let t = 0; t < 64; t++) {
        const t1 = (h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[t] + W[t]) | 0;
        const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & bb) ^ (a & c) ^ (bb & c))) | 0;
        h = g; g = f; f = e; e = (d + t1) | 0; d = c; c = bb; bb = a; a = (t1 + t2) | 0;
      }
      h0 = (h0 + a) | 0; h1 = (h1 + bb) | 0; h2 = (h2 + c) | 0; h3 = (h3 + d) | 0;
      h4 = (h4 + e) | 0; h5 = (h5 + f) | 0; h6 = (h6 + g) | 0; h7 = (h7 + h) | 0;
    }
    return h0 >>> 0;
  }
  // The smallest decimal x with `bits` leading zero bits in SHA-256("<challenge>.<x>").
  function solvePow(challenge, bits) {
    const limit = bits >= 32 ? 0 : 2 ** (32 - bits);
    for (let x = 0; ; x++) {
      if (sha256Head(`${challenge}.${x}`) < limit) return String(x);
    }
  }

  // ---- Server clock: offset = server - local, from the sample with the shortest round trip.
  const clock = { offset: 0, rtt: Infinity };
  async function syncClock(samples) {
    let best = { rtt: Infinity, offset: clock.offset };
    for (let i = 0; i < samples; i++) {
      const t0 = Date.now();
      const r = await api("GET", "/api/time");
      const t1 = Date.now();
      if (r.status === 200 && typeof r.body.now_ms === "number" && t1 - t0 < best.rtt) {
        best = { rtt: t1 - t0, offset: r.body.now_ms - (t0 + t1) / 2 };
      }
    }
    if (best.rtt < Infinity) { clock.offset = best.offset; clock.rtt = best.rtt; }
  }
  const serverNow = () => Date.now() + clock.offset;


  // ---- Words, money and dates in the shopper's language and time zone.
  const money = (cents) => (cents / 100).toLocaleString(undefined, { style: "currency", currency: "EUR" });
  const when = (ms) => new Date(ms).toLocaleString(undefined, {
    weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", timeZoneName: "short" });
  const clockText = (ms) => {
    const s = Math.max(0, Math.ceil(ms / 1000));
    const d = Math.floor(s / 86400);
    const hms = [Math.floor(s / 3600) % 24, Math.floor(s / 60) % 60, s % 60].map((n) => String(n).padStart(2, "0")).join(":");
    return d > 0 ? `${d} d ${hms}` : hms;
  };
  const shortTime = (s) => s < 90 ? `${Math.max(1, Math.round(s))} s` : `${Math.round(s / 60)} min`;
  const leftText = (ms) => ms > 0 ? `${clockText(ms)} left` : "time is up";

  function stockText(s) {
    switch (s.status) {
      case "sold_out": return "Sold out";
      case "ended": return "This sale has ended";
      case "paused": return "Paused by the shop for a moment";
      case "upcoming": return `${s.stock} ${s.stock === 1 ? "unit" : "units"} from ${when(s.starts_ms)}`;
      default: return s.stock_left == null ? "On sale now" : `${s.stock_left} of ${s.stock} left`;
    }
  }

  // ---- The draw of a random waiting room, recomputed here from its published seed: the
  // same keyed Feistel permutation the edge uses (edge/lua/seckill/queue.lua).
  function shuffleKeys(seedHex) {
    const keys = [];
    for (let i = 1; i <= 6; i++) keys.push(parseInt(seedHex.slice(5 * i - 5, 5 * i), 16));
    return keys;
  }
  function permute(keys, size, n) {
    let half = 1;
    while (half < 15 && (1 << (2 * half)) < size) half++;
    const mask = (1 << half) - 1;
    const round = (r, k) => {
      let y = ((r + k) * 0x2545F5) | 0;
      y ^= y >>> 15;
      y = (((y & 0x3FFFFF) * 0x1B873) + k) | 0;
      y ^= y >>> 13;
      return y & mask;
    };
    let x = n - 1;
    do {
      let l = x >>> half, r = x & mask;
      for (const k of keys) { const t = l ^ round(r, k); l = r; r = t; }
      x = l * (mask + 1) + r;
    } while (x >= size);
    return x + 1;
  }
  async function sha256Hex(text) {
    const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
    return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  const signedIn = () => !!localStorage.getItem("seckill.signedIn");
  const signedOut = (r) => r.status === 401 || r.body.error === "bad_session";
  function forgetSession() { localStorage.removeItem("seckill.signedIn"); }

  // ---- The list of sales: the published list baked into the page, brought up to date from
  // GET /api/sales (a sale published since appears, an ended one goes); then each one's
  // state, the first 40 at once, the rest as they scroll in.
  async function listPage() {
    const ul = document.querySelector("ul.sales");
    const listed = [];
    let r = { status: 0 };
    for (let after = "", pages = 0; after !== null && pages < 5; after = r.body.next_after ?? null, pages++) {
      r = await api("GET", `/api/sales${after ? `?after=${after}` : ""}`);
      if (r.status !== 200 || !Array.isArray(r.body.sales)) break;
      listed.push(...r.body.sales);
    }
    if (ul && r.status === 200) {
      const baked = new Map(Array.from(ul.children, (li) => [li.dataset.saleId, li]));
      ul.replaceChildren(...listed.map((s) => {
        const li = baked.get(String(s.id)) || document.createElement("li");
        li.dataset.saleId = s.id;
        li.replaceChildren();
        const a = document.createElement("a");
        a.href = `/sales/${s.id}/`;
        a.textContent = s.title;
        const state = document.createElement("span");
        state.className = "state";
        li.append(a, " ", state);
        return li;
      }));
      if (!listed.length) {
        const li = document.createElement("li");
        li.textContent = "No sales are announced right now. Come back soon.";
        ul.append(li);
      }
    }
    const items = Array.from(document.querySelectorAll("[data-sale-id]"));
    const fill = async (li) => {
      const r = await api("GET", `/api/sales/${li.dataset.saleId}`);
      if (r.status === 200) li.querySelector(".state").textContent = stockText(r.body);
    };
    items.slice(0, 40).forEach(fill);
    if (!("IntersectionObserver" in window)) return;
    const seen = new IntersectionObserver((entries) => entries.forEach((e) => {
      if (e.isIntersecting) { seen.unobserve(e.target); fill(e.target); }
    }));
    items.slice(40).forEach((li) => seen.observe(li));
  }

  // ---- An order as its owner sees it: what it is, its deadline or receipt, and the Pay button.
  function orderText(o) {
    switch (o.status) {
      case "created": return [`You got it! Order ${o.order_id}, ${money(o.price_cents)}. Pay by ${when(o.pay_by_ms)}.`, "ok"];
      case "paid": return [`Paid ${when(o.paid_ms)}. Receipt: order ${o.order_id}, ${money(o.price_cents)}.`, "ok"];
      case "cancelled": return [`Order ${o.order_id} expired: it was not paid by ${when(o.pay_by_ms)}, and the unit went back on sale.`, "bad"];
      default: return [`Your order ${o.order_id} is being recorded…`, ""];
    }
  }

  // Renders orders into `box` (one block each); unpaid ones get a live countdown and a Pay
  // button. `changed` is called after a payment settles.
  function renderOrders(box, orders, changed) {
    box.replaceChildren();
    for (const o of orders) {
      const div = document.createElement("div");
      div.className = "order";
      div.dataset.orderId = o.order_id;
      const [text, cls] = orderText(o);
      const p = document.createElement("p");
      p.className = cls;
      p.textContent = (o.title ? `${o.title}: ` : "") + text;
      div.append(p);
      if (o.status === "created") {
        const timer = document.createElement("p");
        timer.className = "timer";
        timer.dataset.deadline = o.pay_by_ms;
        const pay = document.createElement("button");
        pay.textContent = `Pay ${money(o.price_cents)} now`;
        pay.addEventListener("click", () => payOrder(o, pay, p, changed));
        div.append(timer, pay);
      }
      box.append(div);
    }
    tickDeadlines();
  }

  // Every unpaid order's countdown, once a second; past its deadline it says so.
  function tickDeadlines() {
    for (const t of document.querySelectorAll("[data-deadline]")) {
      const left = Number(t.dataset.deadline) - serverNow();
      t.textContent = left > 0 ? `Time to pay: ${clockText(left)}` : "The time to pay is up.";
      const button = t.parentElement.querySelector("button");
      if (button && left <= 0) button.hidden = true;
    }
  }

  async function payOrder(o, button, line, changed) {
    button.disabled = true;
    let r;
    for (let attempt = 0; attempt < 5; attempt++) {
      r = await api("POST", `/api/orders/${o.order_id}/pay`);
      if (r.status !== 429 && r.status !== 503) break;
      await sleep(700 + 500 * attempt); // a busy moment: the same payment again (one charge)
    }
    if (r.status !== 202 && r.status !== 200) {
      button.disabled = false;
      line.className = "bad";
      line.textContent = r.body.message || "The payment could not start; try again.";
      return;
    }
    line.className = "";
    line.textContent = "Paying…";
    for (let i = 0; i < 120; i++) {
      const s = await api("GET", `/api/orders/${o.order_id}`);
      if (s.status === 200 && (s.body.status === "paid" || s.body.status === "cancelled")) break;
      await sleep(500);
    }
    changed();
  }

  // ---- My orders: every sale, newest first.
  async function ordersPage() {
    const box = $("orders");
    if (!signedIn()) { box.textContent = "Sign in on a sale's page first: your orders are kept under your name."; return; }
    const load = async () => {
      const r = await api("GET", "/api/orders?limit=50");
      if (signedOut(r)) { forgetSession(); box.textContent = "Your session ended: sign in again on a sale's page."; return; }
      if (r.status !== 200) { box.textContent = "Your orders could not be loaded; try again in a moment."; return; }
      if (!r.body.orders.length) { box.textContent = "No orders yet."; return; }
      renderOrders(box, r.body.orders, load);
    };
    await syncClock(3);
    await load();
    setInterval(tickDeadlines, 1000);
  }

  // ---- A sale's page. One decision (`decide`) of what to show, from the sale's state, what
  // this shopper holds and their session; every change (a poll, a buy, a reload) goes
  // through it, so the page follows the sale: back on sale after a sell-out, paused,
  // resumed, ended.
  function salePage(body) {
    const saleId = body.dataset.saleId || (location.pathname.match(/^\/sales\/(\d+)\//) || [])[1];
    const st = {
      sale: null, mine: null, captcha: null, ticket: null, loading: false, buying: false,
      polling: false, unsure: false, turnEnds: null, etaAt: null, lastQueue: null,
    };
    const ticketKey = `seckill.ticket.${saleId}`;
    const queued = () => st.sale && st.sale.queue && st.sale.queue !== "none";
    const withTicket = (query) => st.ticket
      ? `${query ? query + "&" : "?"}ticket=${encodeURIComponent(st.ticket)}` : query;
    const liveOrders = () => ((st.mine && st.mine.orders) || []).filter((o) => o.status !== "cancelled");

    function say(text, cls, retry = false) {
      show("result", !!text);
      $("message").textContent = text || "";
      $("message").className = cls || "";
      show("retry-button", retry);
    }
    const captchaError = (text) => { $("captcha-error").textContent = text || ""; };

    // The product: picture, description and rules from the sale itself.
    function renderProduct(s) {
      $("title").textContent = s.title;
      document.title = `${s.title} — flash sale`;
      $("price").textContent = money(s.price_cents);
      $("description").textContent = s.description
        || "A limited run at a fraction of the usual price, while stock lasts.";
      const picture = $("picture");
      if (s.image_url && !picture.dataset.fallback && picture.getAttribute("src") !== s.image_url) {
        // A picture that does not load gives way to the page's own (never a broken image).
        const own = picture.getAttribute("src");
        picture.onerror = () => { picture.dataset.fallback = "1"; picture.src = own; };
        picture.src = s.image_url;
      }
      const rules = [
        `Starts ${when(s.starts_ms)}; ends ${when(s.ends_ms)}.`,
        `At most ${s.per_user_limit} per customer.`,
        `Pay within ${shortTime(s.pay_window_s)} of winning, or the unit goes back on sale.`,
      ];
      if (queued()) rules.push(s.queue === "random"
        ? "A waiting room: everyone who joins before the start is placed by a draw anyone can check."
        : "A waiting room: first come, first served.");
      $("rules").replaceChildren(...rules.map((t) => Object.assign(document.createElement("li"), { textContent: t })));
      $("starts-at").textContent = when(s.starts_ms);
      $("stock").textContent = stockText(s);
    }

    async function refreshSale() {
      const r = await api("GET", `/api/sales/${saleId}`);
      if (r.status === 404) { say("This sale does not exist.", "bad"); return null; }
      if (r.status === 200) { st.sale = r.body; renderProduct(st.sale); }
      return st.sale;
    }

    // What this shopper holds here; a won order shows with its deadline whatever else happens.
    async function refreshMine() {
      if (!signedIn()) { st.mine = null; show("mine", false); return; }
      const r = await api("GET", `/api/sales/${saleId}/mine`);
      if (signedOut(r)) { forgetSession(); st.mine = null; return; }
      if (r.status !== 200) return;
      st.mine = r.body;
      if (r.body.ticket && !st.ticket) { st.ticket = r.body.ticket; localStorage.setItem(ticketKey, st.ticket); }
      const orders = r.body.orders.slice();
      for (let i = 0; i < r.body.being_recorded; i++) orders.push({ order_id: "(new)", status: "queued" });
      show("mine", orders.length > 0);
      renderOrders($("mine"), orders, async () => { await refreshMine(); decide(); });
    }

    function decide() {
      const s = st.sale;
      if (!s) return;
      const cards = ["signin", "countdown", "queue", "captcha"];
      const only = (...on) => cards.forEach((c) => show(c, on.includes(c)));
      if (s.status === "ended") { only(); say(liveOrders().length ? "" : "This sale has ended.", "bad"); return; }
      if (liveOrders().length >= s.per_user_limit) { only(); say(""); return; }
      if (!signedIn()) { only("signin"); return; }
      if (queued()) { only("queue"); waitingRoom(); return; }
      if (serverNow() < s.starts_ms) {
        only("countdown");
        if (s.starts_ms - serverNow() < 5000) ensureCaptcha();
        return;
      }
      if (s.status === "paused") { only(); say("Paused by the shop for a moment: this page goes on by itself when the sale resumes.", ""); return; }
      if (s.status === "sold_out") {
        only();
        say("Sold out for now. Unpaid orders go back on sale when their time to pay runs out: keep this page open, it offers them if they do.", "bad");
        return;
      }
      if (!st.buying) say("");
      only("captcha");
      ensureCaptcha();
    }

    // ---- The captcha: a proof of work first (the edge prices each picture), then the PNG.
    async function ensureCaptcha() {
      const fresh = st.captcha && st.captcha.expires_s * 1000 - serverNow() > 15000;
      if (!fresh && !st.loading) await loadCaptcha();
    }

    async function loadCaptcha() {
      st.loading = true;
      $("buy-button").disabled = true;
      try {
        const p = await api("POST", `/api/sales/${saleId}/pow${withTicket("")}`);
        if (signedOut(p)) { forgetSession(); decide(); return false; }
        if (p.status !== 200) { captchaError(p.body.message || "The picture could not load; try New image."); return false; }
        let query = "";
        if (p.body.bits > 0) {
          query = `?pow=${encodeURIComponent(p.body.challenge)}&pow_solution=${solvePow(p.body.challenge, p.body.bits)}`;
        }
        const r = await api("POST", `/api/sales/${saleId}/captcha${withTicket(query)}`);
        if (r.status !== 200) { captchaError(r.body.message || "The picture could not load; try New image."); return false; }
        st.captcha = r.body;
        $("captcha-image").src = r.body.image;
        $("answer").value = "";
        return true;
      } finally {
        st.loading = false;
        $("buy-button").disabled = false;
      }
    }

    async function buy() {
      if (st.buying || st.loading) return;
      const answer = $("answer").value.trim().toUpperCase();
      if (!answer) { captchaError("Type the characters you see first."); $("answer").focus(); return; }
      if (!st.captcha) { await loadCaptcha(); return; }
      st.buying = true;
      $("buy-button").disabled = true;
      captchaError("");
      try {
        let p;
        for (let attempt = 0; ; attempt++) {
          p = await api("POST", `/api/sales/${saleId}/path${withTicket("")}`, null,
            { captcha_token: st.captcha.token, answer });
          // Too many requests this second (limits come before the captcha is looked at, so
          // it is not spent): the same answer again in a moment.
          if (p.status !== 429 || attempt >= 4) break;
          await sleep(600 + 400 * attempt);
        }
        st.captcha = null; // spent, right or wrong
        if (p.status === 403 && p.body.error === "bad_captcha") {
          captchaError(p.body.reason === "wrong" ? "That was not the code shown. Here is a new picture." : p.body.message);
          await loadCaptcha();
          $("answer").focus();
          return;
        }
        if (p.status !== 200) { await refused(p); return; }
        await buyWith(p.body.path);
      } finally {
        st.buying = false;
        $("buy-button").disabled = false;
      }
    }

    // The signed path, tried again while the crowd is too large this second.
    async function buyWith(path) {
      for (let attempt = 0; attempt < 6; attempt++) {
        const b = await api("POST", path);
        if (b.status === 200) { show("captcha", false); say("Your order is being placed…", ""); await followOrder(b.body.order_id); return; }
        const busy = b.status === 429 || b.status === 0 || b.status === 503;
        if (!busy) { await refused(b); return; }
        if (b.status !== 429) st.unsure = true; // the outcome of a 503 is unknown
        say("So many people right now: trying again…", "");
        await sleep(700 + 500 * attempt);
      }
      say("We are very busy. Try again in a moment.", "", true);
    }

    // A refusal: each says what happened and what comes next.
    async function refused(r) {
      if (signedOut(r)) { forgetSession(); decide(); return; }
      if (r.status === 409 || (r.status === 410 && st.unsure)) {
        await refreshMine();
        if (liveOrders().length) { decide(); return; }
      }
      const texts = {
        409: "You already hold an order for this sale.",
        425: "Not yet: wait for the countdown.",
        429: "So many people! Try again in a moment.",
      };
      await refreshSale();
      if (r.status === 403) say(r.body.message || "That did not work; take a new picture and try again.", "bad", true);
      else if (texts[r.status]) say(texts[r.status], r.status === 409 ? "bad" : "", r.status === 429);
      else if (r.status !== 410 && r.body.error !== "paused") say(r.body.message || "Something went wrong; try again.", "", true);
      decide();
    }

    async function followOrder(id) {
      for (let i = 0; i < 120; i++) {
        const r = await api("GET", `/api/orders/${id}`);
        if (r.status === 200 && r.body.status !== "queued") break;
        await sleep(700);
      }
      say("");
      await refreshMine();
      decide();
    }

    // ---- The waiting room.
    function waitingRoom() {
      if (!st.ticket) st.ticket = localStorage.getItem(ticketKey);
      show("join-button", !st.ticket);
      show("queue-hint", !!st.ticket);
      if (st.ticket && !st.polling) pollTicket();
    }

    async function join(again) {
      const button = again ? $("rejoin-button") : $("join-button");
      button.disabled = true;
      const query = again ? `?again=${encodeURIComponent(st.ticket)}` : "";
      const r = await api("POST", `/api/sales/${saleId}/queue${query}`);
      button.disabled = false;
      if (signedOut(r)) { forgetSession(); decide(); return; }
      if (r.status !== 200) { $("queue-detail").textContent = r.body.message || "Could not join; try again."; return; }
      st.ticket = r.body.ticket;
      st.turnEnds = null;
      st.etaAt = null;
      localStorage.setItem(ticketKey, st.ticket);
      show("join-button", false);
      show("rejoin-button", false);
      show("queue-hint");
      if (!st.polling) pollTicket();
    }

    // The ETA only moves down; when the line slows down enough to push it back, the page says
    // why instead of silently moving it.
    function etaText(q) {
      if (q.eta_s == null) { st.etaAt = null; return ""; }
      const at = serverNow() + q.eta_s * 1000;
      let note = "";
      if (st.etaAt == null || at < st.etaAt) st.etaAt = at;
      else if (at > st.etaAt + Math.max(10000, 0.25 * (st.etaAt - serverNow()))) {
        st.etaAt = at;
        note = " (later than we said: fewer shoppers used their turn in time, so the line moved more slowly)";
      }
      return `; about ${shortTime((st.etaAt - serverNow()) / 1000)} to your turn${note}`;
    }

    function describe(q) {
      const place = q.position != null ? `#${q.position.toLocaleString()}` : "";
      switch (q.state) {
        case "draw": return ["In the draw", `${q.joined} joined so far. Places are drawn at random at ${when(q.draw_at_ms)}: arriving early gives no edge.`];
        case "waiting": return [place, `${q.ahead.toLocaleString()} ahead of you${etaText(q)}.${q.paused ? " The line is paused for a moment." : ""}`];
        case "out_of_reach": return [place, `The ${q.stock_left} units left cannot reach your place unless shoppers ahead leave. You keep it: the page tells you if the line comes to you.`];
        case "admitted": return ["Your turn!", "Type the characters in the picture and buy."];
        case "sold_out": return [place || "Sold out", "Sold out. You keep your place: unpaid orders go back on sale when their time to pay runs out, and this page offers them to you in line order."];
        case "expired": return [place, q.stock_left > 0
          ? "Your turn passed without a purchase. You can join again at the back of the line."
          : "Your turn passed without a purchase, and nothing is left to buy now."];
        case "ended": return ["Ended", "This sale has ended."];
        default: return [place, ""];
      }
    }

    async function pollTicket() {
      st.polling = true;
      while (st.ticket && st.sale && st.sale.status !== "ended") {
        const r = await api("GET", `/api/sales/${saleId}/queue?ticket=${encodeURIComponent(st.ticket)}`);
        if (r.status === 403) { localStorage.removeItem(ticketKey); st.ticket = null; show("join-button"); break; }
        const next = r.status === 200 ? await onQueue(r.body) : 3000;
        if (next == null) break;
        await sleep(next);
      }
      st.polling = false;
    }

    // One poll's answer; the pause before the next (sooner as the turn nears), or null to stop.
    async function onQueue(q) {
      st.lastQueue = q;
      // The draw's seed is published with the sale once the draw is made: ask for it once.
      if (st.sale.queue === "random" && q.drawn != null && !st.sale.draw_seed) await refreshSale();
      const [place, detail] = describe(q);
      $("queue-place").textContent = place;
      $("queue-detail").textContent = (q.reopened && q.state !== "sold_out" ? "Units came back on sale. " : "") + detail;
      show("rejoin-button", q.state === "expired" && q.stock_left > 0);
      audit(q);
      if (q.state === "admitted") {
        if (!st.turnEnds) st.turnEnds = serverNow() + q.admit_ttl_s * 1000;
        show("captcha");
        await ensureCaptcha();
        return 2000;
      }
      st.turnEnds = null;
      show("captcha", false);
      if (q.state === "ended") return null;
      if (q.state === "sold_out" && st.sale.status !== "sold_out") refreshSale();
      if (q.state === "expired") return 5000;
      // Out of reach or sold out: nothing moves for this ticket unless units come back.
      if (q.state === "out_of_reach" || q.state === "sold_out") return 30000;
      // Before the draw nothing changes for this ticket: the next look is just after it,
      // spread over two seconds (a crowd's pages do not all ask in the same instant).
      if (q.state === "draw" && q.draw_at_ms) return Math.max(1000, q.draw_at_ms - serverNow()) + Math.random() * 2000;
      return q.eta_s != null ? Math.min(10000, Math.max(1000, q.eta_s * 500)) : 3000;
    }

    // A random draw anyone can check: the seed's SHA-256 was published before the draw; with
    // the seed published after it, this page recomputes its own place.
    async function audit(q) {
      const s = st.sale;
      if (!s || s.queue !== "random" || !s.draw_commitment) return;
      show("audit");
      if (!s.draw_seed) {
        $("audit-text").textContent = `Before the draw, the shop commits to its seed: SHA-256 ${s.draw_commitment}. After the draw the seed is published here, and this page recomputes your place from it.`;
        return;
      }
      if (!q.in_draw || q.drawn == null) {
        $("audit-text").textContent = `The draw's seed: ${s.draw_seed}. You joined after the draw, so your place is your arrival order.`;
        return;
      }
      const committed = (await sha256Hex(s.draw_seed)) === s.draw_commitment;
      const mine = permute(shuffleKeys(s.draw_seed), q.drawn, q.number);
      const ok = committed && mine === q.position;
      $("audit-text").textContent = ok
        ? `Verified: the seed ${s.draw_seed} matches the commitment published before the draw, and it places ticket ${q.number} of ${q.drawn} at #${mine}, as shown.`
        : `Not verified: with the seed ${s.draw_seed}, ticket ${q.number} of ${q.drawn} would be #${mine}${committed ? "" : ", and the seed does not match the commitment"}.`;
      $("audit").dataset.verified = String(ok);
    }

    // ---- Clocks: the start, the turn, the picture's life, the time to pay. Every quarter
    // second; crossing zero re-decides what the page shows.
    function tick() {
      const s = st.sale;
      if (!s) return;
      const toStart = s.starts_ms - serverNow();
      $("clock").textContent = clockText(toStart);
      show("queue-clock", queued() && toStart > 0);
      $("queue-clock").textContent = `Starts in ${clockText(toStart)}`;
      if (!$("countdown").hidden && toStart <= 0) { refreshSale(); decide(); }
      else if (!$("countdown").hidden && toStart < 5000) ensureCaptcha();
      show("turn-timer", !!st.turnEnds);
      if (st.turnEnds) $("turn-timer").textContent = `Your turn: ${leftText(st.turnEnds - serverNow())}`;
      if (st.captcha && !$("captcha").hidden) {
        const left = st.captcha.expires_s * 1000 - serverNow();
        $("captcha-timer").textContent = `This picture: ${leftText(left)}`;
        if (left < 5000 && !st.buying && !st.loading) { captchaError("The picture expired; here is a new one."); loadCaptcha(); }
      }
      tickDeadlines();
      // An unpaid order past its deadline: ask again soon (the sweeper closes it within a
      // second or two), so the page says plainly that it expired.
      const due = liveOrders().some((o) => o.status === "created" && o.pay_by_ms + 1500 < serverNow());
      if (due && !st.askedAt || due && serverNow() - st.askedAt > 3000) {
        st.askedAt = serverNow();
        refreshMine().then(decide);
      }
    }

    async function signIn() {
      const name = $("name").value.trim();
      if (!/^[A-Za-z0-9_.@-]{1,64}$/.test(name)) { say("Use letters, digits and _ . - @ for your name.", "bad"); return; }
      const r = await api("POST", "/api/login", { user: name });
      if (r.status !== 200) { say(r.body.message || "Could not sign in; try again.", "bad"); return; }
      localStorage.setItem("seckill.signedIn", "1");
      say("");
      await refreshMine();
      decide();
    }

    async function boot() {
      $("signin-button").addEventListener("click", signIn);
      $("name").addEventListener("keydown", (e) => { if (e.key === "Enter") signIn(); });
      $("buy-button").addEventListener("click", buy);
      $("answer").addEventListener("keydown", (e) => { if (e.key === "Enter") buy(); });
      $("new-image").addEventListener("click", () => { captchaError(""); loadCaptcha(); });
      $("retry-button").addEventListener("click", () => { say(""); st.captcha = null; decide(); });
      $("join-button").addEventListener("click", () => join(false));
      $("rejoin-button").addEventListener("click", () => join(true));
      // Clocks drift by milliseconds an hour: three samples at the start, two every two minutes.
      await syncClock(3);
      setInterval(() => syncClock(2), 120000);
      if (!(await refreshSale())) return;
      await refreshMine();
      decide();
      setInterval(tick, 250);
      // The sale's state every few seconds (sold out, units back, paused, ended); what this
      // shopper holds when it may have changed (an unpaid order past its deadline).
      // In a waiting room the ticket's polls carry all of that (and ask for the sale when it
      // sells out): no second timer then.
      setInterval(async () => { if (queued() && st.polling) return; await refreshSale(); decide(); }, 4000);
      setInterval(() => { if (liveOrders().length) refreshMine(); }, 15000);
    }
    boot();
  }

  const page = document.body.dataset.page;
  if (page === "orders") ordersPage();
  else if (document.body.dataset.saleId !== undefined) salePage(document.body);
  else listPage();
})();
