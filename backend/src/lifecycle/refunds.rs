//! Money going back: claiming the refunds owed (each exactly once among all backends, asked
//! again if unconfirmed), and the money check of some sales' orders (taken minus returned is
//! the price of a paid order, zero otherwise). The payments themselves are
//! [`crate::lifecycle::payment`]'s.

use mysql_async::prelude::Queryable;
use mysql_async::Pool;

use crate::lifecycle::payment::Payment;
use crate::store::db::retry_conflicts;

/// A refund is asked for again if its confirmation has not come within this time (the
/// provider refunds a payment once however often it is asked).
pub const REFUND_RETRY_MS: i64 = 60_000;

/// Claims every `refund_due` payment (of one sale, or of all) not asked for yet, or asked for
/// more than [`REFUND_RETRY_MS`] ago, for the caller to ask the provider to refund. Each is
/// claimed with a guarded `UPDATE`, so of several backends exactly one claims it.
pub async fn claim_refunds(
    db: &Pool,
    now: i64,
    sale: Option<u64>,
) -> Result<Vec<Payment>, mysql_async::Error> {
    let stale = now - REFUND_RETRY_MS;
    let due: Vec<(String, u64, u64)> = {
        let mut conn = db.get_conn().await?;
        // An order id is sale << 32 | seq.
        conn.exec(
            "SELECT id, order_id, amount_cents FROM payments
               WHERE status = 'refund_due'
                 AND (refund_requested_ms IS NULL OR refund_requested_ms < ?)
                 AND (? IS NULL OR order_id >> 32 = ?)
               LIMIT 500",
            (stale, sale, sale),
        )
        .await?
    };
    let mut claimed = Vec::new();
    for (payment_id, order_id, amount_cents) in due {
        let mine = retry_conflicts(|| async {
            let mut conn = db.get_conn().await?;
            conn.exec_drop(
                "UPDATE payments SET refund_requested_ms = ?
                   WHERE id = ? AND status = 'refund_due'
                     AND (refund_requested_ms IS NULL OR refund_requested_ms < ?)",
                (now, &payment_id, stale),
            )
            .await?;
            Ok(conn.affected_rows() == 1)
        })
        .await?;
        if mine {
            claimed.push(Payment {
                payment_id,
                order_id,
                amount_cents,
                status: "refund_due".into(),
            });
        }
    }
    Ok(claimed)
}

/// How many payments' money is owed back and not yet confirmed refunded (an index range of
/// exactly those rows).
pub async fn due(db: &Pool) -> Result<u64, mysql_async::Error> {
    let mut conn = db.get_conn().await?;
    let n: Option<u64> = conn
        .query_first("SELECT COUNT(*) FROM payments WHERE status = 'refund_due'")
        .await?;
    Ok(n.unwrap_or(0))
}

/// The money of the orders of some sales, as the payments table records it.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MoneyCheck {
    /// Orders with at least one payment.
    pub orders_with_payments: u64,
    /// Payments whose money is owed back and not yet confirmed refunded.
    pub refunds_pending: u64,
    /// Orders (ids as strings) where money taken minus money returned is not their price if
    /// paid, or zero if not (once no refund is pending on them).
    pub mismatched: Vec<String>,
}

/// Checks, for every order of these sales: money taken (payments that succeeded, are owed
/// back, or were refunded) minus money returned (refunded) equals the price for a paid order
/// and zero for any other.
pub async fn money_check(db: &Pool, sales: &[u64]) -> Result<MoneyCheck, mysql_async::Error> {
    let mut check = MoneyCheck::default();
    if sales.is_empty() {
        return Ok(check);
    }
    let list: Vec<String> = sales.iter().map(u64::to_string).collect();
    let mut conn = db.get_conn().await?;
    // Every value is an integer: nothing here can inject SQL.
    let rows: Vec<(u64, String, u64, u64, u64, u64)> = conn
        .query(format!(
            "SELECT o.id, CAST(o.status AS CHAR), o.price_cents,
                    COALESCE(SUM(IF(p.status IN ('succeeded', 'refund_due', 'refunded'),
                                    p.amount_cents, 0)), 0),
                    COALESCE(SUM(IF(p.status = 'refunded', p.amount_cents, 0)), 0),
                    COALESCE(SUM(p.status = 'refund_due'), 0)
               FROM orders o JOIN payments p ON p.order_id = o.id
              WHERE o.sale_id IN ({})
              GROUP BY o.id",
            list.join(",")
        ))
        .await?;
    for (id, status, price, taken, returned, owed) in rows {
        check.orders_with_payments += 1;
        check.refunds_pending += owed;
        let kept = i128::from(taken) - i128::from(returned);
        let due = if status == "paid" {
            i128::from(price)
        } else {
            0
        };
        if owed == 0 && kept != due {
            check.mismatched.push(id.to_string());
        }
    }
    Ok(check)
}
