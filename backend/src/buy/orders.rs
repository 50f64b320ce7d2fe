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

/// What a shopper holds in one sale, for the sale page after a reload or in a second tab:
/// the orders MariaDB holds, and how many units Redis holds for the shopper that MariaDB does
/// not have yet (`being_recorded`: the writer commits them within moments).
pub async fn mine(db: &Pool, redis: &Redis, user_id: u64, sale_id: u64) -> Result<Value, ApiError> {
    let mut body = of_user(db, user_id, sale_id).await?;
    let k = crate::store::keys::SaleKeys::new(sale_id);
    let mask: Option<u64> = redis
        .cmd(redis::cmd("HGET").arg(&k.buyers).arg(user_id).clone())
        .await
        .map_err(ApiError::redis)?;
    let held = i64::from(mask.unwrap_or(0).count_ones());
    let live_in_db = body["orders"].as_array().map_or(0, |o| {
        o.iter().filter(|o| o["status"] != "cancelled").count()
    }) as i64;
    body["sale_id"] = json!(sale_id);
    body["being_recorded"] = json!((held - live_in_db).max(0));
    Ok(body)
}

/// An order of the "My orders" list: id, status, price, created, pay by, paid, sale title.
type MyOrderRow = (u64, String, u64, i64, i64, Option<i64>, String);

/// The shopper's orders in every sale, newest first, with each sale's title: the "My orders"
/// page. At most `limit`, below order id `before` (the next page).
pub async fn all_of_user(
    db: &Pool,
    user_id: u64,
    limit: u64,
    before: Option<u64>,
) -> Result<Value, ApiError> {
    let mut conn = db.get_conn().await.map_err(ApiError::mysql)?;
    let rows: Vec<MyOrderRow> = conn
        .exec(
            "SELECT o.id, CAST(o.status AS CHAR), o.price_cents, o.created_ms, o.pay_by_ms,
                    o.paid_ms, s.title
               FROM orders o JOIN sales s ON s.id = o.sale_id
              WHERE o.user_id = ? AND o.id < ? ORDER BY o.id DESC LIMIT ?",
            (user_id, before.unwrap_or(u64::MAX), limit),
        )
        .await
        .map_err(ApiError::mysql)?;
    let next = (rows.len() as u64 == limit).then(|| rows.last().map(|r| r.0.to_string()));
    let orders: Vec<Value> = rows
        .into_iter()
        .map(|(id, status, price, created, pay_by, paid, title)| {
            json!({"order_id": id.to_string(), "sale_id": split(id).0, "title": title,
                   "status": status, "price_cents": price, "created_ms": created,
                   "pay_by_ms": pay_by, "paid_ms": paid})
        })
        .collect();
    Ok(json!({"orders": orders, "next_before": next.flatten()}))
}

/// The order as its owner sees it; 404 when it is not this user's order. Served from
/// `cache` (a second, ten once settled), so polls do not each cost a MariaDB query.
pub async fn status_cached(
    cache: &crate::buy::cache::OrderCache,
    db: &Pool,
    redis: &Redis,
    user_id: u64,
    id: u64,
) -> Result<Value, ApiError> {
    let view = cache
        .get(id, async {
            view(db, redis, id)
                .await
                .map(|(owner, body)| crate::buy::cache::OrderView { owner, body })
        })
        .await
        .map_err(|e| ApiError::clone(&e))?;
    if view.owner != user_id {
        return Err(no_such_order(id));
    }
    Ok(view.body)
}

/// An order's owner and its view, whoever asks; 404 when nobody holds it.
async fn view(db: &Pool, redis: &Redis, id: u64) -> Result<(u64, Value), ApiError> {
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
        return Ok((row.1, row_json(row)));
    }
    let (owner, returned) = crate::buy::stock::ledger_entry(redis, sale_id, seq)
        .await
        .map_err(ApiError::redis)?;
    match owner {
        Some((owner, _)) => Ok((
            owner,
            json!({
                "order_id": id.to_string(),
                "sale_id": sale_id,
                "status": if returned { "cancelled" } else { "queued" },
            }),
        )),
        None => Err(no_such_order(id)),
    }
}

/// The order as its owner sees it, read now; 404 when it is not this user's order.
pub async fn status(db: &Pool, redis: &Redis, user_id: u64, id: u64) -> Result<Value, ApiError> {
    let (owner, body) = view(db, redis, id).await?;
    if owner != user_id {
        return Err(no_such_order(id));
    }
    Ok(body)
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
