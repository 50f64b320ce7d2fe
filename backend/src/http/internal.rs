//! Loopback routes: Prometheus metrics, health, and the sale states the edges pull into their
//! shared dicts. The edge has no location for `/internal/` and answers `/metrics` itself.
//!
//! **The state pull learns changes, not the world** (`edge/lua/seckill/sale_state.lua` is the
//! other side). An edge that starts reads the full list of live sales in pages
//! (`?full=AFTER_ID`); from then on it asks what changed since what it saw
//! (`?rev=R&changes=C&epoch=E`) and gets only:
//! - the sales whose definition changed (created, edited, paused, ended): MariaDB revision
//!   above `R` (`buy::sale_rows`);
//! - the sales whose state moved (stock crossed a step, sold out, units back, a rebuild):
//!   change-log entries after `C` (`store::changes`);
//! - the waiting rooms someone joined, each stepped once by this pull (`queue::tick`: atomic
//!   and idempotent, so several edges pulling is safe).
//!
//! An idle platform answers an empty list: one indexed query, two small Redis reads. Each
//! answer holds at most [`PAGE`] definitions and [`PAGE`] log entries; `more` says to ask
//! again at once. `#resync` (another database, a trimmed or lost log) sends the edge back to
//! the full list.
//!
//! Text, one line per sale, parsed by the edge without a JSON library:
//! `<id> <starts_ms> <ends_ms> <flags: 1 sold out, 2 paused> <stock_left>` then the waiting
//! room's fields ([`crate::buy::queue::QueueState::edge_fields`]).

use std::collections::{BTreeMap, HashSet};

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::json;

use super::query::Query;
use super::reply::{self, Resp};
use crate::app::App;
use crate::buy::queue::{self, QueueState};
use crate::buy::sale_rows;
use crate::buy::sales::{QueueMode, Sale, EDGE_GRACE_MS};
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::store::changes::{self, Since};
use crate::store::keys::SaleKeys;

/// Most definitions, and most change-log entries, in one answer.
pub const PAGE: usize = 1000;

pub fn metrics(app: &App) -> Result<Resp, ApiError> {
    Ok(reply::text(
        StatusCode::OK,
        "text/plain; version=0.0.4",
        app.metrics.render(),
    ))
}

pub fn healthz() -> Result<Resp, ApiError> {
    Ok(reply::json(StatusCode::OK, &json!({"ok": true})))
}

/// `GET /internal/sales`: a page of the full list, or what changed (see the module doc).
pub async fn sale_states(app: &App, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    let q = Query::parse(req.uri().query(), &["full", "rev", "changes", "epoch"])?;
    let now = now_ms();
    let (rev, epoch) = app
        .db_call("reading the revision", async {
            sale_rows::revision(&app.db).await.map_err(ApiError::mysql)
        })
        .await?;
    let lines = crate::store::activity::lines(&app.redis, now)
        .await
        .map_err(ApiError::redis)?;
    let body = match q.get("full") {
        Some(_) => {
            let after = q.int("full", 0, i64::MAX, 0)? as u64;
            full_page(app, after, rev, &epoch, &lines, now).await?
        }
        None => {
            let seen_rev = q.int("rev", 0, i64::MAX, 0)? as u64;
            let seen_log = q.text("changes", 64)?.unwrap_or_else(|| "0-0".into());
            let same_db = q.get("epoch") == Some(epoch.as_str()) && seen_rev <= rev;
            if !same_db {
                "#resync\n".to_string()
            } else {
                changed(app, seen_rev, &seen_log, &epoch, &lines, now).await?
            }
        }
    };
    Ok(reply::text(
        StatusCode::OK,
        "text/plain",
        body + &shared_line(app),
    ))
}

/// The constants the edge must use as the backend does, in every answer of the pull (the one
/// source: the edge takes them from here, its own values are only for before the first pull).
/// `link_window_s`: a purchase link's window; `captcha_ttl_s`: a captcha's lifetime;
/// `early_ms`: how long before the start challenges and captchas are handed out;
/// `queue_opens_ms`: how long before the start a waiting room opens.
pub fn shared_line(app: &App) -> String {
    format!(
        "#shared link_window_s={} captcha_ttl_s={} early_ms={} queue_opens_ms={}\n",
        app.cfg.link_window.as_secs(),
        app.cfg.captcha_ttl.as_secs(),
        crate::tokens::captcha::EARLY_MS,
        crate::buy::queue::OPENS_BEFORE_MS,
    )
}

/// One page of the live sales by id, after `after`; the header names the revision and the
/// log's head as they were before the page was read (the edge goes on from there).
async fn full_page(
    app: &App,
    after: u64,
    rev: u64,
    epoch: &str,
    lines: &[u64],
    now: i64,
) -> Result<String, ApiError> {
    let head = changes::head(&app.redis).await.map_err(ApiError::redis)?;
    let sales = app
        .db_call("listing the live sales", async {
            sale_rows::live_page(&app.db, now - EDGE_GRACE_MS, after, PAGE)
                .await
                .map_err(ApiError::mysql)
        })
        .await?;
    let next = if sales.len() == PAGE {
        sales.last().map_or(0, |s| s.id)
    } else {
        0
    };
    let mut out = format!("#full {rev} {head} {epoch} {next}\n");
    let stepped: HashSet<u64> = lines.iter().copied().collect();
    render(app, &sales, &stepped, now, &mut out).await?;
    Ok(out)
}

/// What changed after `seen_rev` and log entry `seen_log`, and every moving waiting room.
async fn changed(
    app: &App,
    seen_rev: u64,
    seen_log: &str,
    epoch: &str,
    lines: &[u64],
    now: i64,
) -> Result<String, ApiError> {
    let defs = app
        .db_call("reading the changed sales", async {
            sale_rows::changed_since(&app.db, seen_rev, PAGE)
                .await
                .map_err(ApiError::mysql)
        })
        .await?;
    let (log_to, moved, log_more) = match changes::since(&app.redis, seen_log, PAGE)
        .await
        .map_err(ApiError::redis)?
    {
        Since::StartOver { .. } => return Ok("#resync\n".to_string()),
        Since::Changed { last, sales } => {
            let more = sales.len() >= PAGE;
            (last, sales, more)
        }
    };
    let rev_to = defs.last().map_or(seen_rev, |s| s.rev);
    let more = defs.len() == PAGE || log_more;
    // Each sale once: a changed definition as read now; the others from the cache/MariaDB.
    let mut by_id: BTreeMap<u64, Sale> = defs.into_iter().map(|s| (s.id, s)).collect();
    let missing: Vec<u64> = moved
        .iter()
        .chain(lines)
        .copied()
        .filter(|id| !by_id.contains_key(id))
        .collect::<HashSet<u64>>()
        .into_iter()
        .collect();
    for sale in app
        .cache
        .sales(&missing, &app.db)
        .await
        .map_err(ApiError::mysql)?
    {
        by_id.insert(sale.id, sale);
    }
    let sales: Vec<Sale> = by_id
        .into_values()
        .filter(|s| s.ends_ms + EDGE_GRACE_MS > now)
        .collect();
    let mut out = format!("#state {rev_to} {log_to} {epoch} {}\n", u8::from(more));
    let stepped: HashSet<u64> = lines.iter().copied().collect();
    render(app, &sales, &stepped, now, &mut out).await?;
    Ok(out)
}

/// The lines of `sales`: stock read for all together, each waiting room in `stepped` moved
/// one step.
async fn render(
    app: &App,
    sales: &[Sale],
    stepped: &HashSet<u64>,
    now: i64,
    out: &mut String,
) -> Result<(), ApiError> {
    use std::fmt::Write;
    let lefts = app
        .redis
        .each(
            sales
                .iter()
                .map(|s| redis::cmd("GET").arg(SaleKeys::new(s.id).stock).clone())
                .collect(),
        )
        .await;
    for (s, left) in sales.iter().zip(lefts) {
        let left: Option<i64> = match left {
            Ok(v) => redis::from_redis_value(&v).map_err(ApiError::redis)?,
            Err(e) => return Err(ApiError::redis(e)),
        };
        let queue = if s.queue.mode != QueueMode::None && stepped.contains(&s.id) && now < s.ends_ms
        {
            match step(app, s, now).await {
                Some(state) => state,
                // Left out this time: the edge keeps its last state of the line.
                None => continue,
            }
        } else {
            None
        };
        if let Some(n) = left {
            if stepped.contains(&s.id) {
                app.metrics.sale_gauge(&app.metrics.stock_left, s.id).set(n);
            }
        }
        let flags = u8::from(matches!(left, Some(n) if n <= 0)) | (u8::from(s.paused) << 1);
        let _ = writeln!(
            out,
            "{} {} {} {} {} {}",
            s.id,
            s.starts_ms,
            s.ends_ms,
            flags,
            left.unwrap_or(0).max(0),
            QueueState::edge_fields(queue.as_ref(), s)
        );
    }
    Ok(())
}

/// One step of a waiting room: Some(its state, None when its stock is not loaded), or None
/// when the step failed (counted and logged).
async fn step(app: &App, sale: &Sale, now: i64) -> Option<Option<QueueState>> {
    match queue::tick(&app.redis, sale, now).await {
        Ok(state) => {
            if let Some(q) = &state {
                app.metrics.observe_queue(sale.id, q);
            }
            Some(state)
        }
        Err(e) => {
            app.metrics
                .redis_errors
                .with_label_values(&["queue_tick"])
                .inc();
            eprintln!("internal/sales: sale {}: queue step failed: {e}", sale.id);
            None
        }
    }
}
