//! The order writer: moves queued orders from each sale's Redis stream into MariaDB.
//!
//! One task per live sale reads its stream through the consumer group `writers`, inserts
//! what it read as one multi-row `INSERT`, and only after the commit `XACK`s the entries.
//! So:
//!
//! - nothing acknowledged is lost: an entry leaves the pending list only once its row is
//!   committed;
//! - a crash between commit and ack replays the entry, and the insert is idempotent (the
//!   primary key is the order id, `ON DUPLICATE KEY UPDATE id = id` makes a replay a no-op);
//! - entries read by a writer that died stay pending on it; every writer periodically takes
//!   over entries idle longer than `claim_idle` (`XAUTOCLAIM`) and writes them;
//! - a failed insert (MariaDB down) is retried from this writer's own pending list, with
//!   backoff, never skipped;
//! - an entry that cannot be parsed goes to the sale's dead-letter stream `{sale:ID}:dead`
//!   (with a metric) instead of blocking the others;
//! - when MariaDB refuses a batch (an error reply, not an outage), the batch is split and
//!   each row inserted alone; a row refused `max_failures` times (counted in Redis, so the
//!   count survives restarts) is dead-lettered and its unit given back to stock.
//!
//! Blocking reads would stall other commands multiplexed on the same connection, so the
//! writer polls without `BLOCK` on a connection of its own, backing off to `idle` when there
//! is nothing to read.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Pool;
use redis::Value;
use tokio::sync::watch;

use crate::keys::{SaleKeys, WRITER_GROUP};
use crate::metrics::Metrics;
use crate::orders::order_id;
use crate::redis_conn::{CallError, Redis};
use crate::sales::{self, Sale};

#[derive(Clone, Debug)]
pub struct WriterConfig {
    pub batch: usize,
    pub idle: Duration,
    pub claim_idle: Duration,
    pub discover: Duration,
    pub mysql_timeout: Duration,
    /// A row MariaDB refuses this many times is dead-lettered.
    pub max_failures: u32,
    /// This writer's name in the consumer group; unique per process.
    pub consumer: String,
}

pub struct Writer {
    pub redis: Redis,
    pub db: Pool,
    pub cfg: WriterConfig,
    pub metrics: Arc<Metrics>,
}

/// Why an insert failed: MariaDB is unreachable or slow (retry the same), or it answered
/// with an error (some row is refused: isolate it).
enum Insert {
    Down(String),
    Refused(String),
}

/// One order as the reserve script put it into the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedOrder {
    pub entry_id: String,
    pub seq: u64,
    pub user_id: u64,
    pub slot: u8,
    pub queued_ms: i64,
}

pub fn consumer_name() -> String {
    format!(
        "writer-{}-{}",
        std::process::id(),
        crate::crypto::random_hex(4)
    )
}

impl Writer {
    /// Runs until `shutdown` turns true, then lets every sale task drain its stream (a last
    /// look for sales also covers one created moments before the shutdown).
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut tasks: HashMap<u64, tokio::task::JoinHandle<()>> = HashMap::new();
        loop {
            self.discover(&mut tasks, &shutdown).await;
            if *shutdown.borrow() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(self.cfg.discover) => {}
                _ = shutdown.changed() => {}
            }
        }
        for (_, t) in tasks {
            let _ = t.await;
        }
    }

    /// Starts a task for each live sale that has none running.
    async fn discover(
        self: &Arc<Self>,
        tasks: &mut HashMap<u64, tokio::task::JoinHandle<()>>,
        shutdown: &watch::Receiver<bool>,
    ) {
        let now = crate::clock::now_ms();
        match sales::ending_after(&self.db, now - crate::sales::RETENTION_MS).await {
            Ok(list) => {
                for sale in list {
                    self.report_backlog(sale.id).await;
                    if tasks.get(&sale.id).is_some_and(|t| !t.is_finished()) {
                        continue;
                    }
                    let w = self.clone();
                    let sd = shutdown.clone();
                    tasks.insert(
                        sale.id,
                        tokio::spawn(async move { w.sale_loop(sale, sd).await }),
                    );
                }
            }
            Err(e) => {
                self.metrics
                    .mysql_errors
                    .with_label_values(&["list_sales"])
                    .inc();
                eprintln!("writer: listing sales failed: {e}");
            }
        }
    }

    /// Backlog = entries the writers' group has not acknowledged: read but pending, plus not
    /// yet read (`lag`), from `XINFO GROUPS`.
    async fn report_backlog(&self, sale_id: u64) {
        let k = SaleKeys::new(sale_id);
        if let Ok(reply) = self
            .redis
            .cmd::<Value>(redis::cmd("XINFO").arg("GROUPS").arg(&k.orders).clone())
            .await
        {
            if let Some(n) = group_backlog(&reply) {
                self.metrics
                    .stream_backlog
                    .with_label_values(&[&sale_id.to_string()])
                    .set(n);
            }
        }
    }

    async fn sale_loop(self: Arc<Self>, sale: Sale, mut shutdown: watch::Receiver<bool>) {
        let k = SaleKeys::new(sale.id);
        let mut backoff = Duration::from_millis(50);
        while let Err(e) = crate::stock::ensure_group(&self.redis, &k.orders).await {
            eprintln!(
                "writer: sale {}: creating the consumer group failed: {e}",
                sale.id
            );
            if *shutdown.borrow() {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
        let claim_every = (self.cfg.claim_idle / 2).max(Duration::from_millis(100));
        let mut last_claim: Option<Instant> = None;
        // Start from our own pending list: after a failed insert it holds what to retry.
        let mut retry_own = true;
        let mut idle = Duration::from_millis(1);
        backoff = Duration::from_millis(50);
        loop {
            let stopping = *shutdown.borrow();
            if last_claim.is_none_or(|t| t.elapsed() >= claim_every) {
                last_claim = Some(Instant::now());
                match self.reclaim(&sale, &k).await {
                    Ok(()) => {}
                    Err(e) => eprintln!("writer: sale {}: reclaim failed: {e}", sale.id),
                }
            }
            let from = if retry_own { "0" } else { ">" };
            let read = self.read(&k.orders, from).await;
            let entries = match read {
                Ok(entries) => entries,
                Err(e) => {
                    self.metrics
                        .redis_errors
                        .with_label_values(&["xreadgroup"])
                        .inc();
                    eprintln!("writer: sale {}: reading the stream failed: {e}", sale.id);
                    if stopping {
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            };
            if entries.is_empty() {
                if retry_own {
                    retry_own = false;
                    continue;
                }
                if stopping || sale.ends_ms + crate::sales::RETENTION_MS < crate::clock::now_ms() {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(idle) => {}
                    _ = shutdown.changed() => {}
                }
                idle = (idle * 2).min(self.cfg.idle);
                continue;
            }
            idle = Duration::from_millis(1);
            match self.write(&sale, &k, entries).await {
                Ok(_) => backoff = Duration::from_millis(50),
                Err(e) => {
                    eprintln!(
                        "writer: sale {}: writing a batch failed, will retry: {e}",
                        sale.id
                    );
                    retry_own = true;
                    if stopping {
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// Takes over entries idle on other (dead) consumers and writes them.
    async fn reclaim(&self, sale: &Sale, k: &SaleKeys) -> Result<(), String> {
        let mut start = "0-0".to_string();
        loop {
            let mut cmd = redis::cmd("XAUTOCLAIM");
            cmd.arg(&k.orders)
                .arg(WRITER_GROUP)
                .arg(&self.cfg.consumer)
                .arg(self.cfg.claim_idle.as_millis() as u64)
                .arg(&start)
                .arg("COUNT")
                .arg(self.cfg.batch);
            let reply: Value = self.redis.cmd(cmd).await.map_err(|e| e.to_string())?;
            let (next, raw) = match &reply {
                Value::Array(parts) if parts.len() >= 2 => (text(&parts[0]), &parts[1]),
                other => return Err(format!("unexpected XAUTOCLAIM reply {other:?}")),
            };
            let entries = entries_of(raw);
            if !entries.is_empty() {
                self.metrics.writer_reclaimed.inc_by(entries.len() as u64);
                self.write(sale, k, entries).await?;
            }
            match next {
                Some(n) if n != "0-0" => start = n,
                _ => return Ok(()),
            }
        }
    }

    async fn read(
        &self,
        stream: &str,
        from: &str,
    ) -> Result<Vec<(String, Vec<(String, String)>)>, CallError> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(WRITER_GROUP)
            .arg(&self.cfg.consumer)
            .arg("COUNT")
            .arg(self.cfg.batch)
            .arg("STREAMS")
            .arg(stream)
            .arg(from);
        let start = Instant::now();
        let reply: Value = self.redis.cmd(cmd).await?;
        self.metrics
            .redis_duration
            .with_label_values(&["xreadgroup"])
            .observe(start.elapsed().as_secs_f64());
        // [[stream, [entries]]] or nil
        Ok(match reply {
            Value::Array(streams) => streams
                .iter()
                .filter_map(|s| match s {
                    Value::Array(pair) if pair.len() == 2 => Some(entries_of(&pair[1])),
                    _ => None,
                })
                .flatten()
                .collect(),
            _ => Vec::new(),
        })
    }

    /// Inserts one batch, then acknowledges it. Returns how many rows were new.
    async fn write(
        &self,
        sale: &Sale,
        k: &SaleKeys,
        entries: Vec<(String, Vec<(String, String)>)>,
    ) -> Result<u64, String> {
        let mut orders = Vec::with_capacity(entries.len());
        let mut poison = Vec::new();
        for (id, fields) in entries {
            match parse_order(&id, &fields) {
                Some(o) => orders.push(o),
                None => poison.push((id, fields)),
            }
        }
        if !poison.is_empty() {
            self.dead_letter(k, &poison).await?;
        }
        if orders.is_empty() {
            return Ok(0);
        }
        let inserted = match self.insert(sale, &orders).await {
            Ok(n) => n,
            Err(Insert::Down(e)) => return Err(e),
            Err(Insert::Refused(e)) => {
                eprintln!(
                    "writer: sale {}: MariaDB refused a batch ({e}); inserting its rows one by one",
                    sale.id
                );
                return self.write_one_by_one(sale, k, orders).await;
            }
        };
        self.acknowledge(k, &orders).await?;
        Ok(inserted)
    }

    /// Inserts one batch, bounded in time, with metrics.
    async fn insert(&self, sale: &Sale, orders: &[QueuedOrder]) -> Result<u64, Insert> {
        let started = Instant::now();
        let r = tokio::time::timeout(self.cfg.mysql_timeout, insert_batch(&self.db, sale, orders))
            .await;
        let r = match r {
            Err(_) => Err(Insert::Down("database: batch insert timed out".into())),
            // A lock conflict that outlived its retries is contention, not a poison row.
            Ok(Err(e)) if crate::db::is_lock_conflict(&e) => {
                Err(Insert::Down(format!("database: {e}")))
            }
            Ok(Err(mysql_async::Error::Server(e))) => {
                Err(Insert::Refused(format!("database: {e}")))
            }
            Ok(Err(e)) => Err(Insert::Down(format!("database: {e}"))),
            Ok(Ok(n)) if (n as usize) < orders.len() => self.all_present(sale, orders, n).await,
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
    /// order that is not there hit the one-live-order-per-(user, slot) key, i.e. MariaDB holds
    /// another live order of that user and slot. That is refused, never silently dropped.
    async fn all_present(
        &self,
        sale: &Sale,
        orders: &[QueuedOrder],
        n: u64,
    ) -> Result<u64, Insert> {
        let ids: Vec<String> = orders
            .iter()
            .map(|o| order_id(sale.id, o.seq).to_string())
            .collect();
        let sql = format!(
            "SELECT COUNT(*) FROM orders WHERE id IN ({})",
            ids.join(",")
        );
        let present: Option<u64> = async {
            let mut conn = self.db.get_conn().await?;
            conn.query_first(sql).await
        }
        .await
        .map_err(|e: mysql_async::Error| Insert::Down(format!("database: {e}")))?;
        if present.unwrap_or(0) as usize == orders.len() {
            Ok(n)
        } else {
            Err(Insert::Refused(
                "database: an order conflicts with a live order of the same user and slot".into(),
            ))
        }
    }

    /// After a refused batch: each row alone. Rows that go in are acknowledged; a row refused
    /// `max_failures` times is dead-lettered and its unit returned; others stay pending and
    /// are retried (the call then fails, so the caller backs off).
    async fn write_one_by_one(
        &self,
        sale: &Sale,
        k: &SaleKeys,
        orders: Vec<QueuedOrder>,
    ) -> Result<u64, String> {
        let mut inserted = 0;
        let mut done = Vec::new();
        let mut still_failing = 0;
        for o in orders {
            match self.insert(sale, std::slice::from_ref(&o)).await {
                Ok(n) => {
                    inserted += n;
                    done.push(o);
                }
                Err(Insert::Down(e)) => {
                    self.acknowledge(k, &done).await?;
                    return Err(e);
                }
                Err(Insert::Refused(e)) => {
                    let failures: u32 = self
                        .redis
                        .cmd(
                            redis::cmd("HINCRBY")
                                .arg(&k.failures)
                                .arg(&o.entry_id)
                                .arg(1)
                                .clone(),
                        )
                        .await
                        .map_err(|e| format!("redis: counting a failure: {e}"))?;
                    eprintln!(
                        "writer: sale {}: order {} refused ({failures}/{}): {e}",
                        sale.id, o.seq, self.cfg.max_failures
                    );
                    if failures >= self.cfg.max_failures {
                        self.give_up(sale, k, &o, &e).await?;
                    } else {
                        still_failing += 1;
                    }
                }
            }
        }
        self.acknowledge(k, &done).await?;
        if still_failing > 0 {
            return Err(format!(
                "{still_failing} orders refused by MariaDB, will retry"
            ));
        }
        Ok(inserted)
    }

    /// Dead-letters an order MariaDB keeps refusing and gives its unit back to stock, so the
    /// poison entry neither blocks the others nor leaks its unit.
    async fn give_up(
        &self,
        sale: &Sale,
        k: &SaleKeys,
        o: &QueuedOrder,
        why: &str,
    ) -> Result<(), String> {
        let fields = vec![
            ("seq".to_string(), o.seq.to_string()),
            ("user".to_string(), o.user_id.to_string()),
            ("slot".to_string(), o.slot.to_string()),
            ("ts".to_string(), o.queued_ms.to_string()),
            ("error".to_string(), why.to_string()),
        ];
        self.dead_letter(k, &[(o.entry_id.clone(), fields)]).await?;
        match crate::stock::release(&self.redis, sale.id, o.seq, o.user_id, o.slot).await {
            Ok(crate::stock::Released::Now) => self.metrics.units_returned.inc(),
            Ok(_) => {}
            Err(e) => eprintln!(
                "writer: sale {}: returning the unit of dead order {} failed ({e}); the reconciler will",
                sale.id, o.seq
            ),
        }
        let _: Result<i64, _> = self
            .redis
            .cmd(redis::cmd("HDEL").arg(&k.failures).arg(&o.entry_id).clone())
            .await;
        Ok(())
    }

    /// Committed: now, and only now, acknowledge.
    async fn acknowledge(&self, k: &SaleKeys, orders: &[QueuedOrder]) -> Result<(), String> {
        if orders.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("XACK");
        cmd.arg(&k.orders).arg(WRITER_GROUP);
        for o in orders {
            cmd.arg(&o.entry_id);
        }
        self.redis.cmd::<()>(cmd).await.map_err(|e| {
            self.metrics.redis_errors.with_label_values(&["xack"]).inc();
            format!("redis: acknowledging failed (the batch will be replayed, harmlessly): {e}")
        })
    }

    async fn dead_letter(
        &self,
        k: &SaleKeys,
        poison: &[(String, Vec<(String, String)>)],
    ) -> Result<(), String> {
        let dead = &k.dead;
        for (id, fields) in poison {
            eprintln!(
                "writer: moving malformed entry {id} of {} to {dead}",
                k.orders
            );
            let mut pipe = redis::pipe();
            pipe.cmd("XADD").arg(dead).arg("*").arg("entry").arg(id);
            for (f, v) in fields {
                pipe.arg(f).arg(v);
            }
            pipe.ignore()
                .cmd("XACK")
                .arg(&k.orders)
                .arg(WRITER_GROUP)
                .arg(id)
                .ignore();
            self.redis
                .call(|mut c| async move { pipe.query_async::<()>(&mut c).await })
                .await
                .map_err(|e| format!("redis: dead-lettering failed: {e}"))?;
            self.metrics.writer_dead_letters.inc();
        }
        Ok(())
    }
}

/// One multi-row insert in its own transaction (a single statement is atomic in InnoDB).
pub async fn insert_batch(
    db: &Pool,
    sale: &Sale,
    orders: &[QueuedOrder],
) -> Result<u64, mysql_async::Error> {
    use std::fmt::Write;
    let now = crate::clock::now_ms();
    let mut sql = String::with_capacity(64 + orders.len() * 96);
    sql.push_str(
        "INSERT INTO orders (id, sale_id, seq, user_id, slot, live_slot, status, price_cents, \
         queued_ms, created_ms, pay_by_ms) VALUES ",
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
    // A replayed entry hits the primary key and changes nothing.
    sql.push_str(" ON DUPLICATE KEY UPDATE id = id");
    // Two writers' batches (a reclaim racing the owner) can deadlock on the unique keys.
    crate::db::retry_conflicts(|| async {
        let mut conn = db.get_conn().await?;
        conn.query_drop(sql.as_str()).await?;
        Ok(conn.affected_rows())
    })
    .await
}

fn parse_order(id: &str, fields: &[(String, String)]) -> Option<QueuedOrder> {
    let get = |name: &str| {
        fields
            .iter()
            .find(|(f, _)| f == name)
            .map(|(_, v)| v.as_str())
    };
    let slot: u8 = get("slot")?.parse().ok()?;
    let seq: u64 = get("seq")?.parse().ok()?;
    if slot == 0 || slot as i64 > crate::sales::MAX_PER_USER || seq == 0 || seq > u32::MAX as u64 {
        return None;
    }
    Some(QueuedOrder {
        entry_id: id.to_string(),
        seq,
        user_id: get("user")?.parse().ok()?,
        slot,
        queued_ms: get("ts")?.parse().ok()?,
    })
}

/// pending + lag of the writers' group in an `XINFO GROUPS` reply.
fn group_backlog(reply: &Value) -> Option<i64> {
    let Value::Array(groups) = reply else {
        return None;
    };
    groups.iter().find_map(|g| {
        let pairs: Vec<(String, &Value)> = match g {
            Value::Array(kv) => kv
                .chunks(2)
                .filter_map(|c| Some((text(c.first()?)?, c.get(1)?)))
                .collect(),
            Value::Map(kv) => kv.iter().filter_map(|(k, v)| Some((text(k)?, v))).collect(),
            _ => return None,
        };
        let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
        if get("name").and_then(text).as_deref() != Some(WRITER_GROUP) {
            return None;
        }
        let num = |v: Option<&Value>| match v {
            Some(Value::Int(n)) => *n,
            _ => 0,
        };
        Some(num(get("pending")) + num(get("lag")))
    })
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `[[id, [field, value, ...]], ...]` -> entries. Deleted entries (nil) are skipped.
fn entries_of(v: &Value) -> Vec<(String, Vec<(String, String)>)> {
    let Value::Array(items) = v else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let Value::Array(pair) = item else {
                return None;
            };
            let id = text(pair.first()?)?;
            let fields = match pair.get(1)? {
                Value::Array(kv) => kv
                    .chunks(2)
                    .filter_map(|c| Some((text(c.first()?)?, text(c.get(1)?)?)))
                    .collect(),
                _ => Vec::new(),
            };
            Some((id, fields))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn parses_what_the_reserve_script_writes() {
        let o = parse_order(
            "1-0",
            &f(&[("seq", "3"), ("user", "9"), ("slot", "1"), ("ts", "5")]),
        )
        .unwrap();
        assert_eq!((o.seq, o.user_id, o.slot, o.queued_ms), (3, 9, 1, 5));
    }

    #[test]
    fn malformed_entries_are_poison() {
        assert!(parse_order(
            "1-0",
            &f(&[("seq", "3"), ("user", "9"), ("slot", "0"), ("ts", "5")])
        )
        .is_none());
        assert!(parse_order(
            "1-0",
            &f(&[("seq", "x"), ("user", "9"), ("slot", "1"), ("ts", "5")])
        )
        .is_none());
        assert!(parse_order("1-0", &f(&[("user", "9"), ("slot", "1"), ("ts", "5")])).is_none());
    }

    #[test]
    fn backlog_is_pending_plus_lag_of_the_writers_group() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let group = |name: &str, pending: i64, lag: Value| {
            Value::Array(vec![
                bulk("name"),
                bulk(name),
                bulk("pending"),
                Value::Int(pending),
                bulk("lag"),
                lag,
            ])
        };
        let reply = Value::Array(vec![
            group("others", 100, Value::Int(100)),
            group(WRITER_GROUP, 3, Value::Int(4)),
        ]);
        assert_eq!(group_backlog(&reply), Some(7));
        let unknown_lag = Value::Array(vec![group(WRITER_GROUP, 2, Value::Nil)]);
        assert_eq!(group_backlog(&unknown_lag), Some(2));
    }

    #[test]
    fn reads_stream_replies() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let reply = Value::Array(vec![
            Value::Array(vec![
                bulk("1-0"),
                Value::Array(vec![bulk("seq"), bulk("1")]),
            ]),
            Value::Nil,
        ]);
        assert_eq!(
            entries_of(&reply),
            vec![("1-0".to_string(), f(&[("seq", "1")]))]
        );
    }
}
