//! Orders as a shopper sees them: their ids, and the status they poll.
//!
//! An order id is `sale_id << 32 | seq`, where `seq` is the order's number within its sale
//! (handed out by the reserve script). The sale is therefore known from the id alone, and
//! orders can be sharded by sale. Ids travel as decimal strings in JSON (they exceed 2^53).
//!
//! Status: the row's `created | paid | cancelled` once the writer has put it in MariaDB;
//! before that `queued` (Redis's ledger `{sale:ID}:reserved` knows the order), or `cancelled`
//! if the writer gave up on it and returned its unit.

use mysql_async::prelude::Queryable;
use mysql_async::Pool;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::store::redis_conn::Redis;

pub fn order_id(sale_id: u64, seq: u64) -> u64 {
    (sale_id << 32) | (seq & 0xffff_ffff)
}

/// (sale_id, seq) of an order id.
pub fn split(order_id: u64) -> (u64, u64) {
    (order_id >> 32, order_id & 0xffff_ffff)
}

pub fn parse_id(text: &str) -> Result<u64, ApiError> {
    text.parse::<u64>()
        .ok()
        .filter(|id| split(*id).0 > 0 && split(*id).1 > 0)
        .ok_or_else(|| {
            ApiError::bad(
                "bad_order_id",
                format!("order id: not an order id: {text:?}"),
            )
        })
}

/// The one answer for an order that does not exist and for another shopper's order, so the
/// answer does not tell which ids exist.
pub fn no_such_order(id: u64) -> ApiError {
    ApiError::not_found(format!("order {id}: no such order"))
}

/// The columns of an order a shopper may see, in one query shape for every lookup.
const ORDER_COLUMNS: &str =
    "id, user_id, CAST(status AS CHAR), price_cents, created_ms, pay_by_ms, paid_ms";

type OrderRow = (u64, u64, String, u64, i64, i64, Option<i64>);

/// An order row as the shopper sees it.
fn row_json((id, _, status, price_cents, created_ms, pay_by_ms, paid_ms): OrderRow) -> Value {
    json!({
        "order_id": id.to_string(),
        "sale_id": split(id).0,
        "status": status,
        "price_cents": price_cents,
        "created_ms": created_ms,
        "pay_by_ms": pay_by_ms,
        "paid_ms": paid_ms,
    })
}

/// The shopper's orders in one sale that MariaDB holds (a just-queued order joins within
/// moments, when the writer commits it). How a shopper whose answer was lost finds the order.
pub async fn of_user(db: &Pool, user_id: u64, sale_id: u64) -> Result<Value, ApiError> {
    let mut conn = db.get_conn().await.map_err(ApiError::mysql)?;
    let rows: Vec<OrderRow> = conn
        .exec(
            format!(
                "SELECT {ORDER_COLUMNS} FROM orders WHERE sale_id = ? AND user_id = ? ORDER BY id"
            ),
            (sale_id, user_id),
        )
        .await
        .map_err(ApiError::mysql)?;
    let orders: Vec<Value> = rows.into_iter().map(row_json).collect();
    Ok(json!({ "orders": orders }))
}

/// The order as its owner sees it; 404 when it is not this user's order.
pub async fn status(db: &Pool, redis: &Redis, user_id: u64, id: u64) -> Result<Value, ApiError> {
    let (sale_id, seq) = split(id);
    let row: Option<OrderRow> = {
        let mut conn = db.get_conn().await.map_err(ApiError::mysql)?;
        conn.exec_first(
            format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?"),
            (id,),
        )
        .await
        .map_err(ApiError::mysql)?
    };
    if let Some(row) = row {
        if row.1 != user_id {
            return Err(no_such_order(id));
        }
        return Ok(row_json(row));
    }
    let (owner, returned) = crate::buy::stock::ledger_entry(redis, sale_id, seq)
        .await
        .map_err(ApiError::redis)?;
    match owner {
        Some((owner, _)) if owner == user_id => Ok(json!({
            "order_id": id.to_string(),
            "sale_id": sale_id,
            "status": if returned { "cancelled" } else { "queued" },
        })),
        _ => Err(no_such_order(id)),
    }
}

/// Records that these cancelled orders' units are back in Redis stock (the last step of the
/// sweeper's and the reconciler's releases, and of a rebuild). Only cancelled, unreleased
/// rows change, so repeating it is harmless.
pub async fn mark_released(db: &Pool, ids: &[u64]) -> Result<(), mysql_async::Error> {
    for chunk in ids.chunks(1000) {
        let list: Vec<String> = chunk.iter().map(u64::to_string).collect();
        // Every value is an integer: nothing here can inject SQL.
        let sql = format!(
            "UPDATE orders SET released_ms = ? WHERE id IN ({}) AND status = 'cancelled'
               AND released_ms IS NULL",
            list.join(",")
        );
        crate::store::db::retry_conflicts(|| async {
            let mut conn = db.get_conn().await?;
            conn.exec_drop(sql.as_str(), (crate::clock::now_ms(),))
                .await
        })
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_sale() {
        let id = order_id(42, 7);
        assert_eq!(split(id), (42, 7));
        assert_eq!(parse_id(&id.to_string()).unwrap(), id);
        assert!(parse_id("7").is_err(), "sale 0 does not exist");
        assert!(parse_id("-1").is_err());
        assert!(parse_id("abc").is_err());
    }
}
