//! The shopper's routes behind the edge: the clock, logging in, a sale's state, a captcha,
//! and the buy. The buy is the hot path: every check that needs no Redis first, then one
//! script call that reserves a unit and enqueues the order atomically.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, SET_COOKIE};
use hyper::{Request, StatusCode};
use serde_json::json;

use super::reply::{self, Resp};
use super::request::{read_json, user_of, SESSION_COOKIE};
use crate::app::App;
use crate::buy::purchase::{redis_failure, Checkout};
use crate::buy::sale_rows;
use crate::buy::sales::{Phase, QueueMode, Sale};
use crate::buy::stock;
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::input::Fields;
use crate::tokens::{link, session};

pub fn time() -> Result<Resp, ApiError> {
    Ok(reply::json(StatusCode::OK, &json!({"now_ms": now_ms()})))
}

pub async fn login(app: &App, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let body = read_json(req, app.cfg.max_body).await?;
    let name = Fields::new(&body, &["user"])?.string("user", 1, 64)?;
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.-@".contains(&b))
    {
        return Err(ApiError::unprocessable(
            "bad_field",
            "user: only letters, digits and _ . - @ are allowed",
        ));
    }
    let key = &app.cfg.secrets.session_key;
    let user_id = session::user_id_for(key, &name);
    let expires_s = now_ms() / 1000 + app.cfg.session_ttl.as_secs() as i64;
    let token = session::issue(key, user_id, expires_s);
    let mut resp = reply::json(
        StatusCode::OK,
        &json!({"token": token, "user_id": user_id, "expires_s": expires_s}),
    );
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict",
        app.cfg.session_ttl.as_secs()
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(SET_COOKIE, v);
    }
    Ok(resp)
}

/// The sale from the local cache, else from MariaDB (through the breaker); 404 if none.
pub async fn sale_or_404(app: &App, id: u64) -> Result<Arc<Sale>, ApiError> {
    let hit = app.cache.is_cached(id);
    app.metrics
        .cache
        .with_label_values(&["sale", if hit { "hit" } else { "miss" }])
        .inc();
    let load = app.db_call("loading the sale", async {
        sale_rows::load(&app.db, id).await.map_err(ApiError::mysql)
    });
    let sale = app
        .cache
        .sale(id, load)
        .await
        .map_err(|e| ApiError::clone(&e))?;
    sale.ok_or_else(|| ApiError::not_found(format!("sale {id}: no such sale")))
}

/// The storefront: published sales that have not ended, soonest first, a page at a time
/// (`?after=` the page before's `next_after`; a second old at most; the same for everyone,
/// so caches may keep it a second).
pub async fn storefront(app: &App, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    use crate::buy::storefront::After;
    let q = super::query::Query::parse(req.uri().query(), &["after"])?;
    let after = q.get("after").map(After::parse).transpose()?;
    let list = app
        .db_call("listing the published sales", async {
            app.storefront
                .page(&app.db, after, now_ms())
                .await
                .map_err(ApiError::mysql)
        })
        .await?;
    Ok(reply::shared_json(&list, 1))
}

/// The sale's window and status, with the units left (from Redis).
pub async fn sale_state(app: &App, sale_id: u64) -> Result<Resp, ApiError> {
    let sale = sale_or_404(app, sale_id).await?;
    let left = stock::stock_left(&app.redis, sale.id).await.map_err(|e| {
        app.metrics
            .redis_errors
            .with_label_values(&["stock_left"])
            .inc();
        ApiError::redis(e)
    })?;
    let now = now_ms();
    let mut body = sale.to_json(left, now);
    // A random draw anyone can audit: its seed's SHA-256 before the draw, the seed after.
    if let Some(draw_at) = crate::buy::queue::draw_at(&sale) {
        let seed = crate::buy::queue::draw_seed(&app.cfg.secrets.link_key, sale.id);
        body["draw_at_ms"] = json!(draw_at);
        body["draw_commitment"] = json!(crate::buy::queue::draw_commitment(&seed));
        body["draw_seed"] = if now >= draw_at {
            json!(seed)
        } else {
            json!(null)
        };
    }
    Ok(reply::json(StatusCode::OK, &body))
}

/// A captcha for this shopper and sale: a PNG (as a `data:` URL) and the token the edge
/// checks the answer against. Available from a minute before the start, so shoppers can
/// solve it at zero. Taken from the pool drawn ahead (else drawn now, off the request threads).
pub async fn captcha(app: &App, req: &Request<Incoming>, sale_id: u64) -> Result<Resp, ApiError> {
    let user_id = user_of(app, req)?;
    let sale = sale_or_404(app, sale_id).await?;
    let now = now_ms();
    if sale.phase(now + crate::tokens::captcha::EARLY_MS) == Phase::Upcoming {
        return Err(ApiError::NotStarted);
    }
    if sale.phase(now) == Phase::Ended {
        return Err(ApiError::Ended);
    }
    let (answer, image) = app
        .captchas
        .take()
        .await
        .map_err(|e| ApiError::Unavailable("captcha_unavailable", format!("drawing: {e}")))?;
    let expires_s = now / 1000 + app.cfg.captcha_ttl.as_secs() as i64;
    let token = crate::tokens::captcha::token(
        &app.cfg.secrets.captcha_key,
        user_id,
        sale_id,
        expires_s,
        &crate::tokens::captcha::nonce(),
        &answer,
    );
    let mut body = json!({"image": image, "token": token, "expires_s": expires_s,
                          "width": crate::tokens::captcha::raster::WIDTH,
                          "height": crate::tokens::captcha::raster::HEIGHT});
    let oracle = req
        .headers()
        .get("x-captcha-oracle")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|o| {
            crate::tokens::captcha::oracle_ok(&app.cfg.secrets.captcha_key, user_id, sale_id, o)
        });
    if app.cfg.captcha_test_hook || oracle {
        body["answer"] = json!(answer);
    }
    Ok(reply::json(StatusCode::OK, &body))
}

/// Joins the sale's waiting room: the shopper's signed ticket, the same on every call (a
/// second join keeps the place). Positions, the ETA and admission are the edge's to answer
/// (`GET /api/sales/{id}/queue?ticket=`), from the state it pulls.
pub async fn join_queue(
    app: &App,
    req: &Request<Incoming>,
    sale_id: u64,
) -> Result<Resp, ApiError> {
    let user_id = user_of(app, req)?;
    let sale = sale_or_404(app, sale_id).await?;
    if sale.queue.mode == QueueMode::None {
        return Err(ApiError::BadRequest(
            StatusCode::CONFLICT,
            "no_queue",
            format!("sale {sale_id}: has no waiting room (queue \"none\"): buy at the start"),
        ));
    }
    let now = now_ms();
    if sale.phase(now) == Phase::Ended {
        return Err(ApiError::Ended);
    }
    if now < sale.starts_ms - crate::buy::queue::OPENS_BEFORE_MS {
        return Err(ApiError::BadRequest(
            StatusCode::TOO_EARLY,
            "not_started",
            format!(
                "queue: the line opens {} minutes before the start",
                crate::buy::queue::OPENS_BEFORE_MS / 60_000
            ),
        ));
    }
    let joined = async {
        app.activity.line(&app.redis, sale.id, sale.ends_ms).await?;
        // Set by the edge only (a client's own header is removed there), after it checked
        // that this shopper's ticket was admitted and lapsed.
        let again = req
            .headers()
            .get("x-queue-rejoin")
            .is_some_and(|v| v == "1");
        crate::buy::queue::join(&app.redis, &sale, user_id, now, again).await
    };
    let (number, new) = match joined.await {
        Ok(joined) => joined,
        Err(e) => {
            let recover = || app.recovery.trigger(&app.bg_redis, &app.db, &app.metrics);
            let (label, err) = redis_failure(&e, &recover);
            if label == "error" {
                app.metrics
                    .redis_errors
                    .with_label_values(&["queue_join"])
                    .inc();
            }
            return Err(err);
        }
    };
    app.metrics
        .queue_joins
        .with_label_values(&[if new { "new" } else { "again" }])
        .inc();
    let ticket = crate::buy::queue::ticket(&app.queue_key, sale_id, user_id, number);
    Ok(reply::json(
        StatusCode::OK,
        &json!({"sale_id": sale_id, "queue": sale.queue.mode.as_str(), "number": number,
                "new": new, "ticket": ticket,
                "poll": format!("/api/sales/{sale_id}/queue?ticket={ticket}")}),
    ))
}

/// In a queued sale the edge names the buyer's place in line (`X-Queue-Position`, set from the
/// verified ticket; a client's own header is removed there): that admission is now used. A
/// failure here is counted and the order stands (the line then moves later, never sooner).
async fn note_position(app: &App, req: &Request<Incoming>, sale_id: u64) {
    let position = req
        .headers()
        .get("x-queue-position")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(p) = position {
        if crate::buy::queue::bought(&app.redis, sale_id, p)
            .await
            .is_err()
        {
            app.metrics
                .redis_errors
                .with_label_values(&["queue_bought"])
                .inc();
        }
    }
}

/// The buy: the signed link checked here, the sale loaded; the rest is the domain's
/// (`buy::purchase`), whose outcome becomes the reply.
pub async fn buy(
    app: &App,
    req: &Request<Incoming>,
    sale_id: u64,
    sig: &str,
) -> Result<Resp, ApiError> {
    let user_id = user_of(app, req)?;
    let now = now_ms();
    let window = app.cfg.link_window.as_secs();
    if !link::verify(
        &app.cfg.secrets.link_key,
        sig,
        user_id,
        sale_id,
        now / 1000,
        window,
    ) {
        app.metrics
            .reservations
            .with_label_values(&["bad_link"])
            .inc();
        return Err(ApiError::forbidden(
            "bad_link",
            "purchase link: invalid, expired, or issued to someone else",
        ));
    }
    let sale = sale_or_404(app, sale_id).await?;
    let recover = || app.recovery.trigger(&app.bg_redis, &app.db, &app.metrics);
    let checkout = Checkout {
        reserver: &app.reserver,
        cache: &app.cache,
        metrics: &app.metrics,
        recover: &recover,
    };
    let bought = checkout.buy(&sale, user_id, now).await?;
    if sale.queue.mode != QueueMode::None {
        note_position(app, req, sale_id).await;
    }
    Ok(reply::json(
        StatusCode::OK,
        &json!({"status": "queued", "order_id": bought.order_id.to_string(),
                "sale_id": sale_id, "slot": bought.slot}),
    ))
}
