//! What an operator sees of a sale beside its definition: units left, orders, paid orders,
//! people in its waiting room, and whether it is busy. Read for a page of sales at once: one
//! MariaDB query for the counts, Redis commands sent together, never one round trip a sale.

use std::collections::{HashMap, HashSet};

use mysql_async::prelude::Queryable;
use mysql_async::Pool;
use redis::Value;
use serde_json::{json, Value as Json};

use crate::buy::sales::Sale;
use crate::store::keys::SaleKeys;
use crate::store::redis_conn::Redis;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Units left in Redis (None: not loaded).
    pub stock_left: Option<i64>,
    /// Orders in MariaDB (any state), and the paid ones.
    pub orders: u64,
    pub paid: u64,
    /// Tickets handed out and not yet admitted (0 without a waiting room).
    pub waiting: u64,
    /// In the active set: selling, units coming back, orders not yet written.
    pub busy: bool,
}

/// Stats for each sale, in order.
pub async fn of(
    redis: &Redis,
    db: &Pool,
    sales: &[Sale],
    busy: &HashSet<u64>,
) -> Result<Vec<Stats>, String> {
    if sales.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = sales.iter().map(|s| s.id.to_string()).collect();
    let mut conn = db.get_conn().await.map_err(|e| format!("database: {e}"))?;
    let rows: Vec<(u64, u64, u64)> = conn
        .query(format!(
            "SELECT sale_id, COUNT(*), CAST(COALESCE(SUM(status = 'paid'), 0) AS UNSIGNED)
               FROM orders WHERE sale_id IN ({}) GROUP BY sale_id",
            ids.join(",")
        ))
        .await
        .map_err(|e| format!("database: {e}"))?;
    let counts: HashMap<u64, (u64, u64)> = rows.into_iter().map(|(s, o, p)| (s, (o, p))).collect();
    let mut cmds = Vec::with_capacity(sales.len() * 2);
    for s in sales {
        let k = SaleKeys::new(s.id);
        cmds.push(redis::cmd("GET").arg(&k.stock).clone());
        cmds.push(
            redis::cmd("EVAL")
                .arg(WAITING)
                .arg(2)
                .arg(&k.queue_seq)
                .arg(&k.queue_state)
                .clone(),
        );
    }
    let replies = redis.each(cmds).await;
    let int = |r: Option<&Result<Value, _>>| match r {
        Some(Ok(Value::Int(n))) => Some(*n),
        Some(Ok(Value::BulkString(b))) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    };
    Ok(sales
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let (orders, paid) = counts.get(&s.id).copied().unwrap_or((0, 0));
            Stats {
                stock_left: int(replies.get(2 * i)),
                orders,
                paid,
                waiting: int(replies.get(2 * i + 1)).unwrap_or(0).max(0) as u64,
                busy: busy.contains(&s.id),
            }
        })
        .collect())
}

/// KEYS: the line's ticket counter, its state. Tickets not yet admitted.
const WAITING: &str = "return (tonumber(redis.call('GET', KEYS[1]) or '0') \
     - tonumber(redis.call('HGET', KEYS[2], 'cursor') or '0'))";

/// A sale and its stats as the operator's routes answer them.
pub fn to_json(sale: &Sale, stats: &Stats, now_ms: i64) -> Json {
    let mut v = sale.to_json(stats.stock_left, now_ms);
    v["orders"] = json!(stats.orders);
    v["paid"] = json!(stats.paid);
    v["waiting"] = json!(stats.waiting);
    v["busy"] = json!(stats.busy);
    v["rev"] = json!(sale.rev);
    v
}
