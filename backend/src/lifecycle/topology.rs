//! Failover detection: no buy is taken by a primary no backend has verified.
//!
//! A replica promoted by the Cluster (its master died) may lack the last writes (replication
//! is asynchronous: redis/redis#6062), so its order sequence may be behind MariaDB's and its
//! stock too high. What changes on a promotion is its replication id (`master_replid`, new on
//! every promotion and every restart). So:
//!
//! - A recovery ([`crate::lifecycle::recovery`]), after rebuilding every live sale, loads on each primary
//!   a *marker* (a one-line script naming that primary's replication id as it was before the
//!   rebuild began), then the hot scripts, on the primaries only (`store::nodes::Nodes::mark_and_load`).
//!   "Marker for my current id" therefore means "a full rebuild ran after I became what I am";
//!   a replica never has the hot scripts, so a promoted one answers `NOSCRIPT` (a fast 503 and
//!   a recovery) until it is rebuilt. Markers live in the script cache: a restart loses them.
//! - The watcher ([`run`]) lists the primaries (Cluster: `CLUSTER NODES` asked of the nodes
//!   themselves, owners of all 16384 slots, none failing), reads each one's id and asks, in one
//!   `SCRIPT EXISTS`, for its marker and the hot scripts. A primary with the scripts and no
//!   marker (scripts that came from elsewhere) is flushed, so it too answers `NOSCRIPT`, and a
//!   recovery starts. Several backends may do this at once: every step is idempotent.
//! - A request-path call that meets an outage (a lost connection, a Cluster error, timeouts
//!   that open the breaker), or a watcher pass that finds the topology unsettled (a primary
//!   failing or unreachable), makes this backend *suspect*: its stock-taking writes are refused
//!   (`503 redis_failover`) until a pass that began after the last outage has seen every
//!   primary answer with its marker, and the recovery's live phase is over.
//!
//! The watcher talks to each node over a connection of its own (`store::nodes`), not through the
//! Cluster client, whose slot map may not know a newly promoted node yet.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mysql_async::Pool;
use tokio::sync::watch;

use crate::config::RedisTarget;
use crate::lifecycle::recovery::Recovery;
use crate::metrics::Metrics;
use crate::store::nodes::{lock, Nodes, Primary};
use crate::store::redis_conn::{CallError, Redis};

/// How often the watcher looks when all is well.
pub const PERIOD: Duration = Duration::from_millis(500);
/// How often it looks while the request path is suspect.
const SUSPECT_PERIOD: Duration = Duration::from_millis(100);
/// Bound on one pass.
const PASS_TIMEOUT: Duration = Duration::from_secs(3);

/// What the watcher works with, handed to it like every other duty's dependencies.
pub struct Deps {
    /// The Redis nodes to watch.
    pub target: RedisTarget,
    /// The request path's handle: its suspect state is what the watcher sets and clears.
    pub redis: Redis,
    /// For the recovery it starts.
    pub bg_redis: Redis,
    pub db: Pool,
    pub metrics: Arc<Metrics>,
    pub recovery: Arc<Recovery>,
}

/// What one pass found.
#[derive(Debug, PartialEq, Eq)]
pub enum Pass {
    /// Every primary answered and carries its marker.
    Verified,
    /// These primaries are new or restarted (those with scripts were flushed); a recovery
    /// was started.
    Unverified(Vec<Primary>),
}

/// The watcher: its connections and the ids already seen verified, per address.
pub struct Watcher {
    nodes: Nodes,
    seen: Mutex<HashMap<String, String>>,
    /// The primaries of the last pass, to notice a failover.
    owners: Mutex<Vec<String>>,
}

impl Watcher {
    pub fn new(target: &RedisTarget) -> Watcher {
        Watcher {
            nodes: Nodes::new(target),
            seen: Mutex::new(HashMap::new()),
            owners: Mutex::new(Vec::new()),
        }
    }

    /// One look at the primaries. An unverified one that has the hot scripts is flushed, so
    /// that no backend's buy lands there before the rebuild, which this starts.
    pub async fn pass(&self, deps: &Deps) -> Result<Pass, CallError> {
        let mut unverified = Vec::new();
        let primaries = self.nodes.primaries().await?;
        self.note_owners(&primaries);
        for p in primaries {
            if lock(&self.seen).get(&p.addr) == Some(&p.replid) {
                continue;
            }
            let (marked, scripts) = self.nodes.state(&p).await?;
            if marked {
                lock(&self.seen).insert(p.addr.clone(), p.replid.clone());
                continue;
            }
            if scripts {
                eprintln!(
                    "topology: primary {} (replid {}) has scripts but no marker: flushing them, rebuilding",
                    p.addr, p.replid
                );
                let _: redis::Value = self
                    .nodes
                    .cmd(&p.addr, redis::cmd("SCRIPT").arg("FLUSH"))
                    .await?;
                deps.metrics.failovers_detected.inc();
            }
            unverified.push(p);
        }
        if unverified.is_empty() {
            return Ok(Pass::Verified);
        }
        deps.recovery
            .trigger(&deps.bg_redis, &deps.db, &deps.metrics);
        Ok(Pass::Unverified(unverified))
    }

    /// Other primaries than last time (a failover): every handle's slot map is renewed.
    fn note_owners(&self, primaries: &[Primary]) {
        let now: Vec<String> = primaries.iter().map(|p| p.addr.clone()).collect();
        let mut last = lock(&self.owners);
        if !last.is_empty() && *last != now {
            eprintln!("topology: the primaries are now {now:?} (were {last:?}): slot maps renewed");
            crate::store::redis_conn::slot_owners_changed();
        }
        *last = now;
    }
}

/// The watcher task: a pass every [`PERIOD`], every [`SUSPECT_PERIOD`] while the request
/// path is suspect, and at once when it becomes so. A pass that began after the last outage
/// and finds everything verified (and no live rebuild under way) lets buys out again.
pub async fn run(deps: Deps, mut stop: watch::Receiver<bool>) {
    let watcher = Watcher::new(&deps.target);
    loop {
        let period = if deps.redis.is_suspect() {
            SUSPECT_PERIOD
        } else {
            PERIOD
        };
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = deps.redis.wake.notified() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        let since = deps.redis.outages();
        let pass = tokio::time::timeout(PASS_TIMEOUT, watcher.pass(&deps)).await;
        match pass.unwrap_or(Err(CallError::Timeout(PASS_TIMEOUT))) {
            Ok(Pass::Verified) => {
                if !deps.recovery.rebuilding_live() {
                    deps.redis.topology_verified(since);
                }
            }
            Ok(Pass::Unverified(_)) => {}
            Err(e) => {
                // Unsettled or unreachable: hold buys until a pass sees it settled.
                if !deps.redis.is_suspect() {
                    eprintln!("topology: {e}; buys wait for the next verified pass");
                }
                deps.redis.outage();
            }
        }
    }
}
