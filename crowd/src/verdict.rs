//! What a crowd run found, as its verdict: the JSON line it prints last (the contract of
//! `scripts/crowd`), the HTML report, and whether every invariant held. Also the edges' and
//! backends' counters read before and after the run.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;

use crate::args;
use crate::facts;
use crate::http::Http;
use crate::report;
use crate::stats::{quantile_ms, Stats};

/// Everything a run measured, for its verdict.
pub struct Found<'a> {
    pub sale_id: u64,
    pub sales: &'a [seckill::buy::sales::Sale],
    pub sales_exact: usize,
    pub stats: &'a Stats,
    pub facts: &'a facts::Facts,
    pub counts: &'a Counts,
    pub lat: &'a [u32],
    pub elapsed: Duration,
}

/// The summary line (also written into the report) and whether the run kept every invariant
/// (and, with a waiting room, was fair to people against bots).
pub fn of(
    a: &args::Args,
    found: &Found,
    queue: Option<serde_json::Value>,
    opening: Option<serde_json::Value>,
) -> (serde_json::Value, bool) {
    let Found {
        sale_id,
        sales,
        sales_exact,
        stats,
        facts: f,
        counts,
        lat,
        elapsed,
    } = *found;
    let mut summary = summarize(a, sale_id, stats, f, counts, lat, elapsed);
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
            // Promised: a draw gives bots no more than their share, and so does a fifo line
            // whose bots arrive as people do. A fifo line that bots join first is theirs:
            // that is what first come, first served means (reported, not a failure).
            p >= 1e-6 || (a.real_captcha && q["queue_mode"] == "fifo")
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
    for (k, v) in opening.iter().flat_map(|o| o.as_object()).flatten() {
        summary[k] = v.clone();
    }
    write_report(
        a,
        sale_id,
        &summary,
        &funnel(a, stats, f, counts),
        lat,
        stats,
    );
    let ok = f.orders_in_db == f.sold
        && sales_exact == sales.len()
        && f.duplicate_buyers == 0
        && f.oversold == 0
        && f.lost == 0
        && f.drift == 0
        && summary["cheats_passed"] == 0
        && summary["pictures_repeated"].as_u64().unwrap_or(0) == 0
        && fair_to_bots;
    (summary, ok)
}

/// The edges and backends whose counters are read (each one's `/metrics`).
pub struct Scraped {
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
    pub fn new(edges: &str, backends: &str) -> Scraped {
        Scraped {
            edges: clients(edges),
            backends: clients(backends),
        }
    }

    pub async fn take(&self) -> Scrape {
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
pub struct Scrape {
    edges: Vec<Option<String>>,
    backends: Vec<Option<String>>,
}

/// What the two scrapes say happened in between, summed over the nodes that answered both
/// times (a node killed or restarted in between counts as unknown: `None` in the lists).
pub struct Counts {
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
    pub fn since(&self, before: &Scrape) -> Counts {
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
