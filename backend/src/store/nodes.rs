//! Direct connections to the Redis nodes, one by one: which primaries own the slots, each
//! one's replication id, and the *marker* script a recovery loads on a primary it rebuilt
//! (see `lifecycle::topology` for why). Not through the Cluster client, whose slot map may not
//! know a newly promoted node yet. Used by the recovery (marks what it rebuilt) and by the
//! topology watcher (checks the marks).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Cmd, Script};

use crate::config::RedisTarget;
use crate::store::redis_conn::CallError;

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
    pub async fn cmd<T: redis::FromRedisValue>(
        &self,
        addr: &str,
        cmd: &Cmd,
    ) -> Result<T, CallError> {
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
        for sha in crate::store::scripts::hot_hashes() {
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
            for src in crate::store::scripts::hot_sources() {
                let _: String = self
                    .cmd(&p.addr, redis::cmd("SCRIPT").arg("LOAD").arg(*src))
                    .await?;
            }
        }
        Ok(())
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
