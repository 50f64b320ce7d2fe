//! The operator's routes (bearer admin token; the edge lets them in from loopback only):
//! creating sales (one, or thousands in one call), listing and reading them with their
//! numbers, changing, pausing, resuming and ending them, checking (and repairing) that Redis,
//! MariaDB and the money agree, and steering a waiting room.

use std::collections::HashSet;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::json;

use super::query::Query;
use super::reply::{self, Resp};
use super::request::{read_json, require_admin};
use crate::app::App;
use crate::buy::new_sale::{self, NewSale};
use crate::buy::sale_rows::{self, Filter};
use crate::buy::sales::{QueueMode, Sale};
use crate::buy::{sale_stats, stock};
use crate::clock::now_ms;
use crate::error::ApiError;

/// Creates sales: MariaDB first (the system of record, one transaction for all), then their
/// stock into Redis (the commands of all sent together). An object creates one sale and
/// answers it; an array creates all or none and answers `{"created": n, "sales": [...]}`.
pub async fn create_sale(app: &App, req: Request<Incoming>) -> Result<Resp, ApiError> {
    require_admin(app, &req)?;
    let body = read_json(req, app.cfg.max_admin_body).await?;
    let now = now_ms();
    let new = NewSale::list_from_json(&body, now)?;
    let sales = app
        .db_call("creating the sales", async {
            sale_rows::insert_many(&app.db, &new, now)
                .await
                .map_err(ApiError::mysql)
        })
        .await?;
    let stocks: Vec<(u64, u32)> = sales.iter().map(|s| (s.id, s.stock)).collect();
    stock::preheat_many(&app.redis, &stocks)
        .await
        .map_err(|e| {
            ApiError::redis(format!(
                "{} sales created (ids {}..={}) but their stock is not all loaded: {e}",
                sales.len(),
                stocks.first().map_or(0, |s| s.0),
                stocks.last().map_or(0, |s| s.0),
            ))
        })?;
    if !body.is_array() {
        let sale = sales
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::mysql("creating the sale: nothing was created"))?;
        app.cache.put(sale.clone()).await;
        return Ok(reply::json(
            StatusCode::CREATED,
            &sale.to_json(Some(sale.stock.into()), now),
        ));
    }
    let out: Vec<_> = sales
        .iter()
        .map(|s| s.to_json(Some(s.stock.into()), now))
        .collect();
    Ok(reply::json(
        StatusCode::CREATED,
        &json!({"created": out.len(), "sales": out}),
    ))
}

/// The sales in the active set now (busy: selling, units coming back, orders not yet
/// written).
async fn busy(app: &App) -> Result<HashSet<u64>, ApiError> {
    let (_, members) = crate::store::activity::active(&app.redis)
        .await
        .map_err(ApiError::redis)?;
    Ok(members.into_iter().map(|(id, _)| id).collect())
}

/// `GET /admin/sales`: a page of sales with their numbers, newest first. Parameters:
/// `status` (upcoming, live, ended), `starts_from`, `starts_to` (RFC 3339 or epoch ms),
/// `q` (words of the title), `busy=1` (only the busy sales, the ones to watch first),
/// `limit` (1..=200, default 50), `before` (the id the last page ended at).
pub async fn list_sales(app: &App, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    require_admin(app, req)?;
    let q = Query::parse(
        req.uri().query(),
        &[
            "status",
            "starts_from",
            "starts_to",
            "q",
            "busy",
            "limit",
            "before",
        ],
    )?;
    let now = now_ms();
    let busy_now = busy(app).await?;
    let only_busy = q.choice("busy", &["0", "1"])? == Some("1");
    let filter = Filter {
        when: q.choice("status", &["upcoming", "live", "ended"])?,
        starts_from_ms: q.time_ms("starts_from")?,
        starts_to_ms: q.time_ms("starts_to")?,
        title: q.text("q", 200)?,
        before_id: Some(q.int("before", 1, i64::from(u32::MAX), i64::from(u32::MAX))? as u64),
        limit: q.int("limit", 1, 200, 50)? as usize,
    };
    let (sales, total) = if only_busy {
        let mut ids: Vec<u64> = busy_now.iter().copied().collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        ids.truncate(filter.limit);
        let mut sales = app
            .db_call("loading the busy sales", async {
                sale_rows::load_many(&app.db, &ids)
                    .await
                    .map_err(ApiError::mysql)
            })
            .await?;
        sales.sort_unstable_by_key(|s| std::cmp::Reverse(s.id));
        let n = busy_now.len() as u64;
        (sales, n)
    } else {
        app.db_call("listing the sales", async {
            sale_rows::list(&app.db, &filter, now)
                .await
                .map_err(ApiError::mysql)
        })
        .await?
    };
    let stats = sale_stats::of(&app.redis, &app.db, &sales, &busy_now)
        .await
        .map_err(|e| ApiError::Unavailable("stats_unavailable", e))?;
    let items: Vec<_> = sales
        .iter()
        .zip(&stats)
        .map(|(s, st)| sale_stats::to_json(s, st, now))
        .collect();
    let next = (items.len() == filter.limit).then(|| sales.last().map(|s| s.id));
    Ok(reply::json(
        StatusCode::OK,
        &json!({"total": total, "busy": busy_now.len(), "sales": items,
                "next_before": next.flatten()}),
    ))
}

/// `GET /admin/sales/{id}`: one sale with its numbers.
pub async fn sale(app: &App, req: &Request<Incoming>, id: u64) -> Result<Resp, ApiError> {
    require_admin(app, req)?;
    let sale = load(app, id).await?;
    let busy_now = busy(app).await?;
    let stats = sale_stats::of(&app.redis, &app.db, std::slice::from_ref(&sale), &busy_now)
        .await
        .map_err(|e| ApiError::Unavailable("stats_unavailable", e))?;
    let st = stats.into_iter().next().unwrap_or_default();
    Ok(reply::json(
        StatusCode::OK,
        &sale_stats::to_json(&sale, &st, now_ms()),
    ))
}

async fn load(app: &App, id: u64) -> Result<Sale, ApiError> {
    app.db_call("loading the sale", async {
        sale_rows::load(&app.db, id).await.map_err(ApiError::mysql)
    })
    .await?
    .ok_or_else(|| ApiError::not_found(format!("sale {id}: no such sale")))
}

/// Applies a change to a sale (its row locked meanwhile), forgets it in this backend's
/// cache (the others forget it within a second, by its revision), and answers it.
async fn apply(
    app: &App,
    id: u64,
    change: impl FnOnce(&Sale) -> Result<Sale, ApiError>,
) -> Result<Sale, ApiError> {
    let changed = app
        .db_call("changing the sale", async {
            sale_rows::update(&app.db, id, change)
                .await
                .map_err(ApiError::mysql)
        })
        .await?
        .ok_or_else(|| ApiError::not_found(format!("sale {id}: no such sale")))??;
    app.cache.forget(id).await;
    Ok(changed)
}

/// `PATCH /admin/sales/{id}`: see [`new_sale::change`] for what may change when.
pub async fn change_sale(app: &App, req: Request<Incoming>, id: u64) -> Result<Resp, ApiError> {
    require_admin(app, &req)?;
    let body = read_json(req, app.cfg.max_body).await?;
    let now = now_ms();
    let before = load(app, id).await?;
    let sale = apply(app, id, |current| new_sale::change(&body, current, now)).await?;
    if sale.stock != before.stock
        && !stock::restock(&app.redis, id, sale.stock)
            .await
            .map_err(ApiError::redis)?
    {
        return Err(ApiError::BadRequest(
            StatusCode::CONFLICT,
            "sale_started",
            format!("stock: sale {id} has orders already; its stock in Redis is unchanged"),
        ));
    }
    Ok(reply::json(StatusCode::OK, &sale.to_json(None, now)))
}

/// `POST /admin/sales/{id}/pause` and `.../resume`: buys, captchas, purchase paths and
/// admissions are refused while paused (every edge within a second); a waiting room's line
/// stops moving.
pub async fn pause(
    app: &App,
    req: &Request<Incoming>,
    id: u64,
    paused: bool,
) -> Result<Resp, ApiError> {
    require_admin(app, req)?;
    let now = now_ms();
    let sale = apply(app, id, |current| {
        still_on(current, now, "it has ended")?;
        Ok(Sale {
            paused,
            ..current.clone()
        })
    })
    .await?;
    if sale.queue.mode != QueueMode::None {
        let control = crate::buy::queue::Control {
            paused: Some(paused),
            max_rate: None,
        };
        crate::buy::queue::control(&app.redis, id, control)
            .await
            .map_err(ApiError::redis)?;
    }
    Ok(reply::json(StatusCode::OK, &sale.to_json(None, now)))
}

/// A 409 `sale_ended` when `sale` has ended (`why`: what that means for the change asked).
fn still_on(sale: &Sale, now: i64, why: &str) -> Result<(), ApiError> {
    if sale.ends_ms <= now {
        return Err(ApiError::BadRequest(
            StatusCode::CONFLICT,
            "sale_ended",
            format!("sale {}: {why}", sale.id),
        ));
    }
    Ok(())
}

/// `POST /admin/sales/{id}/end`: ends the sale now (every edge refuses it within a second;
/// orders already taken stay, unpaid ones expire as usual). An upcoming sale is called off:
/// it never opens.
pub async fn end(app: &App, req: &Request<Incoming>, id: u64) -> Result<Resp, ApiError> {
    require_admin(app, req)?;
    let now = now_ms();
    let sale = apply(app, id, |current| {
        still_on(current, now, "it has ended already")?;
        // An upcoming sale ended now never opens: its window becomes the past millisecond.
        Ok(Sale {
            starts_ms: current.starts_ms.min(now - 1),
            ends_ms: now,
            ..current.clone()
        })
    })
    .await?;
    Ok(reply::json(StatusCode::OK, &sale.to_json(None, now + 1)))
}

/// `POST /admin/sales/{id}/publish`: lists the sale on the storefront (`GET /api/sales`,
/// within a second; the static home page at the next `scripts/publish`). Its page exists
/// either way; publishing is what shows it to shoppers who were not sent its link.
pub async fn publish(app: &App, req: &Request<Incoming>, id: u64) -> Result<Resp, ApiError> {
    require_admin(app, req)?;
    let now = now_ms();
    let sale = apply(app, id, |current| {
        still_on(current, now, "it has ended; an ended sale is not listed")?;
        Ok(Sale {
            listed: true,
            ..current.clone()
        })
    })
    .await?;
    Ok(reply::json(StatusCode::OK, &sale.to_json(None, now)))
}

/// Checks the sales of the last day, or one (`?sale=ID`), (`?repair=1`: and repairs what
/// drifted), and the money of their orders. `ok` is true when every sale's drift is 0, no
/// refund is still owed, and every order's money adds up.
pub async fn reconcile(app: &App, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    require_admin(app, req)?;
    let q = Query::parse(req.uri().query(), &["repair", "sale"])?;
    let repair = matches!(
        q.choice("repair", &["0", "1", "false", "true"])?,
        Some("1" | "true")
    );
    let list = match q.int("sale", 1, i64::from(u32::MAX), 0)? {
        0 => {
            let since = now_ms() - crate::buy::sales::RETENTION_MS;
            sale_rows::ending_after(&app.db, since)
                .await
                .map_err(ApiError::mysql)?
        }
        id => vec![load(app, id as u64).await?],
    };
    let mut checks = Vec::with_capacity(list.len());
    for sale in &list {
        let c = crate::lifecycle::reconcile::reconcile_sale(
            &app.bg_redis,
            &app.db,
            &app.metrics,
            sale,
            repair,
        )
        .await
        .map_err(|e| ApiError::Unavailable("reconcile_failed", format!("sale {}: {e}", sale.id)))?;
        checks.push(c);
    }
    let ids: Vec<u64> = list.iter().map(|s| s.id).collect();
    let money = crate::lifecycle::refunds::money_check(&app.db, &ids)
        .await
        .map_err(ApiError::mysql)?;
    let ok = checks
        .iter()
        .all(|c| c.drift == 0 && c.stock_left.is_some())
        && money.refunds_pending == 0
        && money.mismatched.is_empty();
    Ok(reply::json(
        StatusCode::OK,
        &json!({"ok": ok, "repaired": repair, "sales": checks, "money": money}),
    ))
}

/// Steers a sale's waiting room: `{"paused": true|false, "max_rate": N}` (admissions a
/// second at most, 0: no cap; both optional). Answers the state after one step of the cursor.
pub async fn queue(app: &App, req: Request<Incoming>, sale_id: u64) -> Result<Resp, ApiError> {
    require_admin(app, &req)?;
    let body = read_json(req, app.cfg.max_body).await?;
    let f = crate::input::Fields::new(&body, &["paused", "max_rate"])?;
    let control = crate::buy::queue::Control {
        paused: f.boolean("paused")?,
        max_rate: match f.int("max_rate", 0, 1_000_000, Some(-1))? {
            -1 => None,
            n => Some(n as u64),
        },
    };
    let sale = super::shopper::sale_or_404(app, sale_id).await?;
    if sale.queue.mode == QueueMode::None {
        return Err(ApiError::BadRequest(
            StatusCode::CONFLICT,
            "no_queue",
            format!("sale {sale_id}: has no waiting room (queue \"none\")"),
        ));
    }
    crate::buy::queue::control(&app.redis, sale_id, control)
        .await
        .map_err(ApiError::redis)?;
    let state = crate::buy::queue::tick(&app.redis, &sale, now_ms())
        .await
        .map_err(ApiError::redis)?
        .ok_or_else(|| {
            ApiError::Unavailable("stock_not_loaded", format!("sale {sale_id}: not in Redis"))
        })?;
    Ok(reply::json(StatusCode::OK, &state.to_json()))
}
