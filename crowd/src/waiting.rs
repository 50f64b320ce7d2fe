//! Queue runs (`--queue fifo|random`): shoppers arrive spread over `--arrive-before` seconds
//! before the start (and with `--rate`, on after it), join the sale's line at the edge, poll
//! their ticket as the sale page does (every 1-10 s, more often as their turn nears), and when admitted
//! trade their captcha answer for the purchase path and buy. Bots (`--bots`) poll and retry 10x
//! faster. What each shopper saw becomes the fairness figures of the report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::opening::Journey;
use crate::outcome::Record;
use crate::people::Model;
use crate::shopper::{self, Ctx, Shopper};

/// Bounds on the requests in flight (see `play`).
pub struct Gates {
    work: Semaphore,
    polls: Semaphore,
    /// The sale's start (Unix ms).
    starts_ms: i64,
}

/// Bots poll and retry this many times faster than people.
const BOT_SPEEDUP: u32 = 10;

/// Plays a queue run; returns how long the sale phase took and each shopper's record.
pub async fn play(
    a: &crate::args::Args,
    ctx: &Arc<Ctx>,
    shoppers: Arc<Vec<Shopper>>,
    bots: Arc<Vec<bool>>,
    starts_ms: i64,
) -> (Duration, Vec<Record>) {
    // Requests in flight: joins and buys share `concurrency`, polls have as many of their own
    // (a shopper's poll does not wait behind other shoppers' joins: each browser has its own
    // connection; queued joins would otherwise hold every poll back from the sale's opening).
    let gates = Arc::new(Gates {
        work: Semaphore::new(a.concurrency),
        polls: Semaphore::new(a.concurrency),
        starts_ms,
    });
    let deadline_ms = starts_ms + a.duration.as_millis() as i64;
    let zero = Instant::now()
        - Duration::from_millis((seckill::clock::now_ms() - starts_ms).max(0) as u64);
    let models = Arc::new((Model::human(a), Model::bot(a), a.real_captcha, starts_ms));
    let mut tasks = Vec::with_capacity(a.users);
    for (due, i) in arrivals(a, &bots, starts_ms) {
        let wait = due - seckill::clock::now_ms() as f64;
        if wait > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(wait / 1000.0)).await;
        }
        if i == 0 || due >= starts_ms as f64 {
            let _ = ctx.stats.started.set(zero.max(Instant::now()));
        }
        let (ctx, shoppers, bots, gates, models) = (
            ctx.clone(),
            shoppers.clone(),
            bots.clone(),
            gates.clone(),
            models.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut r =
                shopper_task(&ctx, &shoppers[i], bots[i], &gates, deadline_ms, *models).await;
            r.join_lag_ms = r.join_lag_ms.map(|joined| joined - due);
            ctx.stats
                .shoppers_done
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            r
        }));
    }
    let mut records = Vec::with_capacity(tasks.len());
    for t in tasks {
        if let Ok(r) = t.await {
            records.push(r);
        }
    }
    let took = Duration::from_millis((seckill::clock::now_ms() - starts_ms).max(1) as u64);
    (took, records)
}

/// When each shopper arrives (epoch ms), in order: spread over `--arrive-before` seconds
/// before the start (and with `--rate`, on after it at that pace). With `--real-captcha`,
/// bots are there at the first instant, as scalpers are.
fn arrivals(a: &crate::args::Args, bots: &[bool], starts_ms: i64) -> Vec<(f64, usize)> {
    let before = a.arrive_before.as_secs_f64() * 1000.0;
    let after = if a.rate > 0.0 {
        (a.users as f64 / a.rate * 1000.0 - before).max(0.0)
    } else {
        0.0
    };
    let span = before + after;
    let first = starts_ms as f64 - before;
    let mut order: Vec<(f64, usize)> = (0..a.users)
        .map(|i| match a.real_captcha && bots[i] {
            true => (first, i),
            false => (first + span * i as f64 / a.users as f64, i),
        })
        .collect();
    order.sort_by(|x, y| x.0.total_cmp(&y.0));
    order
}

/// One shopper from its arrival: with the real captcha it signs in first (its journey
/// then checks out at its turn), else it uses its minted session and captcha.
async fn shopper_task(
    ctx: &Ctx,
    s: &Shopper,
    bot: bool,
    gates: &Gates,
    deadline_ms: i64,
    (human, bot_model, real, starts_ms): (Model, Model, bool, i64),
) -> Record {
    if !real {
        return one(ctx, s, &s.token, bot, gates, deadline_ms, None).await;
    }
    let model = if bot { bot_model } else { human };
    match Journey::sign_in(ctx, &gates.work, s, model).await {
        Some(mut j) => {
            let token = j.token().to_string();
            one(
                ctx,
                s,
                &token,
                bot,
                gates,
                deadline_ms,
                Some((&mut j, starts_ms)),
            )
            .await
        }
        None => Record {
            index: s.index,
            bot,
            ..Record::default()
        },
    }
}

/// Joins the line (as the page's Join button does, again while busy): the ticket, its number
/// noted in `rec`; None when no ticket came of it.
async fn join(
    ctx: &Ctx,
    s: &Shopper,
    token: &str,
    bot: bool,
    gates: &Gates,
    rec: &mut Record,
) -> Option<String> {
    let speed = if bot { BOT_SPEEDUP } else { 1 };
    let join_url = format!("/api/sales/{}/queue", ctx.sale_id);
    for tries in 1..=5 {
        let (status, body, took) = send(ctx, &gates.work, Method::POST, &join_url, s, token).await;
        ctx.stats.join_latency(took);
        if status == 200 {
            rec.number = body["number"].as_u64();
            return body["ticket"].as_str().map(String::from);
        }
        if !matches!(status, 0 | 429 | 503) || tries == 5 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(500 / u64::from(speed))).await;
    }
    None
}

/// A small deterministic jitter in [0.8, 1.2) per shopper and poll (no two pages in step).
fn jitter(index: usize, n: u32) -> f64 {
    let h = (index as u64 ^ (u64::from(n) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    0.8 + ((h >> 40) % 1000) as f64 / 2500.0
}

/// How long a page waits before its next poll (as `static/assets/app.js` `onQueue`): sooner
/// as its turn nears; before a draw, until just after it. Jitter is added by the caller.
fn poll_every(state: &str, eta_s: Option<f64>, to_draw_s: Option<f64>, bot: bool) -> Duration {
    let s = match (state, eta_s) {
        ("out_of_reach" | "sold_out", _) => 30.0,
        ("expired", _) => 5.0,
        ("draw", _) if to_draw_s.is_some() => to_draw_s.unwrap_or(0.0).max(1.0),
        (_, Some(eta)) => (eta / 2.0).clamp(1.0, 10.0),
        _ => 3.0,
    };
    Duration::from_secs_f64(if bot { s / f64::from(BOT_SPEEDUP) } else { s })
}

async fn send(
    ctx: &Ctx,
    gate: &Semaphore,
    method: Method,
    url: &str,
    s: &Shopper,
    token: &str,
) -> (u16, Value, Duration) {
    let _permit = gate.acquire().await;
    let auth = format!("Bearer {token}");
    let headers = [
        ("authorization", auth.as_str()),
        ("x-forwarded-for", s.ip.as_str()),
    ];
    let t = Instant::now();
    let (status, body) = ctx.edge.send(method, url, &headers, None).await;
    let took = t.elapsed();
    ctx.stats.record(status, took);
    (
        status,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
        took,
    )
}

/// One shopper of a queue run: joins, polls its ticket, and when admitted checks out: with
/// the real captcha (`real`: its journey, signed in already, and the sale's start), else
/// with a minted one after a moment's thought.
async fn one(
    ctx: &Ctx,
    s: &Shopper,
    token: &str,
    bot: bool,
    gates: &Gates,
    deadline_ms: i64,
    mut real: Option<(&mut Journey<'_>, i64)>,
) -> Record {
    let mut rec = Record {
        index: s.index,
        bot,
        ..Record::default()
    };
    let speed = if bot { BOT_SPEEDUP } else { 1 };
    let join_url = format!("/api/sales/{}/queue", ctx.sale_id);
    let Some(ticket) = join(ctx, s, token, bot, gates, &mut rec).await else {
        return rec;
    };
    rec.joined_before_start = seckill::clock::now_ms() < gates.starts_ms;
    rec.join_lag_ms = Some(seckill::clock::now_ms() as f64); // the caller subtracts the due time
    let poll_url = format!("{join_url}?ticket={ticket}");
    let mut polls = 0;
    // The page asks for the sale once the draw is made (its seed, for the audit).
    let mut seed_asked = real.is_none();
    while seckill::clock::now_ms() < deadline_ms {
        let (status, body, took) = send(ctx, &gates.polls, Method::GET, &poll_url, s, token).await;
        ctx.stats.poll_latency(took);
        polls += 1;
        if !seed_asked && !body["drawn"].is_null() {
            seed_asked = true;
            let sale_url = format!("/api/sales/{}", ctx.sale_id);
            send(ctx, &gates.polls, Method::GET, &sale_url, s, token).await;
        }
        let now = seckill::clock::now_ms() as f64;
        let state = body["state"].as_str().unwrap_or("");
        if let Some(p) = body["position"].as_u64() {
            rec.position = Some(p);
            rec.in_draw = body["in_draw"].as_bool().unwrap_or(false);
        }
        let eta = body["eta_s"].as_f64();
        if rec.predicted_ms.is_none() && state == "waiting" {
            rec.predicted_ms = eta.map(|e| now + e * 1000.0);
        }
        match (status, state) {
            (200, "admitted") => {
                rec.admitted_ms = Some(now);
                if let Some((j, starts_ms)) = real.take() {
                    j.with_ticket(&ticket);
                    rec.won = j.checkout(starts_ms, 0).await;
                    return rec;
                }
                // Reading the captcha: people take a moment, bots hardly any.
                let think = 1000.0 * jitter(s.index, polls) / f64::from(speed);
                tokio::time::sleep(Duration::from_secs_f64(think / 1000.0)).await;
                let path_url = format!("/api/sales/{}/path?ticket={ticket}", ctx.sale_id);
                let form = format!("captcha_token={}&answer={}", s.captcha_token, s.answer);
                let _permit = gates.work.acquire().await;
                rec.won = shopper::checkout(ctx, s, Instant::now(), &path_url, &form)
                    .await
                    .1;
                return rec;
            }
            (200, "sold_out" | "ended" | "expired") => return rec,
            (200, _) => {
                let to_draw = body["draw_at_ms"].as_f64().map(|at| (at - now) / 1000.0);
                let every = poll_every(state, eta, to_draw, bot).as_secs_f64();
                // The page spreads its pages over two seconds after a draw, else ±20%.
                let wait = if state == "draw" {
                    every + (jitter(s.index, polls) - 0.8) * 5.0
                } else {
                    every * jitter(s.index, polls)
                };
                tokio::time::sleep(Duration::from_secs_f64(wait)).await;
            }
            _ => tokio::time::sleep(Duration::from_millis(1000 / u64::from(speed))).await,
        }
    }
    rec
}
