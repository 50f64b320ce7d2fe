//! `crowd`: creates a sale (or an evening of them), plays a crowd of shoppers against the
//! real edge at its start, waits for the writer to drain, and prints, as its last line, one
//! JSON object with what MariaDB, Redis and the metrics say happened. See `scripts/crowd` and
//! docs/crowd.md.

mod args;
mod evening;
mod facts;
mod fairness;
mod http;
mod report;
mod shopper;
mod stats;
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
use crate::stats::{quantile_ms, Stats};

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
    let pick = evening::Popularity::new(sales.len(), a.zipf);
    let shoppers: Arc<Vec<Shopper>> = Arc::new(
        (0..a.users)
            .map(|i| {
                Shopper::new(
                    &keys,
                    sales[pick.sale_of(i)].id,
                    i,
                    chosen(i, a.retry, 1),
                    chosen(i, a.cheaters, 7),
                )
            })
            .collect(),
    );
    let stats = Arc::new(Stats::new());
    let ctx = Arc::new(Ctx {
        edge,
        untrusted: Http::new(&a.edge, 16, Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))),
        sale_id: sale.id,
        keys,
        stats: stats.clone(),
    });
    let before = scraped.take().await;
    let (elapsed, queue) = match &a.queue {
        Some(mode) => {
            let bots: Arc<Vec<bool>> =
                Arc::new((0..a.users).map(|i| chosen(i, a.bots, 13)).collect());
            let (elapsed, records) = waiting::play(&a, &ctx, shoppers, bots, starts).await;
            (
                elapsed,
                Some(waiting::fairness(mode, a.stock, starts, &records)),
            )
        }
        None => (play(&a, &ctx, shoppers, starts).await, None),
    };

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
    let mut summary = summarize(&a, sale.id, &stats, &f, &counts, &lat, elapsed);
    summary["sales"] = json!(sales.len());
    summary["sales_exact"] = json!(sales_exact);
    if sales.len() > 1 {
        summary["stock"] = json!(sales.iter().map(|s| u64::from(s.stock)).sum::<u64>());
        summary["stock_per_sale"] = json!(a.stock);
        summary["zipf"] = json!(a.zipf);
    }
    let (buy_p99, join_p99, poll_p99) = stats.p99_by_kind();
    summary["buy_p99_ms"] = json!(buy_p99);
    summary["join_p99_ms"] = json!(join_p99);
    summary["poll_p99_ms"] = json!(poll_p99);
    let fair_to_bots = match queue {
        Some(q) => {
            let p = q["bot_advantage_p"].as_f64().unwrap_or(1.0);
            for (k, v) in q.as_object().into_iter().flatten() {
                summary[k] = v.clone();
            }
            p >= 1e-6
        }
        None => {
            for k in [
                "kendall_tau",
                "uniform_p",
                "bot_queue_share",
                "bot_win_share",
                "eta_error_p50_s",
                "eta_error_p90_s",
            ] {
                summary[k] = serde_json::Value::Null;
            }
            summary["queue_mode"] = json!("none");
            true
        }
    };
    write_report(
        &a,
        sale.id,
        &summary,
        &funnel(&a, &stats, &f, &counts),
        &lat,
        &stats,
    );
    let ok = f.orders_in_db == f.sold
        && sales_exact == sales.len()
        && f.duplicate_buyers == 0
        && f.oversold == 0
        && f.lost == 0
        && f.drift == 0
        && summary["cheats_passed"] == 0
        && fair_to_bots;
    println!("{summary}");
    Ok(ok)
}

/// Creates the sale through the edge's admin location, starting `start_in` from now; returns
/// it as MariaDB holds it, and its start.
async fn create_sale(
    a: &args::Args,
    edge: &Http,
    admin: &str,
    db: &mysql_async::Pool,
) -> Result<(seckill::buy::sales::Sale, i64), String> {
    // A queue run's shoppers arrive (and join) before the start.
    let lead = if a.queue.is_some() {
        a.start_in.max(a.arrive_before + Duration::from_secs(2))
    } else {
        a.start_in
    };
    let starts = seckill::clock::now_ms() + lead.as_millis() as i64;
    let mut body = json!({"title": format!("Crowd of {}", a.users), "price_cents": 100,
        "stock": a.stock, "per_user_limit": a.per_user_limit,
        "starts_at": starts, "ends_at": starts + 3_600_000});
    if let Some(mode) = &a.queue {
        body["queue"] = json!(mode);
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

/// The edges and backends whose counters are read (each one's `/metrics`).
struct Scraped {
    edges: Vec<Http>,
    backends: Vec<Http>,
}

fn clients(list: &str) -> Vec<Http> {
    list.split(',')
        .map(|u| u.trim().trim_end_matches('/'))
        .filter(|u| !u.is_empty())
        .map(|u| Http::new(u, 4, None))
        .collect()
}

impl Scraped {
    fn new(edges: &str, backends: &str) -> Scraped {
        Scraped {
            edges: clients(edges),
            backends: clients(backends),
        }
    }

    async fn take(&self) -> Scrape {
        let mut s = Scrape {
            edges: Vec::new(),
            backends: Vec::new(),
        };
        for e in &self.edges {
            s.edges.push(e.get_text("/metrics").await);
        }
        for b in &self.backends {
            s.backends.push(b.get_text("/metrics").await);
        }
        s
    }
}

/// The counters of every edge and backend at one moment (`None`: it did not answer).
struct Scrape {
    edges: Vec<Option<String>>,
    backends: Vec<Option<String>>,
}

/// What the two scrapes say happened in between, summed over the nodes that answered both
/// times (a node killed or restarted in between counts as unknown: `None` in the lists).
struct Counts {
    edge_total: i64,
    passed: i64,
    issued: i64,
    reached_backend: i64,
    /// Requests each edge counted.
    edges_served: Vec<Option<i64>>,
    /// Buys each backend counted.
    backends_served: Vec<Option<i64>>,
}

impl Scrape {
    fn since(&self, before: &Scrape) -> Counts {
        let delta = |b: &Option<String>, a: &Option<String>, name: &str, want: &[(&str, &str)]| {
            let (b, a) = (b.as_deref()?, a.as_deref()?);
            let d = (facts::counter(a, name, want) - facts::counter(b, name, want)).round() as i64;
            // A counter that went down belongs to a restarted node: unknown.
            (d >= 0).then_some(d)
        };
        let per_edge = |want: &[(&str, &str)]| -> Vec<Option<i64>> {
            before
                .edges
                .iter()
                .zip(&self.edges)
                .map(|(b, a)| delta(b, a, "seckill_edge_requests_total", want))
                .collect()
        };
        let sum = |v: &[Option<i64>]| v.iter().flatten().sum::<i64>();
        let edges_served = per_edge(&[]);
        let backends_served: Vec<Option<i64>> = before
            .backends
            .iter()
            .zip(&self.backends)
            .map(|(b, a)| delta(b, a, "seckill_http_requests_total", &[("route", "buy")]))
            .collect();
        Counts {
            edge_total: sum(&edges_served),
            passed: sum(&per_edge(&[("route", "buy"), ("outcome", "passed")])),
            issued: sum(&per_edge(&[("route", "path"), ("outcome", "issued")])),
            reached_backend: sum(&backends_served),
            edges_served,
            backends_served,
        }
    }
}

/// The JSON line the run prints last (the contract of `scripts/crowd`).
fn summarize(
    a: &args::Args,
    sale_id: u64,
    stats: &Stats,
    f: &facts::Facts,
    c: &Counts,
    lat: &[u32],
    elapsed: Duration,
) -> serde_json::Value {
    let requests = stats.requests();
    let secs = elapsed.as_secs_f64().max(1e-3);
    let outcomes: serde_json::Map<String, serde_json::Value> = stats
        .statuses()
        .into_iter()
        .map(|(s, c)| {
            (
                if s == 0 {
                    "no_answer".into()
                } else {
                    s.to_string()
                },
                json!(c),
            )
        })
        .collect();
    json!({
        "sale_id": sale_id,
        "stock": a.stock,
        "users": a.users,
        "requests": requests,
        "sold": f.sold,
        "orders_in_db": f.orders_in_db,
        "duplicate_buyers": f.duplicate_buyers,
        "oversold": f.oversold,
        "rejected_at_edge": c.edge_total - c.passed - c.issued,
        "reached_backend": c.reached_backend,
        "edges_served": c.edges_served,
        "backends_served": c.backends_served,
        "rps": (requests as f64 / secs).round(),
        "p50_ms": quantile_ms(lat, 0.50),
        "p99_ms": quantile_ms(lat, 0.99),
        "p999_ms": quantile_ms(lat, 0.999),
        "max_ms": quantile_ms(lat, 1.0),
        "queued_answers": stats.queued.load(Ordering::Relaxed),
        "queued_lost": f.lost,
        "undrained": f.undrained,
        "drift": f.drift,
        "cheats": stats.cheats.load(Ordering::Relaxed),
        "cheats_passed": stats.cheats_passed.load(Ordering::Relaxed),
        "spoofed": stats.spoofed.load(Ordering::Relaxed),
        "spoofed_limited": stats.spoofed_limited.load(Ordering::Relaxed),
        "no_answer": stats.count(0),
        "outcomes": outcomes,
        "mode": if a.rate > 0.0 { format!("open loop, {} shoppers/s", a.rate) } else { format!("closed loop, {} at a time", a.concurrency) },
        "seconds": (secs * 1000.0).round() / 1000.0,
    })
}

/// The funnel for the report: how many got how far.
fn funnel(a: &args::Args, stats: &Stats, f: &facts::Facts, c: &Counts) -> Vec<(String, f64)> {
    vec![
        ("shoppers".to_string(), a.users as f64),
        ("requests at the edge".to_string(), stats.requests() as f64),
        ("paths issued (captcha ok)".to_string(), c.issued as f64),
        ("buys passed to the backend".to_string(), c.passed as f64),
        (
            "buys seen by the backend".to_string(),
            c.reached_backend as f64,
        ),
        (
            "queued (reserved in Redis)".to_string(),
            stats.queued.load(Ordering::Relaxed) as f64,
        ),
        ("orders in MariaDB".to_string(), f.orders_in_db as f64),
    ]
}

/// The HTML report, when `--report` asks for one.
fn write_report(
    a: &args::Args,
    sale_id: u64,
    summary: &serde_json::Value,
    funnel: &[(String, f64)],
    lat: &[u32],
    stats: &Stats,
) {
    if let Some(dir) = &a.report {
        let path = if dir.extension().is_some_and(|e| e == "html") {
            dir.clone()
        } else {
            dir.join(format!("crowd-{sale_id}.html"))
        };
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        match std::fs::write(
            &path,
            report::html(summary, funnel, lat, &stats.over_time(250)),
        ) {
            Ok(()) if !a.quiet => eprintln!("crowd: report written to {}", path.display()),
            Ok(()) => {}
            Err(e) => eprintln!("crowd: cannot write the report {}: {e}", path.display()),
        }
    }
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
