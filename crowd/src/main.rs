//! `crowd`: creates a sale (or an evening of them), plays a crowd of shoppers against the
//! real edge at its start, waits for the writer to drain, and prints, as its last line, one
//! JSON object with what MariaDB, Redis and the metrics say happened. See `scripts/crowd` and
//! docs/crowd.md.

mod args;
mod evening;
mod facts;
mod fairness;
mod http;
mod line_figures;
mod opening;
mod outcome;
mod people;
mod race;
mod report;
mod shopper;
mod stats;
mod verdict;
mod waiting;

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::json;

use crate::http::Http;
use crate::shopper::{Ctx, Keys, Shopper};
use crate::stats::Stats;
use crate::verdict::{Found, Scraped};

#[tokio::main]
async fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match args::Args::parse(&argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    match run(args).await {
        Ok(ok) => std::process::exit(if ok { 0 } else { 1 }),
        Err(e) => {
            eprintln!("crowd: {e}");
            std::process::exit(2);
        }
    }
}

fn secret(dir: &std::path::Path, name: &str) -> Result<Vec<u8>, String> {
    let path = dir.join(name);
    let raw = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(String::from_utf8_lossy(&raw).trim().as_bytes().to_vec())
}

/// A deterministic share: shopper `i` is in the first `fraction` of every hundred.
fn chosen(i: usize, fraction: f64, salt: usize) -> bool {
    (((i.wrapping_mul(2654435761) ^ salt) % 10_000) as f64) < fraction * 10_000.0
}

/// The whole run: set up, create the sale, play the crowd at its start, read the facts,
/// report. True when every invariant held.
/// The shoppers, each with the sale it wants (Zipf over the sales), some retrying after a
/// refusal, some cheating.
fn crowd_of(a: &args::Args, keys: &Keys, sales: &[seckill::buy::sales::Sale]) -> Vec<Shopper> {
    let pick = evening::Popularity::new(sales.len(), a.zipf);
    (0..a.users)
        .map(|i| {
            Shopper::new(
                keys,
                sales[pick.sale_of(i)].id,
                i,
                chosen(i, a.retry, 1),
                chosen(i, a.cheaters, 7),
            )
        })
        .collect()
}

async fn run(a: args::Args) -> Result<bool, String> {
    let keys = Keys {
        session: secret(&a.secrets, "session.key")?,
        captcha: secret(&a.secrets, "captcha.key")?,
    };
    let admin = String::from_utf8_lossy(&secret(&a.secrets, "admin.token")?).into_owned();
    // A list of host:port is a Redis Cluster (scripts/fleet), one URL a single server.
    let target = seckill::config::RedisTarget::from_arg(&a.redis_url);
    let redis = seckill::store::redis_conn::Redis::connect(&target, Duration::from_secs(5))
        .await
        .map_err(|e| format!("redis {}: {e}", a.redis_url))?;
    let db = seckill::store::db::pool(&a.mysql_url, 4).map_err(|e| e.to_string())?;
    let edge = Http::new(&a.edge, a.concurrency, None);
    let scraped = Scraped::new(&a.edge_metrics, &a.backend);

    let admin_http = Http::new(&a.admin, 4, None);
    let (sales, starts) = if a.sales > 1 || !a.sale_ids.is_empty() {
        evening::sales(&a, &admin_http, &admin, &db).await?
    } else {
        let (sale, starts) = create_sale(&a, &admin_http, &admin, &db).await?;
        (vec![sale], starts)
    };
    let sale = sales[0].clone();
    // `--queue default`: the crowd plays the waiting room the sale got.
    let mut a = a;
    if a.queue.as_deref() == Some("default") {
        let mode = sale.queue.mode.as_str();
        a.queue = (mode != "none").then(|| mode.to_string());
    }
    let shoppers = Arc::new(crowd_of(&a, &keys, &sales));
    let mut stats = Stats::new();
    stats.keep_history = a.history.is_some();
    let stats = Arc::new(stats);
    let ctx = Arc::new(Ctx {
        edge,
        untrusted: Http::new(&a.edge, 16, Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))),
        sale_id: sale.id,
        keys,
        stats: stats.clone(),
    });
    let before = scraped.take().await;
    let (elapsed, queue, opening) = play_by_mode(&a, &ctx, shoppers, starts).await;

    if let Some(file) = &a.history {
        std::fs::write(file, stats.history())
            .map_err(|e| format!("--history {}: {e}", file.display()))?;
    }
    // The edge flushes its counters once a second; the writer drains meanwhile.
    let answered = stats.order_ids.lock().unwrap().clone();
    let (f, sales_exact) = if sales.len() > 1 {
        facts::read_many(&redis, &db, &sales, &answered, Duration::from_secs(120)).await?
    } else {
        let f = facts::read(&redis, &db, &sale, &answered, Duration::from_secs(60)).await?;
        let exact = usize::from(f.orders_in_db == f.sold && f.oversold == 0);
        (f, exact)
    };
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let counts = scraped.take().await.since(&before);
    let lat = stats.sorted_latencies();
    let found = Found {
        sale_id: sale.id,
        sales: &sales,
        sales_exact,
        stats: &stats,
        facts: &f,
        counts: &counts,
        lat: &lat,
        elapsed,
    };
    let (summary, ok) = verdict::of(&a, &found, queue, opening);
    println!("{summary}");
    Ok(ok)
}

/// Plays the crowd as its mode asks: a queue run, a real opening's race, or a plain race.
/// How long the sale phase took, the queue's fairness figures and the opening's.
async fn play_by_mode(
    a: &args::Args,
    ctx: &Arc<Ctx>,
    shoppers: Arc<Vec<Shopper>>,
    starts: i64,
) -> (
    Duration,
    Option<serde_json::Value>,
    Option<serde_json::Value>,
) {
    let bots: Arc<Vec<bool>> = Arc::new((0..a.users).map(|i| chosen(i, a.bots, 13)).collect());
    let (elapsed, records) = match (&a.queue, a.real_captcha) {
        (Some(_), _) => waiting::play(a, ctx, shoppers, bots, starts).await,
        (None, true) => race::race(a, ctx, shoppers, bots, starts).await,
        (None, false) => (play(a, ctx, shoppers, starts).await, Vec::new()),
    };
    let queue = a
        .queue
        .as_ref()
        .map(|mode| line_figures::fairness(mode, a.stock, starts, &records));
    let opening = a
        .real_captcha
        .then(|| race::figures(&records, &ctx.stats, starts));
    (elapsed, queue, opening)
}

/// Creates the sale through the edge's admin location, starting `start_in` from now; returns
/// it as MariaDB holds it, and its start.
async fn create_sale(
    a: &args::Args,
    edge: &Http,
    admin: &str,
    db: &mysql_async::Pool,
) -> Result<(seckill::buy::sales::Sale, i64), String> {
    // A queue run's shoppers (and a real opening's) arrive before the start.
    let lead = if a.queue.is_some() || a.real_captcha {
        a.start_in.max(a.arrive_before + Duration::from_secs(2))
    } else {
        a.start_in
    };
    let starts = seckill::clock::now_ms() + lead.as_millis() as i64;
    let mut body = json!({"title": format!("Crowd of {}", a.users), "price_cents": 100,
        "stock": a.stock, "per_user_limit": a.per_user_limit,
        "starts_at": starts, "ends_at": starts + 3_600_000});
    // A plain run is a race (queue "none"), whatever the server's default for new sales;
    // `--queue default` leaves the field out and plays what the server chose.
    match a.queue.as_deref() {
        Some("default") => {}
        mode => body["queue"] = json!(mode.unwrap_or("none")),
    }
    let auth = format!("Bearer {admin}");
    // A backend that is rebuilding a restarted Redis answers 503 for a while: wait for it.
    let mut attempt = 0;
    let (status, created) = loop {
        let r = edge
            .send(
                Method::POST,
                "/admin/sales",
                &[("authorization", auth.as_str())],
                Some(("application/json", body.to_string())),
            )
            .await;
        attempt += 1;
        if r.0 != 503 || attempt >= 60 {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    if status != 201 {
        return Err(format!(
            "creating the sale: {status} {}",
            String::from_utf8_lossy(&created)
        ));
    }
    let sale_id = serde_json::from_slice::<serde_json::Value>(&created)
        .ok()
        .and_then(|v| v["id"].as_u64())
        .ok_or("creating the sale: no id in the answer")?;
    let sale = seckill::buy::sale_rows::load(db, sale_id)
        .await
        .map_err(|e| format!("database: {e}"))?
        .ok_or("the new sale is not in MariaDB")?;
    if !a.quiet {
        eprintln!(
            "crowd: sale {sale_id}: {} units, {} shoppers, starts in {} ms",
            a.stock,
            a.users,
            a.start_in.as_millis()
        );
    }

    Ok((sale, starts))
}

/// Plays the crowd from the sale's start, open or closed loop; returns how long it took.
async fn play(
    a: &args::Args,
    ctx: &Arc<Ctx>,
    shoppers: Arc<Vec<Shopper>>,
    starts: i64,
) -> Duration {
    let stats = &ctx.stats;
    let sale_id = ctx.sale_id;
    // Shoppers sit on the page during the countdown: their connections are open when the
    // sale starts (the page polls the sale's state, through the edge to the backend).
    warm_up(&ctx.edge, sale_id, a.concurrency).await;
    let wait = starts - seckill::clock::now_ms();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
    let started = Instant::now();
    let _ = stats.started.set(started);
    let progress = (!a.quiet).then(|| tokio::spawn(progress(stats.clone(), a.users, started)));
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    if a.rate > 0.0 {
        // Open loop: shoppers arrive on schedule whatever the system's speed; latency counts
        // from the scheduled arrival, so a stall shows instead of slowing the arrivals.
        let gate = Arc::new(tokio::sync::Semaphore::new(a.concurrency));
        for i in 0..a.users {
            let due = started + Duration::from_secs_f64(i as f64 / a.rate);
            if due.duration_since(started) > a.duration {
                break;
            }
            tokio::time::sleep_until(due.into()).await;
            let (ctx, shoppers, gate) = (ctx.clone(), shoppers.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = gate.acquire_owned().await;
                shopper::run(&ctx, &shoppers[i], due).await;
                ctx.stats.shoppers_done.fetch_add(1, Ordering::Relaxed);
            }));
        }
    } else {
        // Closed loop: everyone presses buy at zero, `concurrency` at a time.
        for _ in 0..a.concurrency.min(a.users) {
            let (ctx, shoppers, next) = (ctx.clone(), shoppers.clone(), next.clone());
            let deadline = started + a.duration;
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= shoppers.len() || Instant::now() > deadline {
                        break;
                    }
                    shopper::run(&ctx, &shoppers[i], Instant::now()).await;
                    ctx.stats.shoppers_done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed();
    if let Some(p) = progress {
        p.abort();
        eprintln!();
    }

    elapsed
}

/// Opens `n` keep-alive connections (and the edge's to the backend) before the start.
async fn warm_up(edge: &Http, sale_id: u64, n: usize) {
    let path = format!("/api/sales/{sale_id}");
    let mut tasks = Vec::new();
    for _ in 0..n.min(2048) {
        let (edge, path) = (edge.clone(), path.clone());
        tasks.push(tokio::spawn(async move {
            edge.send(Method::GET, &path, &[], None).await;
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// A live progress line on stderr, twice a second.
async fn progress(stats: Arc<Stats>, users: usize, started: Instant) {
    let mut last = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let req = stats.requests();
        let t = started.elapsed().as_secs_f64();
        eprint!(
            "\rcrowd: {t:5.1}s  shoppers {}/{users}  requests {req}  ({}/s)  queued {}  410 {}  429 {}  503 {}  ",
            stats.shoppers_done.load(Ordering::Relaxed),
            (req - last) * 2,
            stats.queued.load(Ordering::Relaxed),
            stats.count(410),
            stats.count(429),
            stats.count(503),
        );
        let _ = std::io::stderr().flush();
        last = req;
    }
}
