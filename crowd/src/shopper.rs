//! One simulated shopper: at the start it trades its captcha answer for the signed path at
//! the edge, then buys; some retry a 429 or 503; some cheat afterwards.
//!
//! Sessions and captcha challenges are minted with the operator's secrets (the crowd is the
//! operator's tool): the session is what `POST /api/login` would give, and the captcha is one
//! the backend could have drawn, whose answer the shopper "reads". The edge checks both
//! exactly as for a browser.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::Method;

use crate::http::Http;
use crate::stats::Stats;

pub struct Shopper {
    pub index: usize,
    /// The account the session names (what MariaDB's orders carry).
    pub user_id: u64,
    /// The sale this shopper came for.
    pub sale_id: u64,
    pub token: String,
    pub captcha_token: String,
    pub answer: String,
    /// The client address a trusted proxy (the CDN) reports in `X-Forwarded-For`.
    pub ip: String,
    pub retries: bool,
    pub cheats: bool,
}

pub struct Keys {
    pub session: Vec<u8>,
    pub captcha: Vec<u8>,
}

impl Shopper {
    pub fn new(keys: &Keys, sale_id: u64, index: usize, retries: bool, cheats: bool) -> Shopper {
        let name = format!("crowd-{sale_id}-{index}");
        let user_id = seckill::tokens::session::user_id_for(&keys.session, &name);
        let expires = seckill::clock::now_ms() / 1000 + 3600;
        let token = seckill::tokens::session::issue(&keys.session, user_id, expires);
        let answer: String = seckill::tokens::crypto::random_hex(3)[..5].to_uppercase();
        // As a captcha fetched just before the start: the edge refuses tokens that live longer
        // than the backend issues them (SECKILL_CAPTCHA_TTL_S, 120 s by default).
        let captcha_expires = seckill::clock::now_ms() / 1000 + 110;
        let captcha_token = seckill::tokens::captcha::token(
            &keys.captcha,
            user_id,
            sale_id,
            captcha_expires,
            &seckill::tokens::captcha::nonce(),
            &answer,
        );
        let ip = format!(
            "10.{}.{}.{}",
            (index >> 16) & 0xff,
            (index >> 8) & 0xff,
            index & 0xff
        );
        Shopper {
            index,
            user_id,
            sale_id,
            token,
            captcha_token,
            answer,
            ip,
            retries,
            cheats,
        }
    }
}

pub struct Ctx {
    pub edge: Http,
    /// Connects from 127.0.0.2, an address nginx does not trust to forward client addresses.
    pub untrusted: Http,
    pub sale_id: u64,
    pub keys: Keys,
    pub stats: Arc<Stats>,
}

/// One POST as `token` from client address `ip`, recorded with its latency since `since`.
async fn request(
    ctx: &Ctx,
    http: &Http,
    path: &str,
    ip: &str,
    token: &str,
    body: Option<String>,
    since: Instant,
) -> (u16, bytes::Bytes) {
    let auth = format!("Bearer {token}");
    let headers = [("authorization", auth.as_str()), ("x-forwarded-for", ip)];
    let r = http
        .send(
            Method::POST,
            path,
            &headers,
            body.map(|b| ("application/x-www-form-urlencoded", b)),
        )
        .await;
    ctx.stats.record(r.0, since.elapsed());
    r
}

fn path_of(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some(v["path"].as_str()?.to_string())
}

/// Runs one shopper; `arrived` is when it was due (open loop: latency counts from then).
/// What came of it is in `ctx.stats` (answers by status, queued order ids).
pub async fn run(ctx: &Ctx, s: &Shopper, arrived: Instant) {
    let path_url = format!("/api/sales/{}/path", s.sale_id);
    let form = format!("captcha_token={}&answer={}", s.captcha_token, s.answer);
    if let (Some(path), _) = checkout(ctx, s, arrived, &path_url, &form).await {
        if s.cheats {
            cheat(ctx, s, &path_url, &form, &path).await;
        }
    }
}

/// The captcha answer for the signed path at `path_url` (which carries the ticket in a
/// queued sale), then the buy; the purchase path when the shopper got that far, and whether
/// the buy was answered `queued`.
pub async fn checkout(
    ctx: &Ctx,
    s: &Shopper,
    arrived: Instant,
    path_url: &str,
    form: &str,
) -> (Option<String>, bool) {
    let mut since = arrived;
    let mut tries = 0;
    // 1. The captcha answer for the signed path.
    let path = loop {
        let (status, body) = request(
            ctx,
            &ctx.edge,
            path_url,
            &s.ip,
            &s.token,
            Some(form.to_string()),
            since,
        )
        .await;
        tries += 1;
        match status {
            200 => match path_of(&body) {
                Some(p) => break p,
                None => return (None, false),
            },
            // Early by a hair (clocks): try again shortly.
            425 if tries < 100 => tokio::time::sleep(Duration::from_millis(20)).await,
            429 | 503 if s.retries && tries < 4 => {
                tokio::time::sleep(Duration::from_millis(100 * tries)).await
            }
            _ => return (None, false),
        }
        since = Instant::now();
    };
    // 2. The buy.
    let mut tries = 0;
    let mut won = false;
    loop {
        since = if tries == 0 {
            since.max(Instant::now())
        } else {
            Instant::now()
        };
        let sent_ms = seckill::clock::now_ms();
        let (status, body) = request(ctx, &ctx.edge, &path, &s.ip, &s.token, None, since).await;
        ctx.stats.buy_latency(since.elapsed());
        ctx.stats
            .buy_answered(s.user_id, s.sale_id, sent_ms, status, &body);
        tries += 1;
        match status {
            200 => {
                if let Some(id) = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["order_id"].as_str()?.parse::<u64>().ok())
                {
                    ctx.stats.order_ids.lock().unwrap().push(id);
                }
                ctx.stats
                    .queued
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                won = true;
                break;
            }
            429 | 503 if s.retries && tries < 4 => {
                tokio::time::sleep(Duration::from_millis(100 * tries)).await
            }
            _ => break,
        }
    }
    (Some(path), won)
}

/// Tries what bots try: reused captchas, stolen and forged links never answer 200.
async fn cheat(ctx: &Ctx, s: &Shopper, path_url: &str, spent_form: &str, path: &str) {
    use std::sync::atomic::Ordering::Relaxed;
    let now = Instant::now;
    let mut tries: Vec<u16> = Vec::new();
    // The spent captcha again.
    let form = Some(spent_form.to_string());
    tries.push(
        request(ctx, &ctx.edge, path_url, &s.ip, &s.token, form, now())
            .await
            .0,
    );
    // This shopper's link used by another shopper (a shared or stolen link).
    let thief = Shopper::new(&ctx.keys, s.sale_id, s.index + 10_000_000, false, false);
    tries.push(
        request(ctx, &ctx.edge, path, &thief.ip, &thief.token, None, now())
            .await
            .0,
    );
    // A forged link.
    let forged = format!("/api/sales/{}/buy/{}", s.sale_id, "0".repeat(64));
    tries.push(
        request(ctx, &ctx.edge, &forged, &s.ip, &s.token, None, now())
            .await
            .0,
    );
    // None of those may ever succeed.
    ctx.stats.cheats.fetch_add(tries.len() as u64, Relaxed);
    ctx.stats.cheats_passed.fetch_add(
        tries.iter().filter(|st| **st == 200).count() as u64,
        Relaxed,
    );
    // Many buys from an untrusted address, each claiming another client address: the edge
    // must limit them by the real address (the buys themselves are the shopper's own).
    for i in 0..10 {
        let spoofed = format!("172.16.{}.{}", s.index & 0xff, i);
        let status = request(ctx, &ctx.untrusted, path, &spoofed, &s.token, None, now())
            .await
            .0;
        ctx.stats.spoofed.fetch_add(1, Relaxed);
        if status == 429 {
            ctx.stats.spoofed_limited.fetch_add(1, Relaxed);
        }
    }
}
