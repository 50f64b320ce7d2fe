// The operator's desk: sign in with the admin token, then the evening (charts, alerts, edge
// decisions), the sales (busy first, filters, pages), one sale at a time, and the sale form.
// Polls every 2 s (metrics, the open sale) and 5 s (the lists) while the tab is visible.

import { token, signIn, whenSignedOut, admin, explain } from "./api.js";
import * as evening from "./evening.js";
import * as sales from "./sales.js";
import * as sale from "./sale.js";
import * as form from "./form.js";

let timers = [];

function showSignIn(message) {
  timers.forEach(clearInterval);
  timers = [];
  document.getElementById("desk").hidden = true;
  document.getElementById("signout").hidden = true;
  document.getElementById("signin").hidden = false;
  document.getElementById("signin-error").textContent = message || "";
  document.getElementById("token").focus();
}

function start() {
  document.getElementById("signin").hidden = true;
  document.getElementById("signout").hidden = false;
  document.getElementById("desk").hidden = false;
  const every = (ms, f) => { f(); timers.push(setInterval(() => { if (!document.hidden) f(); }, ms)); };
  every(2000, () => { evening.tick(); sale.refresh(); });
  every(5000, sales.refresh);
  follow();
}

// The address names the open sale (#sale-ID): typed, or Back and Forward.
function follow() {
  const m = /^#sale-(\d+)$/.exec(location.hash);
  if (m && Number(m[1]) !== sale.openId()) sale.open(Number(m[1]));
  else if (!m && sale.openId()) sale.close();
}
window.addEventListener("popstate", () => { if (token()) follow(); });
window.addEventListener("hashchange", () => { if (token()) follow(); });

document.getElementById("signin-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const t = document.getElementById("token").value.trim();
  if (!t) return showSignIn("Paste the admin token (var/admin.token).");
  signIn(t);
  const r = await admin("GET", "/admin/sales?limit=1");
  if (r.status === 200) start();
  else if (r.status !== 401 && r.status !== 403) showSignIn(`The API did not answer: ${explain(r)}`);
});
document.getElementById("signout").addEventListener("click", () => {
  sessionStorage.clear();
  showSignIn("Signed out.");
});
document.getElementById("new-sale").addEventListener("click", () => form.openNew());

whenSignedOut(() => showSignIn("That token was refused. Paste the contents of var/admin.token."));
evening.init();
sales.init((id) => sale.open(id));
sale.init(() => sales.refresh());
form.init((s, what) => {
  sales.refresh();
  sale.open(s.id).then(() => {
    const p = document.getElementById("sale-message");
    p.textContent = what === "created" ? `Created sale ${s.id}.` : "Saved.";
    p.className = "ok";
  });
});

if (token()) start();
else showSignIn();
