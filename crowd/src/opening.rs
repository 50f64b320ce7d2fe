//! `--real-captcha`: a shopper who does every step the sale page does, against the real
//! captcha (issue 32). It signs in (`POST /api/login`), loads the sale and the clock as the
//! page does, and at the captcha: asks the edge for a proof of work, solves it here at the
//! difficulty the edge set, fetches its **own picture** through the edge (the backend draws
//! it or takes it from the pool: the server pays), reads it in a person's or a bot's time
//! (`people.rs`), answers, takes a new picture after a wrong answer, and only with the
//! signed path buys. In a race it is ready before zero and presses at zero plus its
//! reaction; in a waiting room (`waiting.rs`) it starts at its admission.
//!
//! The crowd is the operator's tool: it learns each picture's answer (to read it right or,
//! by the model, wrongly) from the `X-Captcha-Oracle` header, an HMAC under the captcha key
//! that only the operator can make (docs/captcha.md, "The crowd's oracle"). Everything else
//! is what a browser sends.

use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::people::{misread, Model, Rng};
use crate::shopper::{Ctx, Shopper};

/// A shopper gives up after this many pictures (each wrong answer costs one).
const MAX_PICTURES: u32 = 6;

/// One shopper's way through the captcha and the buy.
pub struct Journey<'a> {
    ctx: &'a Ctx,
    /// Requests in flight across the crowd (a browser has one or two at a time; the crowd's
    /// machine has only so many sockets).
    gate: &'a Semaphore,
    s: &'a Shopper,
    pub model: Model,
    rng: Rng,
    /// The session from the sign-in.
    token: String,
    /// `?ticket=` in a queued sale.
    ticket: Option<String>,
}

/// What a request answered, and how long it took.
struct Answer {
    status: u16,
    body: Value,
    took: Duration,
}

impl<'a> Journey<'a> {
    /// Opens the sale page and signs in, as a browser does (`static/assets/app.js` `boot`,
    /// `signIn`): three clock samples, the sale, the sign-in, what this shopper holds here;
    /// None when no session came of it.
    pub async fn sign_in(
        ctx: &'a Ctx,
        gate: &'a Semaphore,
        s: &'a Shopper,
        model: Model,
    ) -> Option<Journey<'a>> {
        let mut j = Journey {
            ctx,
            gate,
            s,
            model,
            rng: Rng::new(s.index as u64 ^ (s.sale_id << 40)),
            token: String::new(),
            ticket: None,
        };
        for _ in 0..3 {
            j.send(Method::GET, "/api/time", None).await;
        }
        j.send(Method::GET, &format!("/api/sales/{}", s.sale_id), None)
            .await;
        let login = format!(r#"{{"user":"crowd-{}-{}"}}"#, s.sale_id, s.index);
        for attempt in 0..5 {
            let a = j
                .send(
                    Method::POST,
                    "/api/login",
                    Some(("application/json", login.clone())),
                )
                .await;
            if a.status == 200 {
                j.token = a.body["token"].as_str()?.to_string();
                break;
            }
            if !matches!(a.status, 0 | 429 | 503) || attempt == 4 {
                return None;
            }
            tokio::time::sleep(j.model.retry_after(attempt)).await;
        }
        j.send(Method::GET, &format!("/api/sales/{}/mine", s.sale_id), None)
            .await;
        Some(j)
    }

    /// The session, for the waiting room's join and polls.
    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn with_ticket(&mut self, ticket: &str) {
        self.ticket = Some(ticket.to_string());
    }

    async fn send(&self, method: Method, path: &str, body: Option<(&str, String)>) -> Answer {
        self.send_with(method, path, body, &[]).await
    }

    async fn send_with(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, String)>,
        extra: &[(&str, &str)],
    ) -> Answer {
        let auth = format!("Bearer {}", self.token);
        let mut headers = vec![("x-forwarded-for", self.s.ip.as_str())];
        if !self.token.is_empty() {
            headers.push(("authorization", auth.as_str()));
        }
        headers.extend_from_slice(extra);
        let _permit = self.gate.acquire().await;
        let t = Instant::now();
        let (status, bytes) = self.ctx.edge.send(method, path, &headers, body).await;
        let took = t.elapsed();
        self.ctx.stats.record(status, took);
        Answer {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            took,
        }
    }

    /// `path` with this shopper's ticket, if any, as the page adds it.
    fn url(&self, path: &str, query: &str) -> String {
        let sep = |q: &str| if q.is_empty() { "?" } else { "&" };
        match &self.ticket {
            Some(t) => format!("{path}{query}{}ticket={t}", sep(query)),
            None => format!("{path}{query}"),
        }
    }

    /// A picture of its own: the proof of work (solved here), then the captcha. Its token and
    /// its answer; None after repeated refusals.
    async fn picture(&mut self) -> Option<(String, String)> {
        let sale = self.s.sale_id;
        for attempt in 0..5 {
            let pow = self
                .send(
                    Method::POST,
                    &self.url(&format!("/api/sales/{sale}/pow"), ""),
                    None,
                )
                .await;
            if pow.status != 200 {
                if !matches!(pow.status, 0 | 429 | 503) {
                    return None;
                }
                tokio::time::sleep(self.model.retry_after(attempt)).await;
                continue;
            }
            let bits = pow.body["bits"].as_u64().unwrap_or(0) as u32;
            let query = match pow.body["challenge"].as_str() {
                Some(c) if bits > 0 => {
                    // Off the crowd's async threads: a solve is milliseconds of CPU, and a
                    // thousand at once would delay every other shopper's answers.
                    let challenge = c.to_string();
                    let x = tokio::task::spawn_blocking(move || solve(&challenge, bits))
                        .await
                        .ok()?;
                    format!("?pow={c}&pow_solution={x}")
                }
                _ => String::new(),
            };
            let oracle = seckill::tokens::crypto::sign_hex(
                &self.ctx.keys.captcha,
                format!("oracle.{}.{sale}", self.s.user_id).as_bytes(),
            );
            let url = self.url(&format!("/api/sales/{sale}/captcha"), &query);
            let c = self
                .send_with(Method::POST, &url, None, &[("x-captcha-oracle", &oracle)])
                .await;
            if c.status == 200 {
                let image = c.body["image"].as_str().unwrap_or("");
                self.ctx.stats.picture(c.took, image);
                let token = c.body["token"].as_str()?.to_string();
                let answer = c.body["answer"].as_str()?.to_string();
                return Some((token, answer));
            }
            if !matches!(c.status, 0 | 429 | 503) {
                return None;
            }
            tokio::time::sleep(self.model.retry_after(attempt)).await;
        }
        None
    }

    /// Pictures until one is read right (a new one after each wrong answer), the signed path
    /// for it (not before `starts_ms`: one ready early presses at zero plus its reaction),
    /// then the buy. Reading starts once the page shows the picture (`shown_ms`: the sale
    /// page shows the captcha card at zero in a race; a bot reads what it fetched at once).
    /// Whether the shopper got an order.
    pub async fn checkout(&mut self, starts_ms: i64, shown_ms: i64) -> bool {
        let sale = self.s.sale_id;
        for _ in 0..MAX_PICTURES {
            let Some((token, answer)) = self.picture().await else {
                return false;
            };
            sleep_until_ms(shown_ms).await;
            tokio::time::sleep(self.model.read_time(&mut self.rng)).await;
            let reading = if self.model.reads_right(&mut self.rng) {
                answer
            } else {
                self.ctx
                    .stats
                    .wrong_answers
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                misread(&answer, &mut self.rng)
            };
            let wait = starts_ms - seckill::clock::now_ms();
            if wait > 0 {
                let press = Duration::from_millis(wait as u64) + self.model.reaction(&mut self.rng);
                tokio::time::sleep(press).await;
            }
            let form = format!("captcha_token={token}&answer={reading}");
            let url = self.url(&format!("/api/sales/{sale}/path"), "");
            match self.path(&url, &form).await {
                Step::Path(path) => return self.buy(&path).await,
                Step::NewPicture => continue,
                Step::Stop => return false,
            }
        }
        false
    }

    /// The answer for the signed path: early by a hair is asked again, busy after a pause.
    async fn path(&mut self, url: &str, form: &str) -> Step {
        for attempt in 0..100u32 {
            let a = self
                .send(
                    Method::POST,
                    url,
                    Some(("application/x-www-form-urlencoded", form.to_string())),
                )
                .await;
            match (a.status, a.body["error"].as_str()) {
                (200, _) => {
                    return a.body["path"]
                        .as_str()
                        .map_or(Step::Stop, |p| Step::Path(p.to_string()))
                }
                (403, Some("bad_captcha")) => return Step::NewPicture,
                (425, _) => tokio::time::sleep(Duration::from_millis(20)).await,
                (0 | 429 | 503, _) if attempt < 5 => {
                    tokio::time::sleep(self.model.retry_after(attempt)).await
                }
                _ => return Step::Stop,
            }
        }
        Step::Stop
    }

    /// The buy with the signed path, tried again while busy; then the order followed as the
    /// page does until MariaDB has it.
    async fn buy(&mut self, path: &str) -> bool {
        let stats = &self.ctx.stats;
        for attempt in 0..6 {
            let sent_ms = seckill::clock::now_ms();
            let a = self.send(Method::POST, path, None).await;
            stats.buy_latency(a.took);
            let raw = serde_json::to_vec(&a.body).unwrap_or_default();
            stats.buy_answered(self.s.user_id, self.s.sale_id, sent_ms, a.status, &raw);
            match a.status {
                200 => {
                    stats.last_order_ms.fetch_max(
                        seckill::clock::now_ms(),
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    let id = a.body["order_id"].as_str().and_then(|v| v.parse().ok());
                    if let Some(id) = id {
                        stats.order_ids.lock().unwrap().push(id);
                        self.follow(id).await;
                    }
                    stats
                        .queued
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return true;
                }
                0 | 429 | 503 => tokio::time::sleep(self.model.retry_after(attempt)).await,
                _ => return false,
            }
        }
        false
    }

    /// `GET /api/orders/{id}` once a second until it is no longer `queued` (five at most).
    async fn follow(&self, id: u64) {
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let a = self
                .send(Method::GET, &format!("/api/orders/{id}"), None)
                .await;
            if a.status != 200 || a.body["status"] != "queued" {
                return;
            }
        }
    }
}

/// Sleeps until `at_ms` (Unix ms); at once when it has passed.
pub async fn sleep_until_ms(at_ms: i64) {
    let wait = at_ms - seckill::clock::now_ms();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
}

enum Step {
    Path(String),
    NewPicture,
    Stop,
}

/// The smallest decimal x with `bits` leading zero bits in SHA-256("<challenge>.<x>"), as the
/// page's solver finds it (edge/lua/seckill/pow.lua checks it).
pub fn solve(challenge: &str, bits: u32) -> String {
    let mut text = String::with_capacity(challenge.len() + 24);
    for x in 0u64.. {
        text.clear();
        text.push_str(challenge);
        text.push('.');
        text.push_str(&x.to_string());
        let d = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
        if leading_zero_bits(d.as_ref()) >= bits {
            return x.to_string();
        }
    }
    unreachable!("some x below 2^64 has the zero bits asked for")
}

fn leading_zero_bits(digest: &[u8]) -> u32 {
    let mut n = 0;
    for b in digest {
        if *b == 0 {
            n += 8;
        } else {
            return n + b.leading_zeros();
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_solution_has_the_zero_bits_asked_for() {
        let x = solve("42.7.2000000000.12.00ff00ff00ff00ff.abc", 12);
        let d = ring::digest::digest(
            &ring::digest::SHA256,
            format!("42.7.2000000000.12.00ff00ff00ff00ff.abc.{x}").as_bytes(),
        );
        assert!(leading_zero_bits(d.as_ref()) >= 12);
        assert_eq!(leading_zero_bits(&[0, 0x10, 0xff]), 11);
    }
}
