//! Failover detection: no buy is taken by a primary no backend has verified.
//!
//! A replica promoted by the Cluster (its master died) may lack the last writes (replication
//! is asynchronous: redis/redis#6062), so its order sequence may be behind MariaDB's and its
//! stock too high. What changes on a promotion is its replication id (`master_replid`, new on
//! every promotion and every restart). So:
//!
//! - A recovery ([`crate::recovery`]), after rebuilding every live sale, loads on each primary
//!   a *marker* (a one-line script naming that primary's replication id as it was before the
//!   rebuild began), then the hot scripts, on the primaries only ([`Nodes::mark_and_load`]).
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
//! The watcher talks to each node over a connection of its own ([`Nodes`]), not through the
//! Cluster client, whose slot map may not know a newly promoted node yet.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Cmd, Script};
use tokio::sync::watch;

use crate::app::App;
use crate::config::RedisTarget;
use crate::redis_conn::CallError;

/// How often the watcher looks when all is well.
pub const PERIOD: Duration = Duration::from_millis(500);
/// How often it looks while the request path is suspect.
const SUSPECT_PERIOD: Duration = Duration::from_millis(100);
/// Bound on one pass.
const PASS_TIMEOUT: Duration = Duration::from_secs(3);

/// One primary: its address (`host:port`; a standalone server's URL) and replication id.
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

fn unsettled(why: &str) -> CallError {
    CallError::Redis(redis::RedisError::from((
        redis::ErrorKind::ClusterDown,
        "topology not settled",
        why.to_string(),
    )))
}

/// The addresses of the primaries that own slots, from `CLUSTER NODES`: an error unless they
/// own all 16384 slots and none of them is failing (`fail` or `fail?`). Slots being imported
/// or migrated (`[1234->-id]`, `[1234-<-id]`) are not ownership.
pub fn slot_owners(nodes: &str) -> Result<Vec<String>, String> {
    let mut owners = Vec::new();
    let mut covered: u32 = 0;
    for line in nodes.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            return Err(format!("CLUSTER NODES: unreadable line {line:?}"));
        }
        let flags: Vec<&str> = f[2].split(',').collect();
        let mut slots: u32 = 0;
        for range in f[8..].iter().filter(|r| !r.starts_with('[')) {
            let (lo, hi) = range.split_once('-').unwrap_or((range, range));
            match (lo.parse::<u32>(), hi.parse::<u32>()) {
                (Ok(lo), Ok(hi)) if lo <= hi && hi < 16384 => slots += hi - lo + 1,
                _ => return Err(format!("CLUSTER NODES: unreadable slots {range:?}")),
            }
        }
        if !flags.contains(&"master") || slots == 0 {
            continue;
        }
        if flags.iter().any(|&x| x == "fail" || x == "fail?") {
            return Err(format!("primary {} is failing", f[1]));
        }
        // ip:port@cport[,hostname]
        let addr = f[1].split('@').next().unwrap_or(f[1]);
        if addr.starts_with(':') {
            return Err(format!("primary {} has no address yet", f[0]));
        }
        owners.push(addr.to_string());
        covered += slots;
    }
    if covered != 16384 {
        return Err(format!("CLUSTER NODES: {covered} of 16384 slots owned"));
    }
    owners.sort();
    Ok(owners)
}

/// Bound on one call to one node.
const NODE_TIMEOUT: Duration = Duration::from_secs(1);

/// Direct connections to the Redis nodes by address (`host:port`; a standalone server by its
/// URL), for the topology's own calls.
pub struct Nodes {
    cluster: bool,
    /// Where to ask for `CLUSTER NODES`: the configured seeds, after the last owners seen.
    seeds: Vec<String>,
    known: Mutex<Vec<String>>,
    conns: Mutex<HashMap<String, MultiplexedConnection>>,
}

impl Nodes {
    pub fn new(target: &RedisTarget) -> Nodes {
        let (cluster, seeds) = match target {
            RedisTarget::Single(url) => (false, vec![url.clone()]),
            RedisTarget::Cluster(urls) => (
                true,
                urls.iter()
                    .map(|u| {
                        let u = u.strip_prefix("redis://").unwrap_or(u);
                        u.trim_end_matches('/').to_string()
                    })
                    .collect(),
            ),
        };
        Nodes {
            cluster,
            seeds,
            known: Mutex::new(Vec::new()),
            conns: Mutex::new(HashMap::new()),
        }
    }

    /// One command on one node, bounded; a failed connection is dropped (the next call
    /// connects afresh).
    async fn cmd<T: redis::FromRedisValue>(&self, addr: &str, cmd: &Cmd) -> Result<T, CallError> {
        let cached = lock(&self.conns).get(addr).cloned();
        let work = async {
            let mut conn = match cached {
                Some(c) => c,
                None => {
                    let url = if addr.contains("://") {
                        addr.to_string()
                    } else {
                        format!("redis://{addr}")
                    };
                    let config = AsyncConnectionConfig::new()
                        .set_connection_timeout(NODE_TIMEOUT)
                        .set_response_timeout(NODE_TIMEOUT);
                    let c = redis::Client::open(url)?
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?;
                    lock(&self.conns).insert(addr.to_string(), c.clone());
                    c
                }
            };
            cmd.query_async::<T>(&mut conn).await
        };
        let r = match tokio::time::timeout(NODE_TIMEOUT, work).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(CallError::Redis(e)),
            Err(_) => Err(CallError::Timeout(NODE_TIMEOUT)),
        };
        if r.is_err() {
            lock(&self.conns).remove(addr);
        }
        r
    }

    /// The slot owners, from the first node that answers `CLUSTER NODES`.
    async fn owners(&self) -> Result<Vec<String>, CallError> {
        let mut ask = lock(&self.known).clone();
        for s in &self.seeds {
            if !ask.contains(s) {
                ask.push(s.clone());
            }
        }
        let mut last = unsettled("no node to ask");
        for addr in &ask {
            match self
                .cmd::<String>(addr, redis::cmd("CLUSTER").arg("NODES"))
                .await
            {
                Ok(text) => {
                    let owners = slot_owners(&text).map_err(|e| unsettled(&e))?;
                    *lock(&self.known) = owners.clone();
                    return Ok(owners);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// The primaries now, each with its replication id. Fails while a slot-owning primary
    /// is failing or does not answer (a failover not settled yet).
    pub async fn primaries(&self) -> Result<Vec<Primary>, CallError> {
        let addrs = if self.cluster {
            self.owners().await?
        } else {
            self.seeds.clone()
        };
        let mut out = Vec::with_capacity(addrs.len());
        for addr in addrs {
            let info: String = self
                .cmd(&addr, redis::cmd("INFO").arg("replication"))
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

    /// Whether the primary has its marker, and whether it has any hot script (one call).
    pub async fn state(&self, p: &Primary) -> Result<(bool, bool), CallError> {
        let mut cmd = redis::cmd("SCRIPT");
        cmd.arg("EXISTS").arg(marker_hash(&p.replid));
        for sha in crate::stock::hot_hashes() {
            cmd.arg(sha);
        }
        let found: Vec<i64> = self.cmd(&p.addr, &cmd).await?;
        Ok((
            found.first() == Some(&1),
            found.iter().skip(1).any(|f| *f == 1),
        ))
    }

    /// After a rebuild: each primary's marker, then the hot scripts (on primaries only).
    pub async fn mark_and_load(&self, rebuilt: &[Primary]) -> Result<(), CallError> {
        for p in rebuilt {
            let _: String = self
                .cmd(
                    &p.addr,
                    redis::cmd("SCRIPT").arg("LOAD").arg(marker(&p.replid)),
                )
                .await?;
        }
        for p in rebuilt {
            for src in crate::stock::hot_sources() {
                let _: String = self
                    .cmd(&p.addr, redis::cmd("SCRIPT").arg("LOAD").arg(*src))
                    .await?;
            }
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
}

impl Watcher {
    pub fn new(target: &RedisTarget) -> Watcher {
        Watcher {
            nodes: Nodes::new(target),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// One look at the primaries. An unverified one that has the hot scripts is flushed, so
    /// that no backend's buy lands there before the rebuild, which this starts.
    pub async fn pass(&self, app: &Arc<App>) -> Result<Pass, CallError> {
        let mut unverified = Vec::new();
        for p in self.nodes.primaries().await? {
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
                app.metrics.failovers_detected.inc();
            }
            unverified.push(p);
        }
        if unverified.is_empty() {
            return Ok(Pass::Verified);
        }
        app.recovery.trigger(&app.bg_redis, &app.db, &app.metrics);
        Ok(Pass::Unverified(unverified))
    }
}

/// The watcher task: a pass every [`PERIOD`], every [`SUSPECT_PERIOD`] while the request
/// path is suspect, and at once when it becomes so. A pass that began after the last outage
/// and finds everything verified (and no live rebuild under way) lets buys out again.
pub async fn run(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let watcher = Watcher::new(&app.cfg.redis);
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
        let since = app.redis.outages();
        let pass = tokio::time::timeout(PASS_TIMEOUT, watcher.pass(&app)).await;
        match pass.unwrap_or(Err(CallError::Timeout(PASS_TIMEOUT))) {
            Ok(Pass::Verified) => {
                if !app.recovery.rebuilding_live() {
                    app.redis.topology_verified(since);
                }
            }
            Ok(Pass::Unverified(_)) => {}
            Err(e) => {
                // Unsettled or unreachable: hold buys until a pass sees it settled.
                if !app.redis.is_suspect() {
                    eprintln!("topology: {e}; buys wait for the next verified pass");
                }
                app.redis.outage();
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

    #[test]
    fn slots_in_migration_are_not_ownership_and_every_slot_must_be_owned() {
        let migrating = SETTLED.replace("connected 0-5460", "connected 0-5460 [5461->-b2]");
        assert_eq!(slot_owners(&migrating).unwrap().len(), 3);
        let gap = SETTLED.replace("connected 0-5460", "connected 0-5459");
        assert!(slot_owners(&gap).unwrap_err().contains("16383 of 16384"));
        let single = "a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-16383 \n";
        assert_eq!(slot_owners(single).unwrap(), ["127.0.0.1:7001"]);
        let no_addr = ":7001@17001 x";
        assert!(slot_owners(&format!("a1 {no_addr}")).is_err());
    }
}
