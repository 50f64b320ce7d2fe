//! Payments: the shopper starts one, a (simulated) provider takes the money and notifies us
//! with a signed message, and the order becomes `paid` if, and only if, it is still unpaid
//! and inside its deadline. Money that must go back is refunded through the provider.
//!
//! Invariants kept here:
//! - **One charge per order.** [`start`] inserts the payment under the unique key
//!   `one_charge_per_order (started_for)`: a second call (a double click, a retry, another
//!   backend at the same moment) finds the first payment and answers it; only the call whose
//!   insert went in asks the provider to charge. A unique key, not a check-then-insert.
//! - **Every notification is idempotent.** `POST /api/payments/notify` carries
//!   `{"payment_id","order_id","amount_cents","status":"succeeded"|"refunded"}` and the header
//!   `X-Pay-Signature: hex(HMAC-SHA256(pay_key, body))`. The same notification twice changes
//!   nothing the second time. A payment that arrives after its order was closed (or for the
//!   wrong amount, or for an order another payment paid) is refused and kept as `refund_due`.
//! - **Refunded exactly once.** `refunds::claim_refunds` claims each `refund_due` payment with a
//!   guarded `UPDATE` (one backend wins); the claimer asks the provider (`crate::lifecycle::provider`) to
//!   refund it, keyed by the payment id (the provider refunds a payment once, however often it
//!   is asked); the provider's signed `refunded` notification makes it `refunded`.
//! - **Money adds up.** For every order: money taken minus money returned is its price if it
//!   is paid, else zero (`refunds::money_check`, reported by `scripts/reconcile`).
//!
//! Every write runs through [`crate::store::db::retry_conflicts`]: a payment racing the sweeper on
//! one order row is a textbook InnoDB deadlock.

use mysql_async::prelude::Queryable;
use mysql_async::{Pool, TxOpts};
use serde_json::{json, Value};

use crate::buy::orders;
use crate::error::ApiError;
use crate::input::Fields;
use crate::store::db::retry_conflicts;

/// A payment as the shopper sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Payment {
    pub payment_id: String,
    pub order_id: u64,
    pub amount_cents: u64,
    /// `pending` until the provider confirms, then `succeeded` (or `refund_due`, `refunded`).
    pub status: String,
}

impl Payment {
    pub fn to_json(&self) -> Value {
        json!({
            "payment_id": self.payment_id,
            "order_id": self.order_id.to_string(),
            "amount_cents": self.amount_cents,
            "status": self.status,
        })
    }
}

/// What a pay call came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// This call started the payment: the provider must now be asked to charge.
    New(Payment),
    /// The order already has its payment (pending or succeeded): no new charge.
    Existing(Payment),
    /// MariaDB does not hold the order (it may still be queued): the caller asks the ledger.
    NotRecorded,
}

/// Starts (or finds) the payment of the shopper's own order. Another user's order is a 404,
/// exactly as a missing one; a closed order or a passed deadline is a 410.
pub async fn start(db: &Pool, user_id: u64, order_id: u64, now: i64) -> Result<Start, ApiError> {
    let mut conn = db.get_conn().await.map_err(ApiError::mysql)?;
    let row: Option<(u64, String, u64, i64, Option<String>)> = conn
        .exec_first(
            "SELECT user_id, CAST(status AS CHAR), price_cents, pay_by_ms, payment_id
               FROM orders WHERE id = ?",
            (order_id,),
        )
        .await
        .map_err(ApiError::mysql)?;
    drop(conn);
    let Some((owner, status, price_cents, pay_by_ms, paid_by)) = row else {
        return Ok(Start::NotRecorded);
    };
    if owner != user_id {
        return Err(orders::no_such_order(order_id));
    }
    match status.as_str() {
        "paid" => {
            let paid_by = paid_by.unwrap_or_default();
            return find(db, "id = ?", paid_by.as_str())
                .await?
                .map(Start::Existing)
                .ok_or_else(|| {
                    ApiError::mysql(format!(
                        "order {order_id}: paid by a payment that is not recorded"
                    ))
                });
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
    let payment_id = crate::tokens::crypto::random_hex(16);
    let inserted = retry_conflicts(|| async {
        let mut conn = db.get_conn().await?;
        conn.exec_drop(
            "INSERT INTO payments (id, order_id, amount_cents, status, created_ms, started_for)
               VALUES (?, ?, ?, 'pending', ?, ?)
             ON DUPLICATE KEY UPDATE started_for = started_for",
            (&payment_id, order_id, price_cents, now, order_id),
        )
        .await?;
        Ok(conn.affected_rows() == 1)
    })
    .await
    .map_err(ApiError::mysql)?;
    if inserted {
        return Ok(Start::New(Payment {
            payment_id,
            order_id,
            amount_cents: price_cents,
            status: "pending".into(),
        }));
    }
    find(db, "started_for = ?", order_id)
        .await?
        .map(Start::Existing)
        .ok_or_else(|| ApiError::mysql(format!("order {order_id}: its payment vanished")))
}

/// The payment matching `condition` (one `?`, bound to `value`).
async fn find(
    db: &Pool,
    condition: &str,
    value: impl Into<mysql_async::Value>,
) -> Result<Option<Payment>, ApiError> {
    let mut conn = db.get_conn().await.map_err(ApiError::mysql)?;
    let row: Option<(String, u64, u64, String)> = conn
        .exec_first(
            format!(
                "SELECT id, order_id, amount_cents, CAST(status AS CHAR) FROM payments
                   WHERE {condition}"
            ),
            (value.into(),),
        )
        .await
        .map_err(ApiError::mysql)?;
    Ok(
        row.map(|(payment_id, order_id, amount_cents, status)| Payment {
            payment_id,
            order_id,
            amount_cents,
            status,
        }),
    )
}

/// What the provider reports about a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The money was taken.
    Succeeded,
    /// The money was given back.
    Refunded,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Succeeded => "succeeded",
            Event::Refunded => "refunded",
        }
    }
}

/// A provider's notification, after its signature was checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub payment_id: String,
    pub order_id: u64,
    pub amount_cents: u64,
    pub event: Event,
}

impl Notification {
    pub fn body(&self) -> String {
        json!({
            "payment_id": self.payment_id,
            "order_id": self.order_id.to_string(),
            "amount_cents": self.amount_cents,
            "status": self.event.as_str(),
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
        if !crate::tokens::crypto::verify_hex(key, body, signature) {
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
        let event = match f.string("status", 1, 16)?.as_str() {
            "succeeded" => Event::Succeeded,
            "refunded" => Event::Refunded,
            _ => {
                return Err(ApiError::unprocessable(
                    "bad_field",
                    "status: expected \"succeeded\" or \"refunded\"",
                ))
            }
        };
        Ok(Notification {
            payment_id,
            order_id,
            amount_cents,
            event,
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
    /// The provider gave the money of a refund-due payment back.
    Refunded,
    /// That refund was recorded before: nothing changed.
    AlreadyRefunded,
}

impl Applied {
    pub fn as_str(&self) -> &'static str {
        match self {
            Applied::Paid => "paid",
            Applied::AlreadyPaid => "already_paid",
            Applied::RefundDue(_) => "refund_due",
            Applied::Refunded => "refunded",
            Applied::AlreadyRefunded => "already_refunded",
        }
    }
}

/// Applies a notification in one transaction (run again on a deadlock).
pub async fn apply(db: &Pool, n: &Notification, now: i64) -> Result<Applied, ApiError> {
    let applied = match n.event {
        Event::Succeeded => retry_conflicts(|| apply_payment(db, n, now)).await,
        Event::Refunded => retry_conflicts(|| apply_refund(db, n, now)).await,
    }
    .map_err(ApiError::mysql)?;
    applied.ok_or_else(|| match n.event {
        Event::Succeeded => orders::no_such_order(n.order_id),
        Event::Refunded => ApiError::BadRequest(
            hyper::StatusCode::CONFLICT,
            "not_owed",
            format!("payment {}: no refund is owed on it", n.payment_id),
        ),
    })
}

/// The order changes only through the guarded `UPDATE`, which races the sweeper's guarded
/// close on the same row: one of them wins. `None`: no such order.
async fn apply_payment(
    db: &Pool,
    n: &Notification,
    now: i64,
) -> Result<Option<Applied>, mysql_async::Error> {
    let mut conn = db.get_conn().await?;
    let mut tx = conn.start_transaction(TxOpts::default()).await?;
    tx.exec_drop(
        "UPDATE orders SET status = 'paid', paid_ms = ?, payment_id = ?
           WHERE id = ? AND status = 'created' AND pay_by_ms >= ? AND price_cents = ?",
        (now, &n.payment_id, n.order_id, now, n.amount_cents),
    )
    .await?;
    let outcome = if tx.affected_rows() == 1 {
        Applied::Paid
    } else {
        let row: Option<(String, Option<String>, u64)> = tx
            .exec_first(
                "SELECT CAST(status AS CHAR), payment_id, price_cents
                   FROM orders WHERE id = ? FOR UPDATE",
                (n.order_id,),
            )
            .await?;
        match row {
            None => return Ok(None),
            Some((status, paid_by, _))
                if status == "paid" && paid_by.as_deref() == Some(n.payment_id.as_str()) =>
            {
                Applied::AlreadyPaid
            }
            Some((status, _, _)) if status == "paid" => {
                Applied::RefundDue("paid_by_another_payment")
            }
            Some((status, _, _)) if status == "cancelled" => Applied::RefundDue("order_closed"),
            Some((_, _, price)) if price != n.amount_cents => Applied::RefundDue("wrong_amount"),
            Some(_) => Applied::RefundDue("deadline_passed"),
        }
    };
    let (status, reason) = match &outcome {
        Applied::RefundDue(r) => ("refund_due", Some(*r)),
        _ => ("succeeded", None),
    };
    // A payment already refunded (or succeeded) keeps its status: a late replay of its
    // success notification must not make its money owed again.
    tx.exec_drop(
        "INSERT INTO payments (id, order_id, amount_cents, status, created_ms, notified_ms, reason)
           VALUES (?, ?, ?, ?, ?, ?, ?)
         ON DUPLICATE KEY UPDATE
           reason = IF(status IN ('succeeded', 'refunded'), reason, VALUES(reason)),
           status = IF(status IN ('succeeded', 'refunded'), status, VALUES(status)),
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
    .await?;
    tx.commit().await?;
    Ok(Some(outcome))
}

/// `None`: the payment is not one whose money is owed back.
async fn apply_refund(
    db: &Pool,
    n: &Notification,
    now: i64,
) -> Result<Option<Applied>, mysql_async::Error> {
    let mut conn = db.get_conn().await?;
    conn.exec_drop(
        "UPDATE payments SET status = 'refunded', refunded_ms = ?
           WHERE id = ? AND order_id = ? AND amount_cents = ? AND status = 'refund_due'",
        (now, &n.payment_id, n.order_id, n.amount_cents),
    )
    .await?;
    if conn.affected_rows() == 1 {
        return Ok(Some(Applied::Refunded));
    }
    let status: Option<String> = conn
        .exec_first(
            "SELECT CAST(status AS CHAR) FROM payments WHERE id = ? AND order_id = ?",
            (&n.payment_id, n.order_id),
        )
        .await?;
    Ok((status.as_deref() == Some("refunded")).then_some(Applied::AlreadyRefunded))
}
