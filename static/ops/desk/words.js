// What the desk shows people instead of the system's names: the edge's outcomes, the sales'
// statuses, money.

const OUTCOMES = {
  passed: "let through", issued: "links issued", admitted: "admitted", waiting: "waiting",
  draw: "waiting for the draw", expired: "turn lapsed", out_of_reach: "out of reach",
  not_started: "not started yet", ended: "sale ended", sold_out: "sold out", paused: "paused",
  rate_limited_ip: "over the address limit", rate_limited_user: "over the shopper limit",
  no_session: "not signed in", bad_session: "bad session", bad_link: "forged or old link",
  unknown_sale: "sale unknown here", bad_captcha: "forged captcha",
  bad_captcha_wrong: "wrong captcha answer", bad_captcha_expired: "captcha expired",
  bad_captcha_used: "captcha reused", bad_pow: "no proof of work",
  over_admission: "over the admission cap", bad_ticket: "bad ticket",
  not_admitted: "not admitted yet", no_queue: "no waiting room", not_lapsed: "turn not lapsed",
  queue_unknown: "line unknown here", method: "wrong method", method_queue: "wrong method",
};
export const outcome = (name) => OUTCOMES[name] || name.replaceAll("_", " ");

const STATUSES = { active: "live", upcoming: "upcoming", paused: "paused", sold_out: "sold out",
  ended: "ended" };
export const status = (name) => STATUSES[name] || name.replaceAll("_", " ");

const EUR = new Intl.NumberFormat(undefined, { style: "currency", currency: "EUR" });
export const money = (cents) => EUR.format(cents / 100);

// Minutes as people say them: "15 min", "1.5 min", "45 s".
export function minutes(seconds) {
  if (seconds < 60) return `${seconds} s`;
  const m = seconds / 60;
  return `${Number.isInteger(m) ? m : m.toFixed(1)} min`;
}
