//! Routing and handlers. One `match` maps (method, path) to a handler; handlers parse and
//! check the request, then call the domain modules. Every failure is an [`ApiError`], turned
//! into a response in one place ([`reply::error`]).
//!
//! Shopper API (behind the edge): `POST /api/login`, `GET /api/time`, `GET /api/sales/{id}`,
//! `POST /api/sales/{id}/path`, `POST /api/sales/{id}/buy/{sig}`, `GET /api/orders/{id}`,
//! `POST /api/orders/{id}/pay`, `GET /api/sales/{id}/orders` (the shopper's own).
//! Payment provider: `POST /api/payments/notify` (signed).
//! Operator API: `POST /admin/sales`, `POST /admin/reconcile` (bearer admin token).
//! Loopback: `GET /metrics`, `/healthz`, `/internal/sales`.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, COOKIE, SET_COOKIE};
use hyper::{Method, Request, StatusCode};
use serde_json::json;

use super::reply::{self, Resp};
use crate::app::App;
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::input::Fields;
use crate::sales::{NewSale, Phase, Sale};
use crate::stock::Reservation;
use crate::{link, orders, sales, session, stock};

/// The cookie the pages use; tools send `Authorization: Bearer <token>` instead.
pub const SESSION_COOKIE: &str = "sk_session";

/// Counts a request in flight for as long as it lives (also when the client goes away).
struct Inflight<'a>(&'a App);

impl Drop for Inflight<'_> {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
        self.0.metrics.inflight.dec();
    }
}

pub async fn handle(app: Arc<App>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let started = Instant::now();
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let route = route_name(&segments);
    let before = app.inflight.fetch_add(1, Ordering::Relaxed);
    app.metrics.inflight.inc();
    let _guard = Inflight(&app);
    let result = if before >= app.cfg.max_inflight && route != "metrics" {
        Err(ApiError::Overloaded)
    } else {
        dispatch(&app, req, &segments).await
    };
    let resp = result.unwrap_or_else(|e| reply::error(&e));
    let m = &app.metrics;
    m.http_requests
        .with_label_values(&[route, resp.status().as_str()])
        .inc();
    m.http_duration
        .with_label_values(&[route])
        .observe(started.elapsed().as_secs_f64());
    Ok(resp)
}

/// A bounded label set for metrics: the route, never the raw path.
fn route_name(seg: &[&str]) -> &'static str {
    match seg {
        ["api", "time"] => "time",
        ["api", "login"] => "login",
        ["api", "sales", _] => "sale",
        ["api", "sales", _, "path"] => "path",
        ["api", "sales", _, "captcha"] => "captcha",
        ["api", "sales", _, "orders"] => "my_orders",
        ["api", "sales", _, "buy", _] => "buy",
        ["api", "orders", _] => "order",
        ["api", "orders", _, "pay"] => "pay",
        ["api", "payments", "notify"] => "pay_notify",
        ["admin", "reconcile"] => "admin_reconcile",
        ["admin", "sales"] => "admin_sales",
        ["metrics"] => "metrics",
        ["healthz"] => "healthz",
        ["internal", "sales"] => "internal_sales",
        _ => "other",
    }
}

async fn dispatch(app: &App, req: Request<Incoming>, seg: &[&str]) -> Result<Resp, ApiError> {
    let method = req.method().clone();
    match (&method, seg) {
        (&Method::POST, ["api", "sales", sale, "buy", sig]) => buy(app, &req, sale, sig).await,
        (&Method::GET, ["api", "sales", sale]) => sale_state(app, sale).await,
        (&Method::POST, ["api", "sales", sale, "path"]) => purchase_path(app, &req, sale).await,
        (&Method::POST, ["api", "sales", sale, "captcha"]) => new_captcha(app, &req, sale).await,
        (&Method::GET, ["api", "orders", id]) => order_status(app, &req, id).await,
        (&Method::GET, ["api", "sales", sale, "orders"]) => my_orders(app, &req, sale).await,
        (&Method::POST, ["api", "orders", id, "pay"]) => pay(app, &req, id).await,
        (&Method::POST, ["api", "payments", "notify"]) => payment_notify(app, req).await,
        (&Method::POST, ["admin", "reconcile"]) => reconcile(app, &req).await,
        (&Method::GET, ["api", "time"]) => {
            Ok(reply::json(StatusCode::OK, &json!({"now_ms": now_ms()})))
        }
        (&Method::POST, ["api", "login"]) => login(app, req).await,
        (&Method::POST, ["admin", "sales"]) => create_sale(app, req).await,
        (&Method::GET, ["metrics"]) => Ok(reply::text(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            app.metrics.render(),
        )),
        (&Method::GET, ["internal", "sales"]) => edge_sale_states(app).await,
        (&Method::GET, ["healthz"]) => Ok(reply::json(StatusCode::OK, &json!({"ok": true}))),
        _ if route_name(seg) != "other" => Err(ApiError::BadRequest(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not allowed on this path"),
        )),
        _ => Err(ApiError::not_found("no such endpoint")),
    }
}

fn parse_sale_id(text: &str) -> Result<u64, ApiError> {
    text.parse::<u64>()
        .ok()
        .filter(|id| *id > 0 && *id < (1 << 31))
        .ok_or_else(|| ApiError::bad("bad_sale_id", format!("sale id: not a sale id: {text:?}")))
}

/// The shopper's user id from `Authorization: Bearer` or the session cookie.
fn user_of(app: &App, req: &Request<Incoming>) -> Result<u64, ApiError> {
    let token = bearer(req).or_else(|| cookie(req, SESSION_COOKIE));
    let token = token.ok_or_else(|| ApiError::unauthorized("session: missing (log in first)"))?;
    session::verify(&app.cfg.secrets.session_key, token, now_ms() / 1000)
        .map_err(|e| ApiError::forbidden("bad_session", format!("session: {}", e.as_str())))
}

fn bearer(req: &Request<Incoming>) -> Option<&str> {
    req.headers()
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn cookie<'r>(req: &'r Request<Incoming>, name: &str) -> Option<&'r str> {
    req.headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

async fn sale_or_404(app: &App, id: u64) -> Result<Arc<Sale>, ApiError> {
    let db = app.db.clone();
    let timeout = app.cfg.mysql_timeout;
    let breaker = app.db_breaker.clone();
    let hit = app.cache.is_cached(id);
    app.metrics
        .cache
        .with_label_values(&["sale", if hit { "hit" } else { "miss" }])
        .inc();
    let sale = app
        .cache
        .sale(id, async move {
            crate::db::guarded(&breaker, timeout, "loading the sale", async {
                sales::load(&db, id).await.map_err(ApiError::mysql)
            })
            .await
            .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| ApiError::mysql(e.as_str()))?;
    sale.ok_or_else(|| ApiError::not_found(format!("sale {id}: no such sale")))
}

/// The buy: every check that needs no Redis first, then one script call.
async fn buy(app: &App, req: &Request<Incoming>, sale: &str, sig: &str) -> Result<Resp, ApiError> {
    let outcome = |o: &str| app.metrics.reservations.with_label_values(&[o]).inc();
    let sale_id = parse_sale_id(sale)?;
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
        outcome("bad_link");
        return Err(ApiError::forbidden(
            "bad_link",
            "purchase link: invalid, expired, or issued to someone else",
        ));
    }
    let sale = sale_or_404(app, sale_id).await?;
    match sale.phase(now) {
        Phase::Upcoming => {
            outcome("not_started");
            return Err(ApiError::NotStarted);
        }
        Phase::Ended => {
            outcome("ended");
            return Err(ApiError::Ended);
        }
        Phase::Active => {}
    }
    if app.cache.is_sold_out(sale_id).await {
        outcome("sold_out_local");
        return Err(ApiError::SoldOut);
    }
    let started = Instant::now();
    let r = stock::reserve(&app.redis, sale_id, user_id, sale.per_user_limit, now).await;
    app.metrics
        .redis_duration
        .with_label_values(&["reserve"])
        .observe(started.elapsed().as_secs_f64());
    match r {
        Ok(Reservation::Queued { seq, slot }) => {
            outcome("queued");
            let id = orders::order_id(sale_id, seq);
            Ok(reply::json(
                StatusCode::OK,
                &json!({"status": "queued", "order_id": id.to_string(), "sale_id": sale_id, "slot": slot}),
            ))
        }
        Ok(Reservation::LimitReached) => {
            outcome("duplicate");
            Err(ApiError::AlreadyBought)
        }
        Ok(Reservation::SoldOut) => {
            outcome("sold_out");
            app.cache.mark_sold_out(sale_id).await;
            Err(ApiError::SoldOut)
        }
        Ok(Reservation::NotLoaded) => {
            outcome("not_loaded");
            app.recovery.trigger(&app.bg_redis, &app.db, &app.metrics);
            Err(ApiError::Unavailable(
                "stock_not_loaded",
                format!("sale {sale_id}: stock is not in Redis (being rebuilt from MariaDB)"),
            ))
        }
        Err(e) if e.is_noscript() => {
            // Redis restarted: nothing is reserved until it has been rebuilt.
            outcome("recovering");
            app.recovery.trigger(&app.bg_redis, &app.db, &app.metrics);
            Err(ApiError::Unavailable(
                "redis_recovering",
                "redis: restarted; its state is being rebuilt from MariaDB".to_string(),
            ))
        }
        Err(e) => {
            outcome("error");
            app.metrics
                .redis_errors
                .with_label_values(&["reserve"])
                .inc();
            Err(ApiError::redis(e))
        }
    }
}

async fn sale_state(app: &App, sale: &str) -> Result<Resp, ApiError> {
    let sale = sale_or_404(app, parse_sale_id(sale)?).await?;
    let left = stock::stock_left(&app.redis, sale.id).await.map_err(|e| {
        app.metrics
            .redis_errors
            .with_label_values(&["stock_left"])
            .inc();
        ApiError::redis(e)
    })?;
    if let Some(n) = left {
        app.metrics
            .stock_left
            .with_label_values(&[&sale.id.to_string()])
            .set(n);
    }
    Ok(reply::json(StatusCode::OK, &sale.to_json(left, now_ms())))
}

/// Issues the signed purchase path once the sale has started. The edge answers this route
/// itself after a correct captcha; the backend's version serves direct (test) use.
async fn purchase_path(app: &App, req: &Request<Incoming>, sale: &str) -> Result<Resp, ApiError> {
    let sale_id = parse_sale_id(sale)?;
    let user_id = user_of(app, req)?;
    let sale = sale_or_404(app, sale_id).await?;
    let now = now_ms();
    match sale.phase(now) {
        Phase::Upcoming => return Err(ApiError::NotStarted),
        Phase::Ended => return Err(ApiError::Ended),
        Phase::Active => {}
    }
    let window = app.cfg.link_window.as_secs();
    let sig = link::sign(
        &app.cfg.secrets.link_key,
        user_id,
        sale_id,
        now / 1000,
        window,
    );
    Ok(reply::json(
        StatusCode::OK,
        &json!({"path": format!("/api/sales/{sale_id}/buy/{sig}")}),
    ))
}

/// A captcha for this shopper and sale: an SVG and the token the edge checks the answer
/// against. Available from a minute before the start, so shoppers can solve it at zero.
async fn new_captcha(app: &App, req: &Request<Incoming>, sale: &str) -> Result<Resp, ApiError> {
    let sale_id = parse_sale_id(sale)?;
    let user_id = user_of(app, req)?;
    let sale = sale_or_404(app, sale_id).await?;
    let now = now_ms();
    if now < sale.starts_ms - 60_000 {
        return Err(ApiError::NotStarted);
    }
    if sale.phase(now) == Phase::Ended {
        return Err(ApiError::Ended);
    }
    let (answer, svg) = crate::captcha::challenge();
    let expires_s = now / 1000 + app.cfg.captcha_ttl.as_secs() as i64;
    let token = crate::captcha::token(
        &app.cfg.secrets.captcha_key,
        user_id,
        sale_id,
        expires_s,
        &crate::captcha::nonce(),
        &answer,
    );
    let mut body = json!({"svg": svg, "token": token, "expires_s": expires_s});
    if app.cfg.captcha_test_hook {
        body["answer"] = json!(answer);
    }
    Ok(reply::json(StatusCode::OK, &body))
}

async fn order_status(app: &App, req: &Request<Incoming>, id: &str) -> Result<Resp, ApiError> {
    let id = orders::parse_id(id)?;
    let user_id = user_of(app, req)?;
    let body = app
        .db_call(
            "order lookup",
            orders::status(&app.db, &app.redis, user_id, id),
        )
        .await?;
    Ok(reply::json(StatusCode::OK, &body))
}

/// The shopper's own orders in a sale.
async fn my_orders(app: &App, req: &Request<Incoming>, sale: &str) -> Result<Resp, ApiError> {
    let sale_id = parse_sale_id(sale)?;
    let user_id = user_of(app, req)?;
    let body = app
        .db_call("listing orders", orders::of_user(&app.db, user_id, sale_id))
        .await?;
    Ok(reply::json(StatusCode::OK, &body))
}

/// Starts paying the shopper's own order; the provider notifies `/api/payments/notify`.
async fn pay(app: &App, req: &Request<Incoming>, id: &str) -> Result<Resp, ApiError> {
    let id = orders::parse_id(id)?;
    let user_id = user_of(app, req)?;
    let started = app
        .db_call(
            "starting the payment",
            crate::payment::start(&app.db, user_id, id, now_ms()),
        )
        .await?;
    let url = app
        .cfg
        .pay_notify_url
        .clone()
        .or_else(|| {
            app.base_url
                .get()
                .map(|b| format!("{b}/api/payments/notify"))
        })
        .ok_or_else(|| ApiError::Unavailable("not_ready", "backend: not listening yet".into()))?;
    app.provider.pay(url, &started);
    Ok(reply::json(
        StatusCode::ACCEPTED,
        &json!({
            "payment_id": started.payment_id,
            "order_id": started.order_id.to_string(),
            "amount_cents": started.amount_cents,
            "status": "pending",
        }),
    ))
}

/// The payment provider's signed notification. Always answered 200 once verified and
/// recorded (the provider stops retrying), whatever the outcome for the order.
async fn payment_notify(app: &App, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let signature = req
        .headers()
        .get(crate::payment::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = reply::read_body(req, app.cfg.max_body).await?;
    let n =
        crate::payment::Notification::verify(&app.cfg.secrets.pay_key, &body, signature.as_deref())
            .inspect_err(|_| app.metrics.payments.with_label_values(&["forged"]).inc())?;
    let applied = app
        .db_call(
            "recording the payment",
            crate::payment::apply(&app.db, &n, now_ms()),
        )
        .await?;
    app.metrics
        .payments
        .with_label_values(&[applied.as_str()])
        .inc();
    let mut body = json!({"result": applied.as_str(), "order_id": n.order_id.to_string()});
    if let crate::payment::Applied::RefundDue(reason) = applied {
        body["reason"] = json!(reason);
    }
    Ok(reply::json(StatusCode::OK, &body))
}

/// Checks every sale of the last day (`?repair=1`: and repairs what drifted). `ok` is true
/// when every sale's drift is 0.
async fn reconcile(app: &App, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    require_admin(app, req)?;
    let repair = req.uri().query().is_some_and(|q| {
        q.split('&')
            .any(|kv| kv == "repair=1" || kv == "repair=true")
    });
    let since = now_ms() - crate::writer::RETENTION_MS;
    let list = sales::ending_after(&app.db, since)
        .await
        .map_err(ApiError::mysql)?;
    let mut checks = Vec::with_capacity(list.len());
    for sale in &list {
        let c =
            crate::reconcile::reconcile_sale(&app.bg_redis, &app.db, &app.metrics, sale, repair)
                .await
                .map_err(|e| {
                    ApiError::Unavailable("reconcile_failed", format!("sale {}: {e}", sale.id))
                })?;
        checks.push(c);
    }
    let ok = checks
        .iter()
        .all(|c| c.drift == 0 && c.stock_left.is_some());
    Ok(reply::json(
        StatusCode::OK,
        &json!({"ok": ok, "repaired": repair, "sales": checks}),
    ))
}

async fn login(app: &App, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let body = reply::read_json(req, app.cfg.max_body).await?;
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

/// The state the edge keeps in its shared dict, one line per live sale:
/// `<id> <starts_ms> <ends_ms> <sold_out 0|1> <stock_left>`. Plain text: the edge parses it without a JSON
/// library. Loopback only (the edge has no location for `/internal/`).
async fn edge_sale_states(app: &App) -> Result<Resp, ApiError> {
    use std::fmt::Write;
    let now = now_ms();
    let list = app
        .db_call("listing sales", async {
            sales::ending_after(&app.db, now - 60_000)
                .await
                .map_err(ApiError::mysql)
        })
        .await?;
    let mut out = String::with_capacity(list.len() * 48);
    for s in list {
        let left = stock::stock_left(&app.redis, s.id)
            .await
            .map_err(ApiError::redis)?;
        if let Some(n) = left {
            app.metrics
                .stock_left
                .with_label_values(&[&s.id.to_string()])
                .set(n);
        }
        let sold_out = matches!(left, Some(n) if n <= 0);
        let _ = writeln!(
            out,
            "{} {} {} {} {}",
            s.id,
            s.starts_ms,
            s.ends_ms,
            u8::from(sold_out),
            left.unwrap_or(0).max(0)
        );
    }
    Ok(reply::text(StatusCode::OK, "text/plain", out))
}

fn require_admin(app: &App, req: &Request<Incoming>) -> Result<(), ApiError> {
    let given = bearer(req).ok_or_else(|| ApiError::unauthorized("admin token: missing"))?;
    if !crate::crypto::constant_time_eq(given.as_bytes(), app.cfg.secrets.admin_token.as_bytes()) {
        return Err(ApiError::forbidden("bad_admin_token", "admin token: wrong"));
    }
    Ok(())
}

/// Creates a sale: MariaDB first (the system of record), then its stock into Redis.
async fn create_sale(app: &App, req: Request<Incoming>) -> Result<Resp, ApiError> {
    require_admin(app, &req)?;
    let body = reply::read_json(req, app.cfg.max_body).await?;
    let now = now_ms();
    let new = NewSale::from_json(&body, now)?;
    let sale = app
        .db_call("creating the sale", async {
            sales::insert(&app.db, &new, now)
                .await
                .map_err(ApiError::mysql)
        })
        .await?;
    stock::preheat(&app.redis, sale.id, sale.stock)
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
