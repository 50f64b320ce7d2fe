//! `benchkit`: the helpers `scripts/bench` needs beyond wrk and redis-benchmark.
//!
//! - `hello ADDR`: a hyper hello-world (TCP, or `unix:/path`), the baseline behind nginx for
//!   the full buy path;
//! - `shoppers SECRETS_DIR SALE N OUT`: N shoppers' sessions and signed buy paths (minted with
//!   the operator's keys) as `path token address` lines, for wrk's Lua script;
//! - `reserve-prep REDIS_URL SALE STOCK`: loads the hot scripts and a sale's stock, prints
//!   the reserve script's SHA for `redis-benchmark EVALSHA`;
//! - `reserve-rate REDIS_URL SALE N CONCURRENCY BATCH_MAX`: N reservations of distinct buyers
//!   from CONCURRENCY tasks through the backend's reserver (`BATCH_MAX` 1: one script call
//!   per buy); prints reservations/s and the mean batch;
//! - `captcha-rate N`: captchas drawn per second on one core, and their mean size in bytes;
//! - `step-lines KIND SECRETS_DIR SALE N OUT`: N requests of one shopper step for
//!   `bench/steps.lua` (`scripts/bench-steps`): sign-ins, proof-of-work challenges, pictures
//!   (each with a challenge minted with the edge's key and solved here), captcha answers
//!   (each a token minted with the captcha key, answered right);
//! - `captcha-samples N DIR [SEED [HAND]]`: N captchas as PNG files and their answers, for
//!   `scripts/captcha-check` (with SEED, the same ones every time; HAND: whose hand, see
//!   `captcha_samples`);
//! - `writer REDIS_URL MYSQL_URL N`: queues N orders, then times the real order writer
//!   draining them into MariaDB, next to one-row autocommit inserts on the same server.

mod captcha;
mod material;

use std::convert::Infallible;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use mysql_async::prelude::Queryable;
use seckill::config::RedisTarget;
use seckill::store::redis_conn::Redis;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = match argv.as_slice() {
        ["hello", addr] => hello(addr).await,
        ["shoppers", dir, sale, n, out] => shoppers(dir, sale, n, out),
        ["reserve-prep", url, sale, stock] => reserve_prep(url, sale, stock).await,
        ["captcha-rate", n] => captcha::captcha_rate(n),
        ["captcha-samples", n, dir] => captcha::captcha_samples(n, dir, None, "public"),
        ["captcha-samples", n, dir, seed] => captcha::captcha_samples(n, dir, Some(seed), "public"),
        ["captcha-samples", n, dir, seed, hand] => {
            captcha::captcha_samples(n, dir, Some(seed), hand)
        }
        ["reserve-rate", url, sale, n, conc, max] => {
            reserve_rate(url, sale, n, conc, max, "0").await
        }
        ["reserve-rate", url, sale, n, conc, max, wait] => {
            reserve_rate(url, sale, n, conc, max, wait).await
        }
        ["writer", redis, mysql, n] => writer(redis, mysql, n).await,
        ["step-lines", kind, dir, sale, n, out] => material::step_lines(kind, dir, sale, n, out),
        _ => Err(
            "usage: benchkit hello ADDR | shoppers SECRETS_DIR SALE N OUT | \
                  reserve-prep REDIS_URL SALE STOCK | captcha-rate N | \
                  captcha-samples N DIR [SEED [HAND]] | \
                  reserve-rate REDIS_URL SALE N CONCURRENCY BATCH_MAX [WAIT_REPLICAS] | \
                  writer REDIS_URL MYSQL_URL N | \
                  step-lines login|join|mine|pow|picture|answer SECRETS_DIR SALE N OUT"
                .into(),
        ),
    };
    if let Err(e) = r {
        eprintln!("benchkit: {e}");
        std::process::exit(1);
    }
}

pub(crate) fn num<T: std::str::FromStr>(what: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{what}: not a number: {v:?}"))
}

/// A hyper hello-world on `host:port`, or on a Unix socket given as `unix:/path`.
async fn hello(addr: &str) -> Result<(), String> {
    if let Some(path) = addr.strip_prefix("unix:") {
        let _ = std::fs::remove_file(path);
        let listener = tokio::net::UnixListener::bind(path).map_err(|e| format!("{addr}: {e}"))?;
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .map_err(|e| format!("{addr}: {e}"))?;
        loop {
            if let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(hello_conn(TokioIo::new(stream)));
            }
        }
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(hello_conn(TokioIo::new(stream)));
    }
}

async fn hello_conn<I>(io: I)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
{
    let svc = service_fn(|_req: Request<hyper::body::Incoming>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello"))))
    });
    let _ = http1::Builder::new().serve_connection(io, svc).await;
}

pub(crate) fn secret(dir: &str, name: &str) -> Result<Vec<u8>, String> {
    let path = std::path::Path::new(dir).join(name);
    let raw = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(String::from_utf8_lossy(&raw).trim().as_bytes().to_vec())
}

fn shoppers(dir: &str, sale: &str, n: &str, out: &str) -> Result<(), String> {
    let (sale, n): (u64, usize) = (num("SALE", sale)?, num("N", n)?);
    let session_key = secret(dir, "session.key")?;
    let link_key = secret(dir, "link.key")?;
    let now_s = seckill::clock::now_ms() / 1000;
    let mut f =
        std::io::BufWriter::new(std::fs::File::create(out).map_err(|e| format!("{out}: {e}"))?);
    for i in 0..n {
        let user =
            seckill::tokens::session::user_id_for(&session_key, &format!("bench-{sale}-{i}"));
        let token = seckill::tokens::session::issue(&session_key, user, now_s + 3600);
        let sig = seckill::tokens::link::sign(&link_key, user, sale, now_s, 60);
        writeln!(
            f,
            "/api/sales/{sale}/buy/{sig} {token} 10.{}.{}.{}",
            (i >> 16) & 0xff,
            (i >> 8) & 0xff,
            i & 0xff
        )
        .map_err(|e| e.to_string())?;
    }
    f.flush().map_err(|e| e.to_string())
}

async fn redis(url: &str) -> Result<Redis, String> {
    Redis::connect(&RedisTarget::from_arg(url), Duration::from_secs(5))
        .await
        .map_err(|e| format!("redis {url}: {e}"))
}

async fn reserve_prep(url: &str, sale: &str, stock: &str) -> Result<(), String> {
    let (sale, stock): (u64, u32) = (num("SALE", sale)?, num("STOCK", stock)?);
    let r = redis(url).await?;
    seckill::store::scripts::load_hot(&r)
        .await
        .map_err(|e| e.to_string())?;
    seckill::buy::stock::preheat(&r, sale, stock)
        .await
        .map_err(|e| e.to_string())?;
    println!("{}", seckill::store::scripts::hot_hashes()[0]);
    Ok(())
}

/// Reservations per second through the reserver, as the buy handler calls it; the sale gets
/// N units first, so every reservation queues an order. WAIT_REPLICAS > 0: each call that
/// reserved waits (up to 1 s) for that many replicas, as with SECKILL_REDIS_WAIT_REPLICAS.
async fn reserve_rate(
    url: &str,
    sale: &str,
    n: &str,
    conc: &str,
    max: &str,
    wait: &str,
) -> Result<(), String> {
    let (sale, n, conc, max, wait): (u64, u32, u32, usize, u32) = (
        num("SALE", sale)?,
        num("N", n)?,
        num("CONCURRENCY", conc)?,
        num("BATCH_MAX", max)?,
        num("WAIT_REPLICAS", wait)?,
    );
    let r = redis(url).await?;
    seckill::store::scripts::load_hot(&r)
        .await
        .map_err(|e| e.to_string())?;
    seckill::buy::stock::preheat(&r, sale, n)
        .await
        .map_err(|e| e.to_string())?;
    let sizes = seckill::metrics::Metrics::new().reserve_batch;
    let reserver = seckill::buy::reserver::Reserver::replicated(
        r,
        Arc::new(seckill::store::activity::Activity::default()),
        max,
        sizes.clone(),
        Some((wait, 1000)),
    );
    let next = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let now = seckill::clock::now_ms();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (reserver, next) = (reserver.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return Ok(());
                }
                match reserver.reserve(sale, u64::from(i) + 1, 1, now).await {
                    Ok(seckill::buy::stock::Reservation::Queued { .. }) => {}
                    other => return Err(format!("reservation {i}: {other:?}")),
                }
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    let rate = f64::from(n) / started.elapsed().as_secs_f64();
    let mean = sizes.get_sample_sum() / sizes.get_sample_count().max(1) as f64;
    println!("{} {:.1}", rate.round(), mean);
    Ok(())
}

/// Times the real writer: N orders queued first (not timed), then one writer drains them.
async fn writer(redis_url: &str, mysql_url: &str, n: &str) -> Result<(), String> {
    let n: u32 = num("N", n)?;
    let r = redis(redis_url).await?;
    let db = seckill::store::db::pool(mysql_url, 16).map_err(|e| e.to_string())?;
    seckill::store::db::migrate(&db, Duration::from_secs(30))
        .await
        .map_err(|e| e.to_string())?;
    seckill::store::scripts::load_hot(&r)
        .await
        .map_err(|e| e.to_string())?;
    let now = seckill::clock::now_ms();
    let sale_id = queue_orders(&r, &db, n, now).await?;
    let batched = drain(redis_url, &db, sale_id, n).await?;
    let single = single_inserts(&db, (n / 20).clamp(500, 5000), now).await?;
    println!("{} {}", batched.round(), single.round());
    Ok(())
}

/// A sale of `n` units with `n` orders queued in its stream through the reserve script (64
/// at a time), as "another backend" would leave them: registered in the active set with a
/// lease long enough for the whole run, so the writer finds it by its first look.
async fn queue_orders(
    r: &seckill::store::redis_conn::Redis,
    db: &mysql_async::Pool,
    n: u32,
    now: i64,
) -> Result<u64, String> {
    let new = seckill::buy::new_sale::NewSale {
        title: "writer bench".into(),
        price_cents: 1,
        stock: n,
        per_user_limit: 1,
        starts_ms: now - 1000,
        ends_ms: now + 3_600_000,
        pay_window_s: 900,
        queue: Default::default(),
        description: None,
        image_url: None,
        listed: true,
    };
    let sale = seckill::buy::sale_rows::insert_many(db, std::slice::from_ref(&new), now)
        .await
        .map_err(|e| e.to_string())?
        .remove(0);
    let lease = seckill::store::activity::register(r, &[sale.id], 600_000, 0)
        .await
        .map_err(|e| e.to_string())?;
    seckill::buy::stock::preheat(r, sale.id, n)
        .await
        .map_err(|e| e.to_string())?;
    let next = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (r, next, sale_id) = (r.clone(), next.clone(), sale.id);
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                seckill::buy::stock::reserve(&r, sale_id, u64::from(i) + 1, 1, now, lease)
                    .await
                    .expect("reserve");
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())?;
    }
    Ok(sale.id)
}

/// The writer, as the backend runs it, until the sale's `n` orders are rows; orders a second.
async fn drain(
    redis_url: &str,
    db: &mysql_async::Pool,
    sale_id: u64,
    n: u32,
) -> Result<f64, String> {
    let w = Arc::new(seckill::writer::Writer::new(
        redis(redis_url).await?,
        db.clone(),
        seckill::writer::WriterConfig {
            batch: 500,
            look: Duration::from_millis(100),
            claim_idle: Duration::from_secs(30),
            mysql_timeout: Duration::from_secs(10),
            max_failures: 5,
            fence: true,
            consumer: seckill::writer::consumer_name(),
        },
        Arc::new(seckill::metrics::Metrics::new()),
        Arc::new(seckill::store::activity::Activity::default()),
    ));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let running = tokio::spawn(w.run(stop_rx));
    loop {
        let mut c = db.get_conn().await.map_err(|e| e.to_string())?;
        let rows: Option<u64> = c
            .exec_first("SELECT COUNT(*) FROM orders WHERE sale_id = ?", (sale_id,))
            .await
            .map_err(|e| e.to_string())?;
        if rows.unwrap_or(0) >= u64::from(n) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        if started.elapsed() > Duration::from_secs(300) {
            return Err("the writer did not finish in 5 minutes".into());
        }
    }
    let rate = f64::from(n) / started.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    let _ = running.await;
    Ok(rate)
}

/// The baseline: `n` one-row autocommit inserts on one connection; rows a second.
async fn single_inserts(db: &mysql_async::Pool, n: u32, now: i64) -> Result<f64, String> {
    let mut c = db.get_conn().await.map_err(|e| e.to_string())?;
    let base_id: u64 = (u64::from(u32::MAX) << 32) | 1;
    c.query_drop(format!("DELETE FROM orders WHERE id >= {base_id}"))
        .await
        .map_err(|e| e.to_string())?;
    let t = Instant::now();
    for i in 0..u64::from(n) {
        c.exec_drop(
            "INSERT INTO orders (id, sale_id, seq, user_id, slot, live_slot, status, price_cents,
               queued_ms, created_ms, pay_by_ms) VALUES (?, ?, ?, ?, 1, 1, 'created', 1, ?, ?, ?)",
            (
                base_id + i,
                u64::from(u32::MAX),
                i + 1,
                i + 1,
                now,
                now,
                now + 900_000,
            ),
        )
        .await
        .map_err(|e| e.to_string())?;
    }
    let rate = f64::from(n) / t.elapsed().as_secs_f64();
    c.query_drop(format!("DELETE FROM orders WHERE id >= {base_id}"))
        .await
        .map_err(|e| e.to_string())?;
    Ok(rate)
}
