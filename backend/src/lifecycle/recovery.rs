//! Recovery after Redis restarted or failed over.
//!
//! Such a Redis may have lost its last writes (with `appendfsync everysec`, up to a second;
//! without AOF, everything): orders MariaDB already holds may be missing from its ledger and
//! its order sequence may be behind, so a new reservation could reuse an order number. It has
//! certainly lost its script cache, which is how it is recognised: the hot scripts are called
//! by SHA and never loaded on the fly, so after a restart every buy answers `NOSCRIPT` (and
//! the shopper a fast `503`) until a recovery has rebuilt every live sale from its ledger and
//! MariaDB ([`crate::lifecycle::reconcile::rebuild`]) and then loaded the scripts again.
//!
//! Several backends may recover at once; the rebuild is atomic and idempotent, so that is
//! safe. A Redis that lost a sale's keys but kept its scripts (a flush) shows up as "stock not
//! loaded" and is recovered the same way.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mysql_async::Pool;

use crate::error::TaskError;
use crate::metrics::Metrics;
use crate::store::redis_conn::{CallError, Redis};

#[derive(Default)]
pub struct Recovery {
    running: AtomicBool,
    /// Set while a recovery rebuilds the live sales (buys wait for it).
    live: AtomicBool,
}

impl Recovery {
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    /// Whether a recovery is rebuilding the sales that take buys (the ended ones come after).
    pub fn rebuilding_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Recovers now, unless a recovery is already running in this process (then returns
    /// `Ok(false)` at once).
    pub async fn run(
        &self,
        redis: &Redis,
        db: &Pool,
        metrics: &Metrics,
    ) -> Result<bool, TaskError> {
        if self.running.swap(true, Ordering::AcqRel) {
            return Ok(false);
        }
        let r = recover(redis, db, metrics, &self.live).await;
        self.live.store(false, Ordering::Release);
        self.running.store(false, Ordering::Release);
        r.map(|_| true)
    }

    /// Recovers if Redis does not know the scripts (at start, and on every lifecycle pass).
    pub async fn if_needed(
        &self,
        redis: &Redis,
        db: &Pool,
        metrics: &Metrics,
    ) -> Result<bool, TaskError> {
        if self.is_running() || scripts_loaded(redis).await? {
            return Ok(false);
        }
        self.run(redis, db, metrics).await
    }

    /// Starts a recovery in the background unless one is running in this process.
    pub fn trigger(self: &Arc<Self>, redis: &Redis, db: &Pool, metrics: &Arc<Metrics>) {
        if self.is_running() {
            return;
        }
        let (me, redis, db, metrics) = (self.clone(), redis.clone(), db.clone(), metrics.clone());
        tokio::spawn(async move {
            if let Err(e) = me.run(&redis, &db, &metrics).await {
                eprintln!("recovery: {e} (will retry)");
            }
        });
    }
}

/// Whether Redis knows the hot scripts (on a Cluster: every primary does).
pub async fn scripts_loaded(redis: &Redis) -> Result<bool, CallError> {
    let mut cmd = redis::cmd("SCRIPT");
    cmd.arg("EXISTS");
    for sha in crate::store::scripts::hot_hashes() {
        cmd.arg(sha);
    }
    let found: Vec<i64> = redis.cmd(cmd).await?;
    Ok(!found.is_empty() && found.iter().all(|f| *f == 1))
}

/// Rebuilds every sale that has not ended, marks each primary as rebuilt and loads the
/// scripts on it (buys resume: an ended sale takes no buys, so it may wait), then rebuilds the
/// sales that ended less than a day ago. `live` is set until buys may resume.
pub async fn recover(
    redis: &Redis,
    db: &Pool,
    metrics: &Metrics,
    live: &AtomicBool,
) -> Result<usize, TaskError> {
    live.store(true, Ordering::Release);
    redis.renew_now_if_stale().await;
    let now = crate::clock::now_ms();
    let result = async {
        // The primaries as they are before the rebuild: each is verified for this id only.
        let nodes = crate::store::nodes::Nodes::new(&redis.target);
        let before = nodes.primaries().await?;
        let sales =
            crate::buy::sale_rows::ending_after(db, now - crate::buy::sales::RETENTION_MS).await?;
        let (open, ended): (Vec<_>, Vec<_>) = sales.iter().partition(|s| s.ends_ms > now);
        let rebuilt = rebuild(redis, db, metrics, &open).await?;
        // Markers first: a primary with the hot scripts and no marker is then certainly one
        // no recovery has seen (the topology watcher flushes it).
        nodes.mark_and_load(&before).await?;
        live.store(false, Ordering::Release);
        after_rebuild(redis, &rebuilt).await?;
        // Buys are back on; a failure here leaves the ended sales to the reconciler.
        match rebuild(redis, db, metrics, &ended).await {
            Ok(done) => after_rebuild(redis, &done).await?,
            Err(e) => eprintln!("recovery: ended sales: {e}"),
        }
        Ok(sales.len())
    };
    let r = result.await;
    live.store(false, Ordering::Release);
    metrics
        .recoveries
        .with_label_values(&[if r.is_ok() { "ok" } else { "failed" }])
        .inc();
    r
}

/// Rebuilds the sales in batches (see `reconcile::rebuild_many`); logs the ones that held
/// orders.
async fn rebuild(
    redis: &Redis,
    db: &Pool,
    metrics: &Metrics,
    sales: &[&crate::buy::sales::Sale],
) -> Result<Vec<(u64, crate::buy::stock::Repaired)>, TaskError> {
    let done = crate::lifecycle::reconcile::rebuild_many(
        redis,
        db,
        metrics,
        sales,
        crate::buy::stock::SEQ_GAP,
    )
    .await?;
    for (id, r) in done
        .iter()
        .filter(|(_, r)| r.live > 0 || r.orders_added > 0)
    {
        eprintln!(
            "recovery: sale {id}: {} live, {} left, {} orders restored from MariaDB",
            r.live, r.stock_left, r.orders_added
        );
    }
    eprintln!("recovery: {} sales rebuilt", done.len());
    Ok(done)
}

/// After a rebuild: the sales whose streams still hold orders are registered as busy (a
/// failover may have lost the active set's last writes: their writers must find them), and
/// the edges are told of every sale that holds orders (its stock was recounted).
async fn after_rebuild(
    redis: &Redis,
    rebuilt: &[(u64, crate::buy::stock::Repaired)],
) -> Result<(), TaskError> {
    use crate::store::keys::SaleKeys;
    let backlogs = redis
        .each(
            rebuilt
                .iter()
                .map(|(id, _)| crate::writer::stream::backlog_cmd(&SaleKeys::new(*id)))
                .collect(),
        )
        .await;
    let pending: Vec<u64> = rebuilt
        .iter()
        .zip(backlogs)
        .filter(|(_, b)| {
            b.as_ref()
                .ok()
                .and_then(crate::writer::stream::group_backlog)
                .is_some_and(|n| n > 0)
        })
        .map(|((id, _), _)| *id)
        .collect();
    for chunk in pending.chunks(1000) {
        crate::store::activity::register(redis, chunk, crate::store::activity::LEASE_MS, 0).await?;
    }
    let sold: Vec<u64> = rebuilt
        .iter()
        .filter(|(_, r)| r.live > 0)
        .map(|(id, _)| *id)
        .collect();
    for chunk in sold.chunks(1000) {
        crate::store::changes::announce(redis, chunk).await?;
    }
    Ok(())
}
