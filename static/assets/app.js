// The shopper's side of a flash sale. The HTML carries no per-user data and no stock
// numbers (it is cached by the CDN); everything live comes from the API:
//   GET /api/time (clock offset), GET /api/sales/{id} (state), POST /api/login,
//   POST /api/sales/{id}/pow (a proof-of-work challenge, solved here),
//   POST /api/sales/{id}/captcha?pow=..&pow_solution=.., POST /api/sales/{id}/path, POST <path> (buy),
//   GET /api/orders/{id} (poll), GET /api/sales/{id}/orders (mine), POST /api/orders/{id}/pay.
// A sale with a waiting room (sale.queue "fifo" or "random"): POST /api/sales/{id}/queue
// (join: a ticket, kept in localStorage), GET /api/sales/{id}/queue?ticket= (the place, ETA,
// admission; answered by the edge), and pow, captcha and path carry ?ticket= once admitted.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const show = (id, on = true) => { $(id).hidden = !on; };

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

  const money = (cents) => (cents / 100).toLocaleString(undefined, { style: "currency", currency: "EUR" });
  const hms = (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });

  function stockText(s) {
    switch (s.status) {
      case "sold_out": return "Sold out";
      case "ended": return "This sale has ended";
      case "upcoming": return `${s.stock} ${s.stock === 1 ? "unit" : "units"} at ${hms(s.starts_ms)}`;
      default: return s.stock_left == null ? "On sale now" : `${s.stock_left} of ${s.stock} left`;
    }
  }

  // ---- The sale list.
  async function listPage() {
    for (const li of document.querySelectorAll("[data-sale-id]")) {
      const r = await api("GET", `/api/sales/${li.dataset.saleId}`);
      if (r.status === 200) li.querySelector(".state").textContent = stockText(r.body);
    }
  }

  // ---- The sale page.
  async function salePage(body) {
    // A published page names its sale; the generic page (/sales/_/, served for a sale that
    // has no page of its own yet) reads it from the address.
    const saleId = body.dataset.saleId || (location.pathname.match(/^\/sales\/(\d+)\//) || [])[1];
    // The API is authoritative (an operator may have moved the start since publishing).
    let startsMs = Number(body.dataset.startsMs);
    let sale = null;
    let captcha = null;
    let done = false;
    const ticketKey = `seckill.ticket.${saleId}`;
    let ticket = null;
    const withTicket = (query) => ticket
      ? `${query ? query + "&" : "?"}ticket=${encodeURIComponent(ticket)}` : query;

    async function refreshSale() {
      const r = await api("GET", `/api/sales/${saleId}`);
      if (r.status === 200) {
        sale = r.body;
        startsMs = sale.starts_ms;
        $("stock").textContent = stockText(sale);
        if (!body.dataset.saleId) {
          document.title = `${sale.title} — flash sale`;
          document.querySelector("h1").textContent = sale.title;
          document.querySelector(".price").textContent = money(sale.price_cents);
        }
      }
      return sale;
    }

    function say(text, cls, buttons = {}) {
      show("result");
      $("message").textContent = text;
      $("message").className = cls || "";
      show("pay-button", !!buttons.pay);
      show("retry-button", !!buttons.retry);
    }

    async function signIn() {
      const name = $("name").value.trim();
      if (!/^[A-Za-z0-9_.@-]{1,64}$/.test(name)) {
        say("Use letters, digits and _ . - @ for your name.", "bad");
        return;
      }
      const r = await api("POST", "/api/login", { user: name });
      if (r.status !== 200) { say(r.body.message || "Could not sign in, try again.", "bad"); return; }
      localStorage.setItem("seckill.signedIn", "1");
      show("signin", false);
      $("result").hidden = true;
      start();
    }

    // A sale with a waiting room goes through the line; others count down to the start.
    function start() {
      if (sale && sale.queue && sale.queue !== "none") waitingRoom(); else countdown();
    }

    // ---- The waiting room.
    function waitingRoom() {
      show("queue");
      ticket = localStorage.getItem(ticketKey);
      show("join-button", !ticket);
      if (ticket) pollTicket();
    }

    async function join() {
      $("join-button").disabled = true;
      const r = await api("POST", `/api/sales/${saleId}/queue`);
      $("join-button").disabled = false;
      if (signedOut(r)) { localStorage.removeItem("seckill.signedIn"); show("queue", false); show("signin"); return; }
      if (r.status !== 200) { $("queue-detail").textContent = r.body.message || "Could not join, try again."; return; }
      ticket = r.body.ticket;
      localStorage.setItem(ticketKey, ticket);
      show("join-button", false);
      pollTicket();
    }

    const seconds = (s) => s < 90 ? `${Math.max(1, Math.round(s))} s` : `${Math.round(s / 60)} min`;

    // What the page says for each answer of the edge.
    function describe(q) {
      const place = q.position != null ? `#${q.position.toLocaleString()}` : "";
      const eta = q.eta_s != null ? `; about ${seconds(q.eta_s)} to your turn` : "";
      switch (q.state) {
        case "draw": return ["In the draw", `${q.joined} joined so far. Places are drawn at random at ${hms(q.draw_at_ms)}: arriving early gives no edge${eta}.`];
        case "waiting": return [place, `${q.ahead.toLocaleString()} ahead of you${eta}.${q.paused ? " The line is paused for a moment." : ""}`];
        case "out_of_reach": return [place, `The ${q.stock_left} units left cannot reach your place unless shoppers ahead leave. You keep it: we tell you if the line comes to you.`];
        case "admitted": return ["Your turn!", `Solve the captcha and buy: your turn lasts ${seconds(q.admit_ttl_s)}.`];
        case "sold_out": return [place || "Sold out", "Sold out. You keep your place: unpaid orders go back on sale when their time to pay runs out, and this page will say so."];
        case "expired": return [place, "Your turn passed without a purchase; the place went to the next in line."];
        case "ended": return ["Ended", "This sale has ended."];
        default: return [place, ""];
      }
    }

    async function pollTicket() {
      if (done) return;
      const r = await api("GET", `/api/sales/${saleId}/queue?ticket=${encodeURIComponent(ticket)}`);
      let next = 2000;
      if (r.status === 200) {
        const q = r.body;
        const [place, detail] = describe(q);
        $("queue-place").textContent = place;
        $("queue-detail").textContent = (q.reopened && q.state !== "sold_out" ? "Units came back on sale. " : "") + detail;
        if (q.state === "admitted") { await admitted(); return; }
        if (q.state === "sold_out" && sale && sale.status !== "sold_out") refreshSale();
        if (q.state === "ended" || q.state === "expired") return;
        // Sooner as the turn nears; a place far back (or a waitlist) every 10 s.
        next = q.state === "out_of_reach" || q.state === "sold_out" ? 10000
          : q.eta_s != null ? Math.min(10000, Math.max(1000, q.eta_s * 500)) : 3000;
      } else if (r.status === 403) {
        // A ticket this page cannot use (another sale's, or from an older secret): join again.
        localStorage.removeItem(ticketKey);
        ticket = null;
        show("join-button");
        return;
      }
      setTimeout(pollTicket, next);
    }

    async function admitted() {
      refreshSale();
      if (!captcha && !(await loadCaptcha())) { say("Could not load the challenge, reload the page.", "bad"); return; }
      show("captcha");
      $("answer").focus();
    }

    const signedOut = (r) => r.status === 401 || r.body.error === "bad_session";

    async function loadCaptcha() {
      // The edge prices each captcha with a small proof of work (0 bits: turned off).
      const p = await api("POST", `/api/sales/${saleId}/pow${withTicket("")}`);
      if (signedOut(p)) { localStorage.removeItem("seckill.signedIn"); show("signin"); return false; }
      if (p.status !== 200) return false;
      let query = "";
      if (p.body.bits > 0) {
        const solution = solvePow(p.body.challenge, p.body.bits);
        query = `?pow=${encodeURIComponent(p.body.challenge)}&pow_solution=${solution}`;
      }
      const r = await api("POST", `/api/sales/${saleId}/captcha${withTicket(query)}`);
      if (signedOut(r)) { localStorage.removeItem("seckill.signedIn"); show("signin"); return false; }
      if (r.status !== 200) return false;
      captcha = r.body;
      $("captcha-image").src = captcha.image;
      $("answer").value = "";
      return true;
    }

    function countdown() {
      show("countdown");
      let captchaAsked = false;
      const tick = async () => {
        if (done) return;
        const left = startsMs - serverNow();
        if (left > 0) {
          const s = Math.ceil(left / 1000);
          $("clock").textContent = [Math.floor(s / 3600), Math.floor(s / 60) % 60, s % 60]
            .map((n) => String(n).padStart(2, "0")).join(":");
          // The captcha is ready a few seconds before zero, and shown at zero.
          if (left < 5000 && !captchaAsked) { captchaAsked = true; loadCaptcha(); }
          setTimeout(tick, Math.min(100, left));
          return;
        }
        $("clock").textContent = "00:00:00";
        show("countdown", false);
        refreshSale();
        if (!captcha && !(await loadCaptcha())) { say("Could not load the challenge, reload the page.", "bad"); return; }
        show("captcha");
        $("answer").focus();
      };
      tick();
    }

    async function buy() {
      $("buy-button").disabled = true;
      try {
        const p = await api("POST", `/api/sales/${saleId}/path${withTicket("")}`, null,
          { captcha_token: captcha.token, answer: $("answer").value.trim().toUpperCase() });
        captcha = null;
        if (p.status !== 200) return await refused(p);
        const b = await api("POST", p.body.path);
        if (b.status !== 200) return await refused(b);
        show("captcha", false);
        show("queue", false);
        say("Your order is being placed…", "");
        await followOrder(b.body.order_id);
      } finally {
        $("buy-button").disabled = false;
      }
    }

    // After a 503 the outcome is unknown: a later 409 (or 410) may hide an order of ours.
    let unsure = false;
    async function myOrder() {
      const r = await api("GET", `/api/sales/${saleId}/orders`);
      if (r.status !== 200) return null;
      return (r.body.orders || []).find((o) => o.status === "created" || o.status === "paid") || null;
    }

    async function refused(r) {
      if (r.status === 503) unsure = true;
      if (r.status === 409 || (r.status === 410 && unsure)) {
        const mine = await myOrder();
        if (mine) { show("captcha", false); await followOrder(mine.order_id); return; }
      }
      const messages = {
        403: "That was not right. Try again.",
        409: "You already bought this one.",
        410: "Sold out. Better luck next time!",
        425: "Not yet: wait for the countdown.",
        429: "So many people! Try again in a moment.",
        503: "We are very busy. Try again in a moment.",
      };
      const final = r.status === 409 || r.status === 410;
      if (final) { done = true; show("captcha", false); }
      say(messages[r.status] || (r.body.message || "Something went wrong, try again."),
        final ? "bad" : "", { retry: !final });
      if (r.status === 410) refreshSale();
    }

    async function retry() {
      $("result").hidden = true;
      if (await loadCaptcha()) show("captcha");
    }

    let order = null;
    async function followOrder(id) {
      for (let i = 0; i < 240; i++) {
        const r = await api("GET", `/api/orders/${id}`);
        if (r.status === 200) {
          order = r.body;
          if (order.status === "created") {
            done = true;
            refreshSale();
            say(`You got it! Pay before ${hms(order.pay_by_ms)}.`, "ok", { pay: true });
            return;
          }
          if (order.status === "paid") { done = true; say("Paid. Thank you!", "ok"); return; }
          if (order.status === "cancelled") { done = true; say("Your order was cancelled.", "bad"); return; }
        }
        await new Promise((ok) => setTimeout(ok, 500));
      }
      say("Still in the queue; check back in a minute.", "");
    }

    async function pay() {
      $("pay-button").disabled = true;
      const r = await api("POST", `/api/orders/${order.order_id}/pay`);
      if (r.status !== 202) {
        $("pay-button").disabled = false;
        say(r.body.message || "The payment could not start.", "bad", { pay: r.status === 409 });
        return;
      }
      say("Paying…", "");
      for (let i = 0; i < 120; i++) {
        const o = await api("GET", `/api/orders/${order.order_id}`);
        if (o.status === 200 && o.body.status === "paid") { say("Paid. Thank you!", "ok"); return; }
        if (o.status === 200 && o.body.status === "cancelled") { say("Too late: the order was closed.", "bad"); return; }
        await new Promise((ok) => setTimeout(ok, 500));
      }
      say("The payment is taking long; check your order later.", "");
    }

    $("signin-button").addEventListener("click", signIn);
    $("buy-button").addEventListener("click", buy);
    $("answer").addEventListener("keydown", (e) => { if (e.key === "Enter") buy(); });
    $("pay-button").addEventListener("click", pay);
    $("retry-button").addEventListener("click", retry);
    $("join-button").addEventListener("click", join);

    await syncClock(5);
    setInterval(() => syncClock(3), 30000);
    await refreshSale();
    setInterval(() => { if (!done) refreshSale(); }, 5000);
    const queued = sale && sale.queue && sale.queue !== "none";
    if (sale && (sale.status === "ended" || (sale.status === "sold_out" && !queued))) {
      say(sale.status === "sold_out" ? "Sold out. Better luck next time!" : "This sale has ended.", "bad");
      return;
    }
    if (localStorage.getItem("seckill.signedIn")) start(); else show("signin");
  }

  const body = document.body;
  if (body.dataset.saleId !== undefined) salePage(body); else listPage();
})();
