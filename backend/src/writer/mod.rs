//! The order writer: moves queued orders from each sale's Redis stream into MariaDB.
//!
//! Writers (one per backend) share the consumer group `writers` of every sale's stream. A
//! writer reads entries, inserts them as one multi-row `INSERT`, and only after the commit
//! `XACK`s them. So:
//!
//! - nothing acknowledged is lost: an entry leaves the pending list only once its row is
//!   committed;
//! - a crash between commit and ack replays the entry, and the insert is idempotent (the
//!   primary key is the order id, `ON DUPLICATE KEY UPDATE id = id` makes a replay a no-op);
//! - entries read by a writer that died stay pending on it; writers take over entries idle
//!   longer than `claim_idle` (`XAUTOCLAIM`) and write them;
//! - a failed insert (MariaDB down) is retried from this writer's own pending list, with
//!   backoff, never skipped;
//! - an entry that cannot be parsed goes to the sale's dead-letter stream `{sale:ID}:dead`
//!   (with a metric) instead of blocking the others;
//! - when MariaDB refuses a batch (an error reply, not an outage), the batch is split and
//!   each row inserted alone; a row refused `max_failures` times (counted in Redis, so the
//!   count survives restarts) is dead-lettered and its unit given back to stock.
//!
//! **Which streams it reads: the busy sales, never all of them.** Nothing is polled per
//! sale that exists. A writer reads a sale's stream when
//! - this backend queued orders in it (the reserver's in-process signal, `store::activity`):
//!   at once, until the stream has nothing new;
//! - the sale is in the active set (`store::activity`) and its lease ended: once a second
//!   the writer looks at those sales' streams (one command each, sent together), writes what
//!   is there (another backend's orders, left by a crash) and *retires* the drained ones from
//!   the set;
//! - every `claim_idle / 2`, for each sale in the active set: entries pending on a dead
//!   writer are claimed;
//! - at start and at shutdown, for every sale in the active set.
//!
//! An idle platform, however many sales it holds, costs the writer one small read of the
//! active set a second. The reserve scripts' lease check (see `store::activity`) makes
//! retiring safe: no entry can be added to a stream after the look that retires it.
//!
//! Four parts, read top-down: this module, the loop (signals, one drain task per sale with
//! work, backoff, shutdown); `look`, the look at the active set (claims, backlogs, retiring);
//! [`stream`], the Redis side (read, reclaim, ack, dead letter, backlog); [`insert`], the
//! MariaDB side (the batch, isolating refused rows, giving up on poison).

pub mod insert;
mod look;
pub mod stream;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mysql_async::Pool;
use tokio::sync::watch;

use crate::buy::sale_rows;
use crate::buy::sales::Sale;
use crate::metrics::Metrics;
use crate::store::activity::Activity;
use crate::store::keys::SaleKeys;
use crate::store::redis_conn::{CallError, Redis};
pub use insert::insert_batch;
pub use insert::WriteError;
use insert::{Insert, Inserter};
pub use stream::QueuedOrder;
use stream::{Entry, Stream};

#[derive(Clone, Debug)]
pub struct WriterConfig {
    pub batch: usize,
    /// How often the writer looks at the active set.
    pub look: Duration,
    pub claim_idle: Duration,
    pub mysql_timeout: Duration,
    /// A row MariaDB refuses this many times is dead-lettered.
    pub max_failures: u32,
    /// Inserts only under the current generation (`store::fence`); off only to measure.
    pub fence: bool,
    /// This writer's name in the consumer group; unique per process.
    pub consumer: String,
}

pub struct Writer {
    pub redis: Redis,
    pub db: Pool,
    pub cfg: WriterConfig,
    pub metrics: Arc<Metrics>,
    /// This backend's signals (sales it queued orders in) and the active set's protocol.
    pub activity: Arc<Activity>,
    /// Sales whose streams this writer drains now, and whether a signal came meanwhile.
    drains: Mutex<HashMap<u64, bool>>,
    /// Sales already loaded from MariaDB (what a row needs: price, pay window).
    sales: Mutex<HashMap<u64, Arc<Sale>>>,
    /// Sales with orders in Redis that MariaDB does not know (reported once).
    unknown: Mutex<std::collections::HashSet<u64>>,
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
    pub fn new(
        redis: Redis,
        db: Pool,
        cfg: WriterConfig,
        metrics: Arc<Metrics>,
        activity: Arc<Activity>,
    ) -> Writer {
        Writer {
            redis,
            db,
            cfg,
            metrics,
            activity,
            drains: Mutex::new(HashMap::new()),
            sales: Mutex::new(HashMap::new()),
            unknown: Mutex::new(std::collections::HashSet::new()),
        }
    }

    /// Runs until `shutdown` turns true, then drains every busy sale's stream (the last look
    /// begins after the shutdown was seen, so it also covers orders queued just before).
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut looks = look::Looks::default();
        let mut first = true;
        let mut last_look: Option<Instant> = None;
        loop {
            let stopping = *shutdown.borrow();
            for sale in self.activity.take_queued() {
                self.drain(sale, &shutdown);
            }
            if stopping || last_look.is_none_or(|t| t.elapsed() >= self.cfg.look) {
                last_look = Some(Instant::now());
                if let Err(e) = self.look(&mut looks, first || stopping, &shutdown).await {
                    eprintln!("writer: looking at the active set failed: {e}");
                } else {
                    first = false;
                }
            }
            if stopping {
                break;
            }
            let wait = self
                .cfg
                .look
                .saturating_sub(last_look.map_or(Duration::ZERO, |t| t.elapsed()));
            tokio::select! {
                _ = self.activity.wait_queued() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
        }
        // Every drain task ends once its stream is empty (or at once on a failure).
        while !self.lock_drains().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn lock_drains(&self) -> std::sync::MutexGuard<'_, HashMap<u64, bool>> {
        self.drains.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes sure this sale's stream is being drained: starts a task, or tells the running
    /// one to read once more before it ends (decided under one lock: no signal is lost).
    fn drain(self: &Arc<Self>, sale_id: u64, shutdown: &watch::Receiver<bool>) {
        {
            let mut drains = self.lock_drains();
            if let Some(again) = drains.get_mut(&sale_id) {
                *again = true;
                return;
            }
            drains.insert(sale_id, false);
        }
        let (w, sd) = (self.clone(), shutdown.clone());
        tokio::spawn(async move { w.drain_loop(sale_id, sd).await });
    }

    /// Whether the drain of `sale_id` may end: yes, and it leaves the map, unless a signal
    /// came since it last read.
    fn drain_done(&self, sale_id: u64) -> bool {
        let mut drains = self.lock_drains();
        match drains.get_mut(&sale_id) {
            Some(again) if *again => {
                *again = false;
                false
            }
            _ => {
                drains.remove(&sale_id);
                true
            }
        }
    }

    /// The sale a stream belongs to, from MariaDB once (None: unknown or MariaDB down; the
    /// entries stay in the stream and a later look tries again).
    async fn sale(&self, sale_id: u64) -> Option<Arc<Sale>> {
        if let Some(s) = self.lock_sales().get(&sale_id) {
            return Some(s.clone());
        }
        match sale_rows::load(&self.db, sale_id).await {
            Ok(Some(sale)) => {
                let sale = Arc::new(sale);
                self.lock_sales().insert(sale_id, sale.clone());
                Some(sale)
            }
            Ok(None) => {
                // Once per sale and process: a later look finds it again and again.
                let mut unknown = self.unknown.lock().unwrap_or_else(|p| p.into_inner());
                if unknown.len() < 10_000 && unknown.insert(sale_id) {
                    eprintln!("writer: sale {sale_id}: its stream has orders but MariaDB has no such sale; left in the stream");
                }
                None
            }
            Err(e) => {
                self.metrics
                    .mysql_errors
                    .with_label_values(&["load_sale"])
                    .inc();
                eprintln!("writer: sale {sale_id}: loading it failed: {e}");
                None
            }
        }
    }

    fn lock_sales(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Sale>>> {
        let mut sales = self.sales.lock().unwrap_or_else(|p| p.into_inner());
        if sales.len() > 100_000 {
            sales.clear();
        }
        sales
    }

    /// The generation a batch is read under; with the fence off, one no rebuild reaches.
    async fn generation(&self, stream: &Stream<'_>) -> Result<u64, CallError> {
        if self.cfg.fence {
            stream.generation().await
        } else {
            Ok(u64::from(u32::MAX))
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

    /// One sale's stream: read, write, acknowledge, until nothing new is there; after a
    /// failed write, this writer's own pending entries first, with backoff. Ends when the
    /// stream is drained (or at once on a failure during shutdown: what was read stays
    /// pending and is claimed later).
    async fn drain_loop(self: Arc<Self>, sale_id: u64, shutdown: watch::Receiver<bool>) {
        let mut backoff = Backoff::new();
        let Some(sale) = self.sale(sale_id).await else {
            self.lock_drains().remove(&sale_id);
            return;
        };
        let stream = self.stream(sale_id);
        let inserter = self.inserter();
        // Our own pending list first: after a failed insert it holds what to retry.
        let mut retry_own = true;
        loop {
            let stopping = *shutdown.borrow();
            let from = if retry_own { "0" } else { ">" };
            let read = async {
                Ok::<_, CallError>((self.generation(&stream).await?, stream.read(from).await?))
            };
            let (gen, entries) = match read.await {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("writer: sale {sale_id}: reading the stream failed: {e}");
                    if stopping {
                        self.lock_drains().remove(&sale_id);
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
                if self.drain_done(sale_id) {
                    return;
                }
                continue;
            }
            match write(&stream, &inserter, &sale, gen, entries).await {
                Ok(_) => backoff.reset(),
                Err(e) => {
                    eprintln!("writer: sale {sale_id}: writing a batch failed, will retry: {e}");
                    retry_own = true;
                    if stopping {
                        self.lock_drains().remove(&sale_id);
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
    gen: u64,
    entries: Vec<Entry>,
) -> Result<u64, WriteError> {
    if entries.is_empty() {
        return Ok(0);
    }
    let (orders, poison) = stream::parse(entries);
    if !poison.is_empty() {
        stream
            .dead_letter(&poison)
            .await
            .map_err(|e| WriteError::Redis("dead-lettering", e))?;
    }
    if orders.is_empty() {
        return Ok(0);
    }
    let inserted = match inserter.insert(sale, &orders, gen).await {
        Ok(n) => n,
        Err(Insert::Down(e)) => return Err(e),
        Err(Insert::Refused(e)) => {
            eprintln!(
                "writer: sale {}: MariaDB refused a batch ({e}); inserting its rows one by one",
                sale.id
            );
            return inserter.isolate(stream, sale, orders, gen).await;
        }
    };
    // A failure here replays the batch later, harmlessly (the insert is idempotent).
    stream
        .ack(&orders)
        .await
        .map_err(|e| WriteError::Redis("acknowledging", e))?;
    Ok(inserted)
}
