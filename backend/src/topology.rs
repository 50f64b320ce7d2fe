//! Failover detection: no buy is taken by a primary no backend has verified.
//!
//! A replica promoted by the Cluster (its master died) may lack the last writes (replication
//! is asynchronous: redis/redis#6062), and it already knows our scripts (`SCRIPT LOAD`
//! reaches replicas), so the `NOSCRIPT` that reveals a restarted Redis ([`crate::recovery`])
//! never comes. What does change is its replication id (`master_replid`, new on every
//! promotion and every restart). So:
//!
//! - A recovery, after rebuilding every live sale and before loading the hot scripts again,
//!   loads on each primary a *marker*: a one-line script whose text names that primary's
//!   replication id as it was before the rebuild began. "This primary has a marker for its
//!   current id" therefore means "a full rebuild ran after it became what it is", and "it has
//!   the hot scripts but no marker" means no recovery has seen it. Markers live in the node's
//!   script cache, so a restart loses them, and a promotion changes the id they must name.
//! - The watcher ([`run`]) lists the primaries (Cluster: `CLUSTER NODES` from the Cluster
//!   itself, not this client's possibly stale slot map), reads each one's id and looks for
//!   its marker. A primary without one gets its scripts flushed (every backend's buys there
//!   now answer `NOSCRIPT`, i.e. `503`, and trigger the existing recovery) and a recovery is
//!   started. Several backends may do this at once; both steps are idempotent.
//! - A call of this backend that meets an outage (a node down, a failover under way) marks
//!   the request path's handle *suspect*: its stock-taking writes are refused (`503`) until a
//!   watcher pass has seen every primary answer and carry its marker. So a backend that
//!   noticed the failure never sends a buy to the promoted replica before it is rebuilt; one
//!   that noticed nothing (idle during the failover, then redirected by `MOVED`) is covered by
//!   the periodic pass, within [`PERIOD`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::Script;
use tokio::sync::watch;

use crate::app::App;
use crate::redis_conn::{CallError, Redis};

/// How often the watcher looks when all is well.
pub const PERIOD: Duration = Duration::from_millis(500);
/// How often it looks while the request path is suspect.
const SUSPECT_PERIOD: Duration = Duration::from_millis(100);
/// Bound on one pass, and on reading the primaries.
const PASS_TIMEOUT: Duration = Duration::from_secs(3);
const PRIMARIES_TIMEOUT: Duration = Duration::from_secs(2);

/// One primary: its address (`host:port`; `""` for a standalone server) and replication id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Primary {
    pub addr: String,
    pub replid: String,
}

/// The marker script for a replication id.
fn marker(replid: &str) -> String {
    format!("return 'seckill: primary verified, replid {replid}'")
}

fn marker_hash(replid: &str) -> String {
    Script::new(&marker(replid)).get_hash().to_string()
}

/// The primaries as the Redis deployment sees them now, each with its replication id. Fails
/// while a slot-owning primary is failing or does not answer (a failover not settled yet).
pub async fn primaries(redis: &Redis) -> Result<Vec<Primary>, CallError> {
    tokio::time::timeout(PRIMARIES_TIMEOUT, read_primaries(redis))
        .await
        .unwrap_or(Err(CallError::Timeout(PRIMARIES_TIMEOUT)))
}

async fn read_primaries(redis: &Redis) -> Result<Vec<Primary>, CallError> {
    let addrs = if redis.is_cluster() {
        let nodes: String = redis
            .cmd(redis::cmd("CLUSTER").arg("NODES").clone())
            .await?;
        slot_owners(&nodes).map_err(|e| unsettled(&e))?
    } else {
        vec![String::new()]
    };
    let mut out = Vec::with_capacity(addrs.len());
    for addr in addrs {
        let info: String = redis
            .cmd_on(&addr, redis::cmd("INFO").arg("replication").clone())
            .await?;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
                .map(str::to_string)
        };
        if field("role").as_deref() != Some("master") {
            return Err(unsettled(&format!("{addr} is not a primary (yet)")));
        }
        let replid = field("master_replid")
            .ok_or_else(|| unsettled(&format!("{addr}: no master_replid")))?;
        out.push(Primary { addr, replid });
    }
    Ok(out)
}

fn unsettled(why: &str) -> CallError {
    CallError::Redis(redis::RedisError::from((
        redis::ErrorKind::ClusterDown,
        "topology not settled",
        why.to_string(),
    )))
}

/// The addresses of the primaries that own slots, from `CLUSTER NODES`; an error if one of
/// them is failing (`fail` or `fail?`): its slots have no verified owner yet.
pub fn slot_owners(nodes: &str) -> Result<Vec<String>, String> {
    let mut owners = Vec::new();
    for line in nodes.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            return Err(format!("CLUSTER NODES: unreadable line {line:?}"));
        }
        let flags: Vec<&str> = f[2].split(',').collect();
        let owns_slots = f.len() > 8;
        if !flags.contains(&"master") || !owns_slots {
            continue;
        }
        if flags.iter().any(|&x| x == "fail" || x == "fail?") {
            return Err(format!("primary {} is failing", f[1]));
        }
        // ip:port@cport[,hostname]
        let addr = f[1].split('@').next().unwrap_or(f[1]);
        owners.push(addr.to_string());
    }
    if owners.is_empty() {
        return Err("CLUSTER NODES: no primary owns slots".into());
    }
    owners.sort();
    Ok(owners)
}

/// Loads each primary's marker (after a rebuild that began when it had that id).
pub async fn mark(redis: &Redis, verified: &[Primary]) -> Result<(), CallError> {
    for p in verified {
        let _: String = redis
            .cmd_on(
                &p.addr,
                redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(marker(&p.replid))
                    .clone(),
            )
            .await?;
    }
    Ok(())
}

async fn has_marker(redis: &Redis, p: &Primary) -> Result<bool, CallError> {
    let found: Vec<i64> = redis
        .cmd_on(
            &p.addr,
            redis::cmd("SCRIPT")
                .arg("EXISTS")
                .arg(marker_hash(&p.replid))
                .clone(),
        )
        .await?;
    Ok(found.first() == Some(&1))
}

async fn has_scripts(redis: &Redis, p: &Primary) -> Result<bool, CallError> {
    let mut cmd = redis::cmd("SCRIPT");
    cmd.arg("EXISTS");
    for sha in crate::stock::hot_hashes() {
        cmd.arg(sha);
    }
    let found: Vec<i64> = redis.cmd_on(&p.addr, cmd).await?;
    Ok(found.contains(&1))
}

/// What one pass found.
#[derive(Debug, PartialEq, Eq)]
pub enum Pass {
    /// Every primary answered and carries its marker.
    Verified,
    /// These primaries are new or restarted: flushed, a recovery started.
    Unverified(Vec<Primary>),
}

/// The watcher's memory: the ids already seen verified, per address (saves a call per pass).
#[derive(Default)]
pub struct Watcher {
    seen: Mutex<HashMap<String, String>>,
}

impl Watcher {
    /// One look at the primaries. Unverified ones have their scripts flushed (if they still
    /// have them) so that no backend's buy lands there before the rebuild, which this starts.
    pub async fn pass(&self, app: &Arc<App>) -> Result<Pass, CallError> {
        let redis = &app.bg_redis;
        let primaries = primaries(redis).await?;
        let mut unverified = Vec::new();
        for p in primaries {
            let known = self.lock().get(&p.addr) == Some(&p.replid);
            if known || has_marker(redis, &p).await? {
                self.lock().insert(p.addr.clone(), p.replid.clone());
            } else {
                unverified.push(p);
            }
        }
        if unverified.is_empty() {
            return Ok(Pass::Verified);
        }
        for p in &unverified {
            if has_scripts(redis, p).await? {
                eprintln!(
                    "topology: primary {} (replid {}) not verified: flushing its scripts, rebuilding",
                    if p.addr.is_empty() { "redis" } else { &p.addr },
                    p.replid
                );
                let _: redis::Value = redis
                    .cmd_on(&p.addr, redis::cmd("SCRIPT").arg("FLUSH").clone())
                    .await?;
                app.metrics.failovers_detected.inc();
            }
        }
        app.recovery.trigger(&app.bg_redis, &app.db, &app.metrics);
        Ok(Pass::Unverified(unverified))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The watcher task: a pass every [`PERIOD`], every [`SUSPECT_PERIOD`] while the request
/// path is suspect, and at once when it becomes so. A pass that finds everything verified
/// lets buys out again.
pub async fn run(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let watcher = Watcher::default();
    loop {
        let period = if app.redis.is_suspect() {
            SUSPECT_PERIOD
        } else {
            PERIOD
        };
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = app.redis.wake.notified() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        // A call to a dead node is retried by the Cluster client until its timeout: bounded
        // here, so the next pass (and the next node asked) comes soon.
        let pass = tokio::time::timeout(PASS_TIMEOUT, watcher.pass(&app)).await;
        match pass.unwrap_or(Err(CallError::Timeout(PASS_TIMEOUT))) {
            Ok(Pass::Verified) => {
                if app.redis.is_suspect() && !app.recovery.is_running() {
                    app.redis.topology_verified();
                }
            }
            Ok(Pass::Unverified(_)) => {}
            Err(e) => {
                if !app.redis.is_suspect() {
                    eprintln!("topology: {e}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::slot_owners;

    const SETTLED: &str = "\
a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7002@17002 master - 0 1 2 connected 5461-10922
c3 127.0.0.1:7003@17003 master - 0 1 3 connected 10923-16383
d4 127.0.0.1:7004@17004 slave a1 0 1 1 connected
";

    #[test]
    fn slot_owners_are_the_masters_with_slots() {
        assert_eq!(
            slot_owners(SETTLED).unwrap(),
            ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"]
        );
    }

    #[test]
    fn a_failing_owner_means_not_settled_and_a_dead_one_without_slots_is_ignored() {
        let failing = SETTLED.replace(
            "b2 127.0.0.1:7002@17002 master",
            "b2 127.0.0.1:7002@17002 master,fail?",
        );
        assert!(slot_owners(&failing).is_err());
        // After the failover: the dead master lost its slots to its promoted replica.
        let after = "\
a1 127.0.0.1:7001@17001 master,fail - 0 0 1 disconnected
d4 127.0.0.1:7004@17004 myself,master - 0 1 4 connected 0-5460
b2 127.0.0.1:7002@17002 master - 0 1 2 connected 5461-10922
c3 127.0.0.1:7003@17003 master - 0 1 3 connected 10923-16383
";
        assert_eq!(
            slot_owners(after).unwrap(),
            ["127.0.0.1:7002", "127.0.0.1:7003", "127.0.0.1:7004"]
        );
        assert!(slot_owners("").is_err());
    }
}
