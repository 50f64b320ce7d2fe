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
