//! The sweeper: closes created orders left unpaid past their deadline and gives their units
//! back to Redis stock, exactly once.
//!
//! Two steps, each safe to repeat and to run in several backends at once:
//! 1. [`close_expired`]: `UPDATE ... SET status = 'cancelled' WHERE status = 'created' AND
//!    pay_by_ms < now`, a batch at a time. The guard makes each transition happen once; a
//!    payment racing it (`... WHERE status = 'created' AND pay_by_ms >= now`) is decided by the
//!    same row lock, so exactly one of the two wins.
//! 2. [`release_pending`]: for every cancelled order whose `released_ms` is NULL, the
//!    `RELEASE` script gives the unit back (idempotent per order through `{sale}:returned`),
//!    then `released_ms` is set. A sweeper that dies between the steps leaves the order
//!    cancelled and unreleased, and the next pass (of any backend) finishes it.

use mysql_async::prelude::Queryable;
use mysql_async::Pool;

use crate::buy::orders::order_id;
use crate::buy::stock::{self, Released};
use crate::error::TaskError;
use crate::metrics::Metrics;
use crate::store::db::retry_conflicts;
use crate::store::redis_conn::Redis;

/// Orders handled per query; a pass repeats until none are left.
const BATCH: usize = 500;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub closed: u64,
    pub released: u64,
}

/// Both steps, as one pass.
pub async fn sweep(
    redis: &Redis,
    db: &Pool,
    metrics: &Metrics,
    now: i64,
) -> Result<Swept, TaskError> {
    let closed = close_expired(db, metrics, now).await?;
    let released = release_pending(redis, db, metrics).await?;
    Ok(Swept { closed, released })
}

/// Step 1: cancels unpaid orders past their deadline. Returns how many this call cancelled.
/// One guarded `UPDATE` per batch: each row changes only if it is still `created` and past its
/// deadline, so a payment committed first keeps its order, and two sweepers never both count
/// a row.
pub async fn close_expired(
    db: &Pool,
    metrics: &Metrics,
    now: i64,
) -> Result<u64, mysql_async::Error> {
    let mut closed = 0;
    loop {
        // Its index range and a payment's row lock can meet in the opposite order: a
        // deadlock there is retried (the payment, retried too, then sees the close or wins).
        let n = retry_conflicts(|| async {
            let mut conn = db.get_conn().await?;
            conn.exec_drop(
                "UPDATE orders SET status = 'cancelled', live_slot = NULL, closed_ms = ?
                   WHERE status = 'created' AND pay_by_ms < ? ORDER BY pay_by_ms LIMIT ?",
                (now, now, BATCH),
            )
            .await?;
            Ok(conn.affected_rows())
        })
        .await?;
        closed += n;
        metrics.orders_expired.inc_by(n);
        if n < BATCH as u64 {
            return Ok(closed);
        }
    }
}

/// Step 2: gives back the units of cancelled orders not yet released. Returns how many
/// units this call gave back (units another sweeper returned first are not counted).
pub async fn release_pending(
    redis: &Redis,
    db: &Pool,
    metrics: &Metrics,
) -> Result<u64, TaskError> {
    let rows: Vec<(u64, u64, u64, u8)> = {
        let mut conn = db.get_conn().await?;
        conn.exec(
            "SELECT sale_id, seq, user_id, slot FROM orders
               WHERE status = 'cancelled' AND released_ms IS NULL LIMIT ?",
            (BATCH * 4,),
        )
        .await?
    };
    let mut released = 0;
    let mut done = Vec::with_capacity(rows.len());
    let mut outcome = Ok(());
    for (sale_id, seq, user_id, slot) in rows {
        match stock::release(redis, sale_id, seq, user_id, slot).await {
            Ok(Released::Now) => {
                released += 1;
                metrics.units_returned.inc();
            }
            Ok(Released::Before) => {}
            // Redis lost the sale: the rebuild from MariaDB counts this unit as returned
            // and marks the order released. Leave it until then.
            Ok(Released::NotLoaded) => continue,
            // A Redis that forgot its scripts is recovered first (see `recovery`).
            Err(e) => {
                outcome = Err(TaskError::from(e));
                break;
            }
        }
        done.push(order_id(sale_id, seq));
    }
    // Whatever was given back is recorded, also when a later release failed.
    crate::buy::orders::mark_released(db, &done).await?;
    outcome.map(|()| released)
}
