//! Payments: the shopper starts one, a (simulated) provider takes the money and notifies us
//! with a signed message, and the order becomes `paid` if, and only if, it is still unpaid
//! and inside its deadline.
//!
//! The notification is `POST /api/payments/notify` with the JSON body
//! `{"payment_id","order_id","amount_cents","status":"succeeded"}` and the header
//! `X-Pay-Signature: hex(HMAC-SHA256(pay_key, body))`, as real gateways do. Handling it is
//! idempotent: the same notification twice changes nothing the second time. A payment that
//! arrives after the order was closed (or for the wrong amount, or for an order already paid
//! by another payment) is refused and recorded as `refund_due`: the money must go back.
//!
//! The provider is simulated in-process ([`Provider`]): it waits `pay_delay`, then delivers
//! the notification over HTTP to `pay_notify_url`, retrying until it is acknowledged.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use mysql_async::prelude::Queryable;
use mysql_async::{Pool, TxOpts};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::input::Fields;
use crate::orders;

pub const SIGNATURE_HEADER: &str = "x-pay-signature";

/// A started payment, as returned to the shopper.
#[derive(Debug, Clone)]
pub struct Started {
    pub payment_id: String,
    pub order_id: u64,
    pub amount_cents: u64,
}

/// Starts a payment for the shopper's own created, unpaid order inside its deadline.
pub async fn start(db: &Pool, user_id: u64, order_id: u64, now: i64) -> Result<Started, ApiError> {
    let mut conn = db.get_conn().await.map_err(ApiError::mysql)?;
    let row: Option<(u64, String, u64, i64)> = conn
        .exec_first(
            "SELECT user_id, CAST(status AS CHAR), price_cents, pay_by_ms FROM orders WHERE id = ?",
            (order_id,),
        )
        .await
        .map_err(ApiError::mysql)?;
    let Some((owner, status, price_cents, pay_by_ms)) = row else {
        return Err(ApiError::BadRequest(
            hyper::StatusCode::CONFLICT,
            "order_not_ready",
            format!(
                "order {order_id}: not recorded yet (still queued) or not yours; retry in a moment"
            ),
        ));
    };
    if owner != user_id {
        return Err(ApiError::not_found(format!(
            "order {order_id}: no such order"
        )));
    }
    match status.as_str() {
        "paid" => {
            return Err(ApiError::BadRequest(
                hyper::StatusCode::CONFLICT,
                "already_paid",
                format!("order {order_id}: already paid"),
            ))
        }
        "cancelled" => {
            return Err(ApiError::BadRequest(
                hyper::StatusCode::GONE,
                "order_closed",
                format!("order {order_id}: closed (unpaid past its deadline)"),
            ))
        }
        _ => {}
    }
    if now > pay_by_ms {
        return Err(ApiError::BadRequest(
            hyper::StatusCode::GONE,
            "deadline_passed",
            format!("order {order_id}: the payment deadline has passed"),
        ));
    }
    let payment_id = crate::crypto::random_hex(16);
    conn.exec_drop(
        "INSERT INTO payments (id, order_id, amount_cents, status, created_ms)
           VALUES (?, ?, ?, 'pending', ?)",
        (&payment_id, order_id, price_cents, now),
    )
    .await
    .map_err(ApiError::mysql)?;
    Ok(Started {
        payment_id,
        order_id,
        amount_cents: price_cents,
    })
}

/// A provider's notification, after its signature was checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub payment_id: String,
    pub order_id: u64,
    pub amount_cents: u64,
}

impl Notification {
    pub fn body(&self) -> String {
        json!({
            "payment_id": self.payment_id,
            "order_id": self.order_id.to_string(),
            "amount_cents": self.amount_cents,
            "status": "succeeded",
        })
        .to_string()
    }

    /// Checks the signature over the raw body, then parses it.
    pub fn verify(
        key: &[u8],
        body: &[u8],
        signature: Option<&str>,
    ) -> Result<Notification, ApiError> {
        let signature = signature.ok_or_else(|| {
            ApiError::unauthorized("payment notification: X-Pay-Signature header missing")
        })?;
        if !crate::crypto::verify_hex(key, body, signature) {
            return Err(ApiError::forbidden(
                "bad_signature",
                "payment notification: signature does not match",
            ));
        }
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad("bad_json", format!("body: invalid JSON: {e}")))?;
        let f = Fields::new(&v, &["payment_id", "order_id", "amount_cents", "status"])?;
        let payment_id = f.string("payment_id", 32, 32)?;
        if !payment_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::unprocessable(
                "bad_field",
                "payment_id: expected 32 hex digits",
            ));
        }
        let order_id = orders::parse_id(&f.string("order_id", 1, 20)?)?;
        let amount_cents = f.int("amount_cents", 0, i64::MAX, None)? as u64;
        if f.string("status", 1, 16)? != "succeeded" {
            return Err(ApiError::unprocessable(
                "bad_field",
                "status: only \"succeeded\" notifications are sent",
            ));
        }
        Ok(Notification {
            payment_id,
            order_id,
            amount_cents,
        })
    }
}

/// What a notification came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Paid,
    /// This very payment was applied before: nothing changed.
    AlreadyPaid,
    /// Refused; recorded as refund due, with the reason.
    RefundDue(&'static str),
}

impl Applied {
    pub fn as_str(&self) -> &'static str {
        match self {
            Applied::Paid => "paid",
            Applied::AlreadyPaid => "already_paid",
            Applied::RefundDue(_) => "refund_due",
        }
    }
}

/// Applies a notification in one transaction. The order changes only through the guarded
/// `UPDATE`, which races the sweeper's guarded close on the same row: one of them wins.
pub async fn apply(db: &Pool, n: &Notification, now: i64) -> Result<Applied, ApiError> {
    let mut conn = db.get_conn().await.map_err(ApiError::mysql)?;
    let mut tx = conn
        .start_transaction(TxOpts::default())
        .await
        .map_err(ApiError::mysql)?;
    tx.exec_drop(
        "UPDATE orders SET status = 'paid', paid_ms = ?, payment_id = ?
           WHERE id = ? AND status = 'created' AND pay_by_ms >= ? AND price_cents = ?",
        (now, &n.payment_id, n.order_id, now, n.amount_cents),
    )
    .await
    .map_err(ApiError::mysql)?;
    let outcome = if tx.affected_rows() == 1 {
        Applied::Paid
    } else {
        let row: Option<(String, Option<String>, u64, i64)> = tx
            .exec_first(
                "SELECT CAST(status AS CHAR), payment_id, price_cents, pay_by_ms
                   FROM orders WHERE id = ? FOR UPDATE",
                (n.order_id,),
            )
            .await
            .map_err(ApiError::mysql)?;
        match row {
            None => {
                return Err(ApiError::not_found(format!(
                    "order {}: no such order",
                    n.order_id
                )))
            }
            Some((status, paid_by, _, _))
                if status == "paid" && paid_by.as_deref() == Some(n.payment_id.as_str()) =>
            {
                Applied::AlreadyPaid
            }
            Some((status, _, _, _)) if status == "paid" => {
                Applied::RefundDue("paid_by_another_payment")
            }
            Some((status, _, _, _)) if status == "cancelled" => Applied::RefundDue("order_closed"),
            Some((_, _, price, _)) if price != n.amount_cents => Applied::RefundDue("wrong_amount"),
            Some(_) => Applied::RefundDue("deadline_passed"),
        }
    };
    let (status, reason) = match &outcome {
        Applied::RefundDue(r) => ("refund_due", Some(*r)),
        _ => ("succeeded", None),
    };
    tx.exec_drop(
        "INSERT INTO payments (id, order_id, amount_cents, status, created_ms, notified_ms, reason)
           VALUES (?, ?, ?, ?, ?, ?, ?)
         ON DUPLICATE KEY UPDATE
           status = IF(status = 'succeeded', status, VALUES(status)),
           reason = IF(status = 'succeeded', reason, VALUES(reason)),
           notified_ms = COALESCE(notified_ms, VALUES(notified_ms))",
        (
            &n.payment_id,
            n.order_id,
            n.amount_cents,
            status,
            now,
            now,
            reason,
        ),
    )
    .await
    .map_err(ApiError::mysql)?;
    tx.commit().await.map_err(ApiError::mysql)?;
    Ok(outcome)
}

/// The simulated payment provider: takes the money, then notifies, like a gateway's webhook.
#[derive(Clone)]
pub struct Provider {
    key: Vec<u8>,
    delay: Duration,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Provider {
    pub fn new(key: Vec<u8>, delay: Duration) -> Provider {
        Provider {
            key,
            delay,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Notifies `url` of a successful payment after the delay, in the background; retries
    /// with backoff until acknowledged (2xx), for at most ten attempts.
    pub fn pay(&self, url: String, payment: &Started) {
        let n = Notification {
            payment_id: payment.payment_id.clone(),
            order_id: payment.order_id,
            amount_cents: payment.amount_cents,
        };
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(me.delay).await;
            let mut backoff = Duration::from_millis(100);
            for _ in 0..10 {
                if me.deliver(&url, &n).await {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            eprintln!(
                "payment provider: gave up notifying {url} of payment {}",
                n.payment_id
            );
        });
    }

    async fn deliver(&self, url: &str, n: &Notification) -> bool {
        let body = n.body();
        let sig = crate::crypto::sign_hex(&self.key, body.as_bytes());
        let Ok(req) = Request::builder()
            .method(Method::POST)
            .uri(url)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, sig)
            .body(Full::new(Bytes::from(body)))
        else {
            return false;
        };
        match tokio::time::timeout(Duration::from_secs(5), self.client.request(req)).await {
            Ok(Ok(resp)) => resp.status().is_success(),
            _ => false,
        }
    }
}
