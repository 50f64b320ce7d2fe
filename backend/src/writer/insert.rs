//! Putting orders into MariaDB: one multi-row `INSERT` per batch (idempotent: a replayed
//! entry hits the primary key and changes nothing), and the policy for rows MariaDB refuses:
//! isolate them (each row alone), and give up on a row refused `max_failures` times
//! (dead-lettered, its unit returned to stock) so it neither blocks the others nor leaks its
//! unit. An outage (no answer, lost connection, a lock conflict that outlived its retries) is
//! never a refusal: the batch stays pending and is retried.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Pool;

use super::stream::{QueuedOrder, Stream};
use crate::buy::orders::order_id;
use crate::buy::sales::Sale;
use crate::metrics::Metrics;
use crate::store::redis_conn::CallError;

/// Why an insert failed: MariaDB is unreachable or slow (retry the same), or it answered
/// with an error (some row is refused: isolate it).
pub enum Insert {
    Down(WriteError),
    Refused(String),
}

/// Why writing a batch failed: what stays pending is retried (or reclaimed), never skipped.
#[derive(Debug)]
pub enum WriteError {
    /// MariaDB did not answer in time.
    TimedOut,
    /// MariaDB failed (no connection, a lock conflict that outlived its retries).
    Database(mysql_async::Error),
    /// Redis failed while acknowledging, dead-lettering or counting a refusal.
    Redis(&'static str, CallError),
    /// Rows MariaDB keeps refusing, not yet given up on.
    Refused(usize),
    /// The sale was rebuilt from MariaDB since the entries were read (a Redis failover): the
    /// insert was refused by the fence; read them again under the new generation.
    Fenced,
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::TimedOut => write!(f, "database: batch insert timed out"),
            WriteError::Database(e) => write!(f, "database: {e}"),
            WriteError::Redis(what, e) => write!(f, "redis: {what}: {e}"),
            WriteError::Refused(n) => write!(f, "{n} orders refused by MariaDB, will retry"),
            WriteError::Fenced => write!(
                f,
                "fenced: the sale was rebuilt after a Redis failover since these entries were read"
            ),
        }
    }
}

/// What the inserting needs: the pool, its bound, the poison policy, metrics.
pub struct Inserter<'a> {
    pub db: &'a Pool,
    pub metrics: &'a Metrics,
    pub timeout: Duration,
    pub max_failures: u32,
}

impl Inserter<'_> {
    /// Inserts a batch, bounded in time, with metrics. Returns how many rows were new.
    pub async fn insert(
        &self,
        sale: &Sale,
        orders: &[QueuedOrder],
        gen: u64,
    ) -> Result<u64, Insert> {
        let started = Instant::now();
        let r = tokio::time::timeout(self.timeout, insert_batch(self.db, sale, orders, gen)).await;
        let r = match r {
            Err(_) => Err(Insert::Down(WriteError::TimedOut)),
            // A lock conflict that outlived its retries is contention, not a poison row.
            Ok(Err(e)) if crate::store::db::is_lock_conflict(&e) => {
                Err(Insert::Down(WriteError::Database(e)))
            }
            Ok(Err(mysql_async::Error::Server(e))) => {
                Err(Insert::Refused(format!("database: {e}")))
            }
            Ok(Err(e)) => Err(Insert::Down(WriteError::Database(e))),
            Ok(Ok(n)) if (n as usize) < orders.len() => {
                self.all_present(sale, orders, n, gen).await
            }
            Ok(Ok(n)) => Ok(n),
        };
        match &r {
            Ok(n) => {
                self.metrics
                    .mysql_duration
                    .with_label_values(&["insert_orders"])
                    .observe(started.elapsed().as_secs_f64());
                self.metrics.writer_batch.observe(orders.len() as f64);
                self.metrics.orders_written.inc_by(*n);
            }
            Err(_) => self
                .metrics
                .mysql_errors
                .with_label_values(&["insert_orders"])
                .inc(),
        }
        r
    }

    /// Fewer rows went in than were sent: replays (the order is there already) are fine; an
    /// order that is not there hit the one-live-order-per-(user, slot) key (MariaDB holds
    /// another live order of that user and slot) or its number is another shopper's. That is
    /// refused, never silently dropped.
    async fn all_present(
        &self,
        sale: &Sale,
        orders: &[QueuedOrder],
        n: u64,
        gen: u64,
    ) -> Result<u64, Insert> {
        // Refused by the fence: nothing went in; read again (never acknowledged as written).
        let fence = crate::store::fence::current(self.db, sale.id)
            .await
            .map_err(|e| Insert::Down(WriteError::Database(e)))?;
        if fence > gen {
            self.metrics.writer_fenced.inc();
            return Err(Insert::Down(WriteError::Fenced));
        }
        // The same number held by another shopper is not this order (a sequence reused after
        // a Redis failover that lost writes): that is refused too, never taken as a replay.
        let ids: Vec<String> = orders
            .iter()
            .map(|o| order_id(sale.id, o.seq).to_string())
            .collect();
        let sql = format!(
            "SELECT id, user_id FROM orders WHERE id IN ({})",
            ids.join(",")
        );
        let rows: Vec<(u64, u64)> = async {
            let mut conn = self.db.get_conn().await?;
            conn.query(sql).await
        }
        .await
        .map_err(|e: mysql_async::Error| Insert::Down(WriteError::Database(e)))?;
        let held: std::collections::HashMap<u64, u64> = rows.into_iter().collect();
        let present = orders
            .iter()
            .filter(|o| held.get(&order_id(sale.id, o.seq)) == Some(&o.user_id))
            .count();
        if present == orders.len() {
            Ok(n)
        } else {
            Err(Insert::Refused(
                "database: an order conflicts with a live order of the same user and slot".into(),
            ))
        }
    }

    /// After a refused batch: each row alone. Rows that go in are acknowledged; a row refused
    /// `max_failures` times is given up ([`Inserter::give_up`]); others stay pending and are
    /// retried (the call then fails, so the caller backs off).
    pub async fn isolate(
        &self,
        stream: &Stream<'_>,
        sale: &Sale,
        orders: Vec<QueuedOrder>,
        gen: u64,
    ) -> Result<u64, WriteError> {
        let mut inserted = 0;
        let mut done = Vec::new();
        let mut still_failing = 0;
        for o in orders {
            match self.insert(sale, std::slice::from_ref(&o), gen).await {
                Ok(n) => {
                    inserted += n;
                    done.push(o);
                }
                Err(Insert::Down(e)) => {
                    stream
                        .ack(&done)
                        .await
                        .map_err(|e| WriteError::Redis("acknowledging", e))?;
                    return Err(e);
                }
                Err(Insert::Refused(e)) => {
                    let failures = stream
                        .count_refusal(&o.entry_id)
                        .await
                        .map_err(|e| WriteError::Redis("counting a refusal", e))?;
                    eprintln!(
                        "writer: sale {}: order {} refused ({failures}/{}): {e}",
                        sale.id, o.seq, self.max_failures
                    );
                    if failures >= self.max_failures {
                        self.give_up(stream, sale, &o, &e).await?;
                    } else {
                        still_failing += 1;
                    }
                }
            }
        }
        stream
            .ack(&done)
            .await
            .map_err(|e| WriteError::Redis("acknowledging", e))?;
        if still_failing > 0 {
            return Err(WriteError::Refused(still_failing));
        }
        Ok(inserted)
    }

    /// Dead-letters an order MariaDB keeps refusing and gives its unit back to stock, so the
    /// poison entry neither blocks the others nor leaks its unit.
    async fn give_up(
        &self,
        stream: &Stream<'_>,
        sale: &Sale,
        o: &QueuedOrder,
        why: &str,
    ) -> Result<(), WriteError> {
        let fields = vec![
            ("seq".to_string(), o.seq.to_string()),
            ("user".to_string(), o.user_id.to_string()),
            ("slot".to_string(), o.slot.to_string()),
            ("ts".to_string(), o.queued_ms.to_string()),
            ("error".to_string(), why.to_string()),
        ];
        stream
            .dead_letter(&[(o.entry_id.clone(), fields)])
            .await
            .map_err(|e| WriteError::Redis("dead-lettering", e))?;
        match crate::buy::stock::release(stream.redis, sale.id, o.seq, o.user_id, o.slot).await {
            Ok(crate::buy::stock::Released::Now) => self.metrics.units_returned.inc(),
            Ok(_) => {}
            Err(e) => eprintln!(
                "writer: sale {}: returning the unit of dead order {} failed ({e}); the reconciler will",
                sale.id, o.seq
            ),
        }
        stream.forget_refusals(&o.entry_id).await;
        Ok(())
    }
}

/// One multi-row insert in its own transaction (a single statement is atomic in InnoDB),
/// made only while the sale's generation in MariaDB is not above `gen`, the one the entries
/// were read under (`store::fence`): the check reads the fence row with a shared lock, so a
/// rebuild that raises it waits for this statement, and a statement after the raise inserts
/// nothing. Returns how many rows were new (0 when fenced or all replays).
pub async fn insert_batch(
    db: &Pool,
    sale: &Sale,
    orders: &[QueuedOrder],
    gen: u64,
) -> Result<u64, mysql_async::Error> {
    use std::fmt::Write;
    let now = crate::clock::now_ms();
    let mut sql = String::with_capacity(256 + orders.len() * 96);
    sql.push_str(
        "INSERT INTO orders (id, sale_id, seq, user_id, slot, live_slot, status, price_cents, \
         queued_ms, created_ms, pay_by_ms) WITH v (id, sale_id, seq, user_id, slot, live_slot, \
         status, price_cents, queued_ms, created_ms, pay_by_ms) AS (VALUES ",
    );
    for (i, o) in orders.iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        // Every value is an integer we parsed ourselves: nothing here can inject SQL.
        let _ = write!(
            sql,
            "({},{},{},{},{},{},'created',{},{},{},{})",
            order_id(sale.id, o.seq),
            sale.id,
            o.seq,
            o.user_id,
            o.slot,
            o.slot,
            sale.price_cents,
            o.queued_ms,
            now,
            o.queued_ms + i64::from(sale.pay_window_s) * 1000,
        );
    }
    let _ = write!(
        sql,
        ") SELECT * FROM v WHERE {}",
        crate::store::fence::condition(sale.id, gen)
    );
    // A replayed entry hits the primary key and changes nothing.
    sql.push_str(" ON DUPLICATE KEY UPDATE orders.id = orders.id");
    // Two writers' batches (a reclaim racing the owner) can deadlock on the unique keys.
    crate::store::db::retry_conflicts(|| async {
        let mut conn = db.get_conn().await?;
        conn.query_drop(sql.as_str()).await?;
        Ok(conn.affected_rows())
    })
    .await
}
