//! The operator's routes (bearer admin token; the edge lets them in from loopback only):
//! creating a sale, and checking (and repairing) that Redis, MariaDB and the money agree.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::json;

use super::reply::{self, Resp};
use super::request::{read_json, require_admin};
use crate::app::App;
use crate::buy::sales::{self, NewSale};
use crate::clock::now_ms;
use crate::error::ApiError;

/// Creates a sale: MariaDB first (the system of record), then its stock into Redis.
pub async fn create_sale(app: &App, req: Request<Incoming>) -> Result<Resp, ApiError> {
    require_admin(app, &req)?;
    let body = read_json(req, app.cfg.max_body).await?;
    let now = now_ms();
    let new = NewSale::from_json(&body, now)?;
    let sale = app
        .db_call("creating the sale", async {
            sales::insert(&app.db, &new, now)
                .await
                .map_err(ApiError::mysql)
        })
        .await?;
    crate::buy::stock::preheat(&app.redis, sale.id, sale.stock)
        .await
        .map_err(|e| {
            ApiError::redis(format!(
                "sale {} created but its stock is not loaded: {e}",
                sale.id
            ))
        })?;
    app.cache.put(sale.clone()).await;
    Ok(reply::json(
        StatusCode::CREATED,
        &sale.to_json(Some(sale.stock.into()), now),
    ))
}

/// Checks every sale of the last day (`?repair=1`: and repairs what drifted), and the money
/// of their orders. `ok` is true when every sale's drift is 0, no refund is still owed, and
/// every order's money adds up.
pub async fn reconcile(app: &App, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    require_admin(app, req)?;
    let repair = req.uri().query().is_some_and(|q| {
        q.split('&')
            .any(|kv| kv == "repair=1" || kv == "repair=true")
    });
    let since = now_ms() - crate::buy::sales::RETENTION_MS;
    let list = sales::ending_after(&app.db, since)
        .await
        .map_err(ApiError::mysql)?;
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
    let money = crate::lifecycle::payment::money_check(&app.db, &ids)
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
    if sale.queue.mode == crate::buy::sales::QueueMode::None {
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
