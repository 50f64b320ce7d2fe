// Talking to the admin API: the operator's token (kept for this tab only, in sessionStorage),
// JSON in and out, and the API's error shape ({"error", "message", "field"}) handed back as
// it is, so forms can show a refusal next to the field it names.

const KEY = "seckill.desk.token";
let onSignedOut = () => {};

export const token = () => sessionStorage.getItem(KEY);
export function signIn(t) { sessionStorage.setItem(KEY, t); }
export function signOut() { sessionStorage.removeItem(KEY); }
export function whenSignedOut(f) { onSignedOut = f; }

// {status, body}; status 0 when the network failed. A refused token signs the desk out.
export async function admin(method, path, body) {
  const headers = { Authorization: `Bearer ${token() || ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    return { status: 0, body: { error: "network", message: `the edge did not answer (${e.message})` } };
  }
  let json;
  try {
    json = await res.json();
  } catch (e) {
    json = { error: "bad_answer", message: `${res.status}: the answer was not JSON` };
  }
  if (res.status === 401 || res.status === 403 && json.error === "bad_admin_token") {
    signOut();
    onSignedOut(json.message || "the token was refused");
  }
  return { status: res.status, body: json };
}

// A refusal as one line for a person: "stock: must be at least 1 (422)".
export const explain = (r) => `${r.body.message || r.body.error || "failed"} (${r.status || "no answer"})`;

// Times as the desk shows them: local, to the second, with the day when it is not today.
export function when(ms) {
  if (ms === null || ms === undefined) return "";
  const d = new Date(ms);
  const today = new Date().toDateString() === d.toDateString();
  const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  return today ? time : `${d.toLocaleDateString([], { month: "short", day: "numeric" })} ${time}`;
}


// A DOM element: el("td", {className: "x"}, "text", child, ...).
export function el(tag, props, ...children) {
  const e = document.createElement(tag);
  Object.assign(e, props || {});
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}
