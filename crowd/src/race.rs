//! A race (`--queue none`) with `--real-captcha` (issue 32), and the opening's figures: who
//! won, bots or people, and how the pictures came.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Semaphore;

use crate::opening::{sleep_until_ms, Journey};
use crate::outcome::Record;
use crate::people::Model;
use crate::shopper::{Ctx, Shopper};

/// The sale page fetches the captcha this long before zero and shows it at zero
/// (`static/assets/app.js`, `decide`).
const PAGE_FETCHES_BEFORE_MS: i64 = 5000;

/// A race (`--queue none`) with `--real-captcha`: people arrive spread over `--arrive-before`
/// seconds before the start, bots all at its first instant (scalpers are there early and
/// fire at the exact second). Each signs in and takes its picture as the sale page does
/// (five seconds before zero, shown at zero), reads it and presses; a bot takes its picture
/// the moment captchas open (a minute before), reads it in 30 ms and presses at zero.
pub async fn race(
    a: &crate::args::Args,
    ctx: &Arc<Ctx>,
    shoppers: Arc<Vec<Shopper>>,
    bots: Arc<Vec<bool>>,
    starts_ms: i64,
) -> (Duration, Vec<Record>) {
    let gate = Arc::new(Semaphore::new(a.concurrency));
    let (human, bot) = (Model::human(a), Model::bot(a));
    let first = starts_ms - a.arrive_before.as_millis() as i64;
    let opens = starts_ms - seckill::tokens::captcha::EARLY_MS;
    let mut tasks = Vec::with_capacity(shoppers.len());
    for i in 0..shoppers.len() {
        let (ctx, shoppers, gate) = (ctx.clone(), shoppers.clone(), gate.clone());
        let model = if bots[i] { bot } else { human };
        let arrives = if model.bot {
            first
        } else {
            first + (starts_ms - first) * i as i64 / shoppers.len().max(1) as i64
        };
        tasks.push(tokio::spawn(async move {
            sleep_until_ms(arrives).await;
            let s = &shoppers[i];
            let mut won = false;
            if let Some(mut j) = Journey::sign_in(&ctx, &gate, s, model).await {
                let (fetch, shown) = if model.bot {
                    (opens, 0)
                } else {
                    (starts_ms - PAGE_FETCHES_BEFORE_MS, starts_ms)
                };
                sleep_until_ms(fetch).await;
                won = j.checkout(starts_ms, shown).await;
            }
            ctx.stats
                .shoppers_done
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Record {
                index: s.index,
                bot: model.bot,
                won,
                ..Record::default()
            }
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

/// The opening's figures (fields of the crowd's last JSON line): bots' share of the crowd
/// and of the winners, the pictures fetched and how fast they came.
pub fn figures(records: &[Record], stats: &crate::stats::Stats, starts_ms: i64) -> Value {
    use std::sync::atomic::Ordering::Relaxed;
    let share = |part: usize, all: usize| {
        if all == 0 {
            0.0
        } else {
            (part as f64 / all as f64 * 10_000.0).round() / 10_000.0
        }
    };
    let bots = records.iter().filter(|r| r.bot).count();
    let winners = records.iter().filter(|r| r.won).count();
    let bot_wins = records.iter().filter(|r| r.won && r.bot).count();
    let (pictures, p50, p99) = stats.pictures();
    serde_json::json!({
        "real_captcha": true,
        "bot_crowd_share": share(bots, records.len()),
        "bot_win_share": share(bot_wins, winners),
        "bot_wins": bot_wins,
        "captcha_p50_ms": p50,
        "captcha_p99_ms": p99,
        "pictures_drawn": pictures,
        "pictures_repeated": stats.pictures_repeated.load(Relaxed),
        "wrong_answers": stats.wrong_answers.load(Relaxed),
        "last_order_after_start_s": match stats.last_order_ms.load(Relaxed) {
            0 => Value::Null,
            at => serde_json::json!(((at - starts_ms) as f64 / 10.0).round() / 100.0),
        },
    })
}
