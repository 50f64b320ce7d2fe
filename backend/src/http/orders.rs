//! Orders and payments: the shopper's order status and own orders, paying an order (one
//! charge per order, however often asked), and the payment provider's signed notifications.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::json;

use super::reply::{self, Resp};
use super::request::{read_body, user_of};
use crate::app::App;
use crate::buy::orders;
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::lifecycle::payment::{self, Applied, Notification, Start};

/// An order as its owner polls it (from the order cache: a second, ten once settled).
pub async fn status(app: &App, req: &Request<Incoming>, id: u64) -> Result<Resp, ApiError> {
    let user_id = user_of(app, req)?;
    let body = app
        .db_call(
            "order lookup",
            orders::status_cached(&app.orders, &app.db, &app.redis, user_id, id),
        )
        .await?;
    Ok(reply::json(StatusCode::OK, &body))
}

/// The shopper's own orders in a sale.
pub async fn of_user(app: &App, req: &Request<Incoming>, sale_id: u64) -> Result<Resp, ApiError> {
    let user_id = user_of(app, req)?;
    let body = app
        .db_call("listing orders", orders::of_user(&app.db, user_id, sale_id))
        .await?;
    Ok(reply::json(StatusCode::OK, &body))
}

/// What the shopper holds in a sale (`GET /api/sales/{id}/mine`): the sale page asks on
/// load and after every change, so a reload or a second tab never loses a win.
pub async fn mine(app: &App, req: &Request<Incoming>, sale_id: u64) -> Result<Resp, ApiError> {
    let user_id = user_of(app, req)?;
    let mut body = app
        .db_call(
            "listing orders",
            orders::mine(&app.db, &app.redis, user_id, sale_id),
        )
        .await?;
    body["ticket"] =
        json!(
            crate::buy::queue::ticket_of(&app.redis, &app.queue_key, sale_id, user_id)
                .await
                .map_err(ApiError::redis)?
        );
    Ok(reply::json(StatusCode::OK, &body))
}

/// The shopper's orders in every sale, newest first (`GET /api/orders?before=&limit=`).
pub async fn all(app: &App, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    let user_id = user_of(app, req)?;
    let q = super::query::Query::parse(req.uri().query(), &["before", "limit"])?;
    let limit = q.int("limit", 1, 100, 20)? as u64;
    let before = match q.get("before") {
        Some(b) => Some(orders::parse_id(b).map_err(|_| {
            ApiError::bad(
                "bad_parameter",
                format!("before: expected an order id, got {b:?}"),
            )
        })?),
        None => None,
    };
    let body = app
        .db_call(
            "listing orders",
            orders::all_of_user(&app.db, user_id, limit, before),
        )
        .await?;
    Ok(reply::json(StatusCode::OK, &body))
}

/// Pays the shopper's own order: the first call starts the one charge (`202`, pending); every
/// later call answers that same payment (`202` while pending, `200` once it succeeded).
/// Another user's order and a missing one are the same 404.
pub async fn pay(app: &App, req: &Request<Incoming>, id: u64) -> Result<Resp, ApiError> {
    let user_id = user_of(app, req)?;
    app.orders.forget(id).await;
    let started = app
        .db_call(
            "starting the payment",
            payment::start(&app.db, user_id, id, now_ms()),
        )
        .await?;
    let payment = match started {
        Start::New(p) => {
            app.provider.pay(app.notify_url()?, &p);
            p
        }
        Start::Existing(p) => p,
        Start::NotRecorded => {
            // Still in the stream, or not this shopper's: the ledger knows (404 if not theirs).
            app.db_call(
                "order lookup",
                orders::status(&app.db, &app.redis, user_id, id),
            )
            .await?;
            return Err(ApiError::BadRequest(
                StatusCode::CONFLICT,
                "order_not_ready",
                format!("order {id}: not recorded yet (still queued); retry in a moment"),
            ));
        }
    };
    let status = if payment.status == "pending" {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok(reply::json(status, &payment.to_json()))
}

/// The payment provider's signed notification (a payment taken, or refunded). Always
/// answered 200 once verified and recorded (the provider stops retrying), whatever the
/// outcome for the order.
pub async fn notify(app: &App, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let signature = req
        .headers()
        .get(crate::lifecycle::provider::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = read_body(req, app.cfg.max_body).await?;
    let n = Notification::verify(&app.cfg.secrets.pay_key, &body, signature.as_deref())
        .inspect_err(|_| app.metrics.payments.with_label_values(&["forged"]).inc())?;
    let applied = app
        .db_call(
            "recording the payment",
            payment::apply(&app.db, &n, now_ms()),
        )
        .await?;
    app.metrics
        .payments
        .with_label_values(&[applied.as_str()])
        .inc();
    let mut body = json!({"result": applied.as_str(), "order_id": n.order_id.to_string()});
    if let Applied::RefundDue(reason) = applied {
        body["reason"] = json!(reason);
    }
    Ok(reply::json(StatusCode::OK, &body))
}
