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
//!
//! Three parts, read top-down: this module, the loop (one task per live sale, backoff,
//! shutdown); [`stream`], the Redis side (read, reclaim, ack, dead letter, backlog);
//! [`insert`], the MariaDB side (the batch, isolating refused rows, giving up on poison).

pub mod insert;
pub mod stream;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::Pool;
use tokio::sync::watch;

use crate::buy::sales::{self, Sale};
use crate::metrics::Metrics;
use crate::store::keys::SaleKeys;
use crate::store::redis_conn::Redis;
pub use insert::insert_batch;
use insert::{Insert, Inserter};
pub use stream::QueuedOrder;
use stream::{Entry, Stream};

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

pub fn consumer_name() -> String {
    format!(
        "writer-{}-{}",
        std::process::id(),
        crate::tokens::crypto::random_hex(4)
    )
}

/// Doubling pauses after failures, from 50 ms up to 2 s; back to the start after a success.
struct Backoff(Duration);

impl Backoff {
    const FIRST: Duration = Duration::from_millis(50);
    const MAX: Duration = Duration::from_secs(2);

    fn new() -> Backoff {
        Backoff(Self::FIRST)
    }

    /// Waits the current pause and doubles the next.
    async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Self::MAX);
    }

    fn reset(&mut self) {
        self.0 = Self::FIRST;
    }
}

impl Writer {
    /// Runs until `shutdown` turns true, then lets every sale task drain its stream (a last
    /// look for sales also covers one created moments before the shutdown).
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut tasks: HashMap<u64, tokio::task::JoinHandle<()>> = HashMap::new();
        loop {
            // The last look must begin after the shutdown was seen: a look that began before
            // it may have missed a sale created meanwhile (a look over many sales takes time).
            let stopping = *shutdown.borrow();
            self.discover(&mut tasks, &shutdown).await;
            if stopping {
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

    fn stream(&self, sale_id: u64) -> Stream<'_> {
        Stream {
            redis: &self.redis,
            metrics: &self.metrics,
            keys: SaleKeys::new(sale_id),
            consumer: &self.cfg.consumer,
            batch: self.cfg.batch,
        }
    }

    fn inserter(&self) -> Inserter<'_> {
        Inserter {
            db: &self.db,
            metrics: &self.metrics,
            timeout: self.cfg.mysql_timeout,
            max_failures: self.cfg.max_failures,
        }
    }

    /// Starts a task for each live sale that has none running, and reports each backlog.
    async fn discover(
        self: &Arc<Self>,
        tasks: &mut HashMap<u64, tokio::task::JoinHandle<()>>,
        shutdown: &watch::Receiver<bool>,
    ) {
        let now = crate::clock::now_ms();
        match sales::ending_after(&self.db, now - sales::RETENTION_MS).await {
            Ok(list) => {
                for sale in list {
                    if let Some(n) = self.stream(sale.id).backlog().await {
                        self.metrics
                            .stream_backlog
                            .with_label_values(&[&sale.id.to_string()])
                            .set(n);
                    }
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

    /// One sale: reclaim what dead writers left now and then, read, write, acknowledge; after
    /// a failed write, retry this writer's own pending entries first, with backoff. Ends on
    /// shutdown (after draining) or a day after the sale ended.
    async fn sale_loop(self: Arc<Self>, sale: Sale, mut shutdown: watch::Receiver<bool>) {
        let stream = self.stream(sale.id);
        let inserter = self.inserter();
        let mut backoff = Backoff::new();
        while let Err(e) = crate::buy::stock::ensure_group(&self.redis, &stream.keys.orders).await {
            eprintln!(
                "writer: sale {}: creating the consumer group failed: {e}",
                sale.id
            );
            if *shutdown.borrow() {
                return;
            }
            backoff.wait().await;
        }
        backoff.reset();
        let claim_every = (self.cfg.claim_idle / 2).max(Duration::from_millis(100));
        let mut last_claim: Option<Instant> = None;
        // Start from our own pending list: after a failed insert it holds what to retry.
        let mut retry_own = true;
        let mut idle = Duration::from_millis(1);
        loop {
            let stopping = *shutdown.borrow();
            if last_claim.is_none_or(|t| t.elapsed() >= claim_every) {
                last_claim = Some(Instant::now());
                match stream.reclaim(self.cfg.claim_idle).await {
                    Ok(mut entries) => {
                        // Written a batch at a time, as if read.
                        while !entries.is_empty() {
                            let rest = entries.split_off(entries.len().min(self.cfg.batch));
                            let batch = std::mem::replace(&mut entries, rest);
                            if let Err(e) = write(&stream, &inserter, &sale, batch).await {
                                eprintln!("writer: sale {}: writing reclaimed entries failed (they stay pending on us): {e}", sale.id);
                                retry_own = true;
                                break;
                            }
                        }
                    }
                    Err(e) => eprintln!("writer: sale {}: reclaim failed: {e}", sale.id),
                }
            }
            let from = if retry_own { "0" } else { ">" };
            let entries = match stream.read(from).await {
                Ok(entries) => entries,
                Err(e) => {
                    eprintln!("writer: sale {}: reading the stream failed: {e}", sale.id);
                    if stopping {
                        return;
                    }
                    backoff.wait().await;
                    continue;
                }
            };
            if entries.is_empty() {
                if retry_own {
                    retry_own = false;
                    continue;
                }
                if stopping || sale.ends_ms + sales::RETENTION_MS < crate::clock::now_ms() {
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
            match write(&stream, &inserter, &sale, entries).await {
                Ok(_) => backoff.reset(),
                Err(e) => {
                    eprintln!(
                        "writer: sale {}: writing a batch failed, will retry: {e}",
                        sale.id
                    );
                    retry_own = true;
                    if stopping {
                        return;
                    }
                    backoff.wait().await;
                }
            }
        }
    }
}

/// Writes entries read from the stream: poison to the dead letters, the orders as one batch,
/// then (and only then) the acknowledgement. A refused batch is isolated row by row. Returns
/// how many rows were new.
async fn write(
    stream: &Stream<'_>,
    inserter: &Inserter<'_>,
    sale: &Sale,
    entries: Vec<Entry>,
) -> Result<u64, String> {
    if entries.is_empty() {
        return Ok(0);
    }
    let (orders, poison) = stream::parse(entries);
    if !poison.is_empty() {
        stream
            .dead_letter(&poison)
            .await
            .map_err(|e| format!("redis: dead-lettering failed: {e}"))?;
    }
    if orders.is_empty() {
        return Ok(0);
    }
    let inserted = match inserter.insert(sale, &orders).await {
        Ok(n) => n,
        Err(Insert::Down(e)) => return Err(e),
        Err(Insert::Refused(e)) => {
            eprintln!(
                "writer: sale {}: MariaDB refused a batch ({e}); inserting its rows one by one",
                sale.id
            );
            return inserter.isolate(stream, sale, orders).await;
        }
    };
    stream.ack(&orders).await.map_err(|e| {
        format!("redis: acknowledging failed (the batch will be replayed, harmlessly): {e}")
    })?;
    Ok(inserted)
}
