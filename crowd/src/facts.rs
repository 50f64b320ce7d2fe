//! What actually happened, read from MariaDB, Redis and the two `/metrics` pages, never
//! counted by the client.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Pool;
use seckill::buy::sales::Sale;
use seckill::store::redis_conn::Redis;

pub struct Facts {
    /// Units Redis no longer holds: initial - stock left.
    pub sold: i64,
    pub orders_in_db: i64,
    /// Users holding more live orders than the per-user limit.
    pub duplicate_buyers: i64,
    /// Orders beyond the stock (MariaDB), or stock below zero (Redis).
    pub oversold: i64,
    /// Redis stock + live orders - initial stock (the reconciler's view).
    pub drift: i64,
    /// `queued` answers whose order is not in MariaDB.
    pub lost: i64,
    /// Orders still queued when the wait for the writer ended.
    pub undrained: i64,
}

/// Waits (at most `wait`) until the writer has drained the sale, then reads the facts.
pub async fn read(
    redis: &Redis,
    db: &Pool,
    sale: &Sale,
    answered: &[u64],
    wait: Duration,
) -> Result<Facts, String> {
    let deadline = Instant::now() + wait;
    let check = loop {
        let c = seckill::lifecycle::reconcile::check(redis, db, sale)
            .await
            .map_err(|e| e.to_string())?;
        if c.queued == 0 || Instant::now() > deadline {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut conn = db.get_conn().await.map_err(|e| format!("database: {e}"))?;
    let orders_in_db: i64 = conn
        .exec_first("SELECT COUNT(*) FROM orders WHERE sale_id = ?", (sale.id,))
        .await
        .map_err(|e| format!("database: {e}"))?
        .unwrap_or(0);
    let duplicate_buyers: i64 = conn
        .exec_first(
            "SELECT COUNT(*) FROM (SELECT user_id FROM orders
               WHERE sale_id = ? AND status <> 'cancelled'
               GROUP BY user_id HAVING COUNT(*) > ?) d",
            (sale.id, sale.per_user_limit),
        )
        .await
        .map_err(|e| format!("database: {e}"))?
        .unwrap_or(0);
    let ids: Vec<u64> = conn
        .exec("SELECT id FROM orders WHERE sale_id = ?", (sale.id,))
        .await
        .map_err(|e| format!("database: {e}"))?;
    let in_db: std::collections::HashSet<u64> = ids.into_iter().collect();
    let lost = answered.iter().filter(|id| !in_db.contains(id)).count() as i64;
    let left = check.stock_left.unwrap_or(0);
    let initial = i64::from(sale.stock);
    Ok(Facts {
        sold: initial - left,
        orders_in_db,
        duplicate_buyers,
        oversold: (orders_in_db - initial).max(0) + (-left).max(0),
        drift: check.drift,
        lost,
        undrained: check.queued,
    })
}

/// The facts of an evening: summed over its sales, each checked alone, read in batches (one
/// query per thousand sales, Redis commands sent together). Waits (at most `wait`) until
/// every sale's live orders in MariaDB account for its sold units (the writer drained).
/// Also returns how many sales are exact: orders in MariaDB equal to their sold units, never
/// above their stock, their stock never below zero.
pub async fn read_many(
    redis: &Redis,
    db: &Pool,
    sales: &[Sale],
    answered: &[u64],
    wait: Duration,
) -> Result<(Facts, usize), String> {
    let deadline = Instant::now() + wait;
    loop {
        let per_sale = counts(redis, db, sales).await?;
        let drained = per_sale.iter().all(|c| c.live == c.sold);
        if drained || Instant::now() > deadline {
            let mut f = Facts {
                sold: 0,
                orders_in_db: 0,
                duplicate_buyers: 0,
                oversold: 0,
                drift: 0,
                lost: 0,
                undrained: 0,
            };
            let mut exact = 0;
            for (s, c) in sales.iter().zip(&per_sale) {
                f.sold += c.sold;
                f.orders_in_db += c.orders;
                f.duplicate_buyers += c.duplicates;
                f.oversold += (c.orders - i64::from(s.stock)).max(0) + (-c.left).max(0);
                f.drift += c.sold - c.live;
                f.undrained += (c.sold - c.live).max(0);
                if c.orders == c.sold && c.orders <= i64::from(s.stock) && c.left >= 0 {
                    exact += 1;
                }
            }
            f.lost = lost(db, sales, answered).await?;
            return Ok((f, exact));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One sale's numbers.
struct Counts {
    left: i64,
    sold: i64,
    orders: i64,
    live: i64,
    duplicates: i64,
}

async fn counts(redis: &Redis, db: &Pool, sales: &[Sale]) -> Result<Vec<Counts>, String> {
    let lefts = redis
        .each(
            sales
                .iter()
                .map(|s| {
                    redis::cmd("GET")
                        .arg(seckill::store::keys::SaleKeys::new(s.id).stock)
                        .clone()
                })
                .collect(),
        )
        .await;
    let mut by_sale: std::collections::HashMap<u64, (i64, i64, i64)> = Default::default();
    let mut conn = db.get_conn().await.map_err(|e| format!("database: {e}"))?;
    for chunk in sales.chunks(1000) {
        let ids: Vec<String> = chunk.iter().map(|s| s.id.to_string()).collect();
        let rows: Vec<(u64, i64, i64)> = conn
            .query(format!(
                "SELECT sale_id, COUNT(*), CAST(COALESCE(SUM(status <> 'cancelled'), 0) AS SIGNED)
                   FROM orders WHERE sale_id IN ({}) GROUP BY sale_id",
                ids.join(",")
            ))
            .await
            .map_err(|e| format!("database: {e}"))?;
        // Users holding more live orders than the limit (the limit is per sale).
        let dups: Vec<(u64, i64)> = conn
            .query(format!(
                "SELECT o.sale_id, COUNT(*) FROM (SELECT sale_id, user_id, COUNT(*) n FROM orders
                   WHERE sale_id IN ({}) AND status <> 'cancelled' GROUP BY sale_id, user_id) o
                   JOIN sales s ON s.id = o.sale_id WHERE o.n > s.per_user_limit
                   GROUP BY o.sale_id",
                ids.join(",")
            ))
            .await
            .map_err(|e| format!("database: {e}"))?;
        for (sale, orders, live) in rows {
            by_sale.insert(sale, (orders, live, 0));
        }
        for (sale, n) in dups {
            by_sale.entry(sale).or_default().2 = n;
        }
    }
    sales
        .iter()
        .zip(lefts)
        .map(|(s, left)| {
            let left: Option<i64> = redis::from_redis_value(&left.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
            let left = left.ok_or_else(|| format!("sale {}: not in Redis", s.id))?;
            let (orders, live, duplicates) = by_sale.get(&s.id).copied().unwrap_or_default();
            Ok(Counts {
                left,
                sold: i64::from(s.stock) - left,
                orders,
                live,
                duplicates,
            })
        })
        .collect()
}

/// `queued` answers whose order is not in MariaDB.
async fn lost(db: &Pool, sales: &[Sale], answered: &[u64]) -> Result<i64, String> {
    let mut conn = db.get_conn().await.map_err(|e| format!("database: {e}"))?;
    let mut in_db = std::collections::HashSet::new();
    for chunk in sales.chunks(1000) {
        let ids: Vec<String> = chunk.iter().map(|s| s.id.to_string()).collect();
        let rows: Vec<u64> = conn
            .query(format!(
                "SELECT id FROM orders WHERE sale_id IN ({})",
                ids.join(",")
            ))
            .await
            .map_err(|e| format!("database: {e}"))?;
        in_db.extend(rows);
    }
    Ok(answered.iter().filter(|id| !in_db.contains(id)).count() as i64)
}

/// Sums the samples of a counter whose labels contain every `want` pair.
pub fn counter(metrics: &str, name: &str, want: &[(&str, &str)]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .filter(|l| {
            want.iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn sums_matching_samples() {
        let m = "# HELP x\nseckill_edge_requests_total{route=\"buy\",outcome=\"passed\"} 7\n\
                 seckill_edge_requests_total{route=\"buy\",outcome=\"sold_out\"} 5\n\
                 seckill_edge_requests_total{route=\"path\",outcome=\"issued\"} 3\n";
        assert_eq!(
            super::counter(m, "seckill_edge_requests_total", &[("route", "buy")]),
            12.0
        );
        assert_eq!(
            super::counter(m, "seckill_edge_requests_total", &[("outcome", "passed")]),
            7.0
        );
        assert_eq!(super::counter(m, "seckill_edge_requests_total", &[]), 15.0);
    }
}
