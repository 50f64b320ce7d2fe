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
    let now = crate::clock::now_ms();
    let result = async {
        // The primaries as they are before the rebuild: each is verified for this id only.
        let nodes = crate::store::nodes::Nodes::new(&redis.target);
        let before = nodes.primaries().await?;
        let sales =
            crate::buy::sales::ending_after(db, now - crate::buy::sales::RETENTION_MS).await?;
        let (open, ended): (Vec<_>, Vec<_>) = sales.iter().partition(|s| s.ends_ms > now);
        for sale in &open {
            rebuild(redis, db, metrics, sale).await?;
        }
        // Markers first: a primary with the hot scripts and no marker is then certainly one
        // no recovery has seen (the topology watcher flushes it).
        nodes.mark_and_load(&before).await?;
        live.store(false, Ordering::Release);
        for sale in &ended {
            // Buys are back on; a failure here leaves an ended sale to the reconciler.
            if let Err(e) = rebuild(redis, db, metrics, sale).await {
                eprintln!("recovery: ended sale {}: {e}", sale.id);
            }
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

async fn rebuild(
    redis: &Redis,
    db: &Pool,
    metrics: &Metrics,
    sale: &crate::buy::sales::Sale,
) -> Result<(), TaskError> {
    let r =
        crate::lifecycle::reconcile::rebuild(redis, db, metrics, sale, crate::buy::stock::SEQ_GAP)
            .await?;
    eprintln!(
        "recovery: sale {}: {} live, {} left, {} orders restored from MariaDB",
        sale.id, r.live, r.stock_left, r.orders_added
    );
    Ok(())
}
