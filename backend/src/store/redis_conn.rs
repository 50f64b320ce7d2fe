//! One Redis handle for the whole process: a standalone server through a multiplexed
//! connection, or a Redis Cluster through `ClusterConnection`, chosen by configuration. Both
//! are cheap to clone; callers never care which it is.
//!
//! A standalone connection that fails (Redis killed, restarted, frozen) is replaced in the
//! background by a fresh one, retried until Redis answers again; calls meanwhile fail fast.
//! (redis-rs's `ConnectionManager` was tried first: after a server restart, calls cut short
//! by our timeouts left it waiting on a dead reconnect.)
//! Every call is bounded by [`Redis::timeout`] and goes through a circuit breaker, so a Redis
//! that is down or frozen costs callers nothing once the breaker is open.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::AsyncConnectionConfig;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};
use tokio::sync::Notify;

use crate::config::RedisTarget;
use crate::store::breaker::Breaker;
use crate::store::keys::key_slot;

#[derive(Clone)]
pub enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Bumped when the topology watcher finds that the slot owners changed (a failover): every
/// Cluster handle then reads its slot map afresh ([`Redis::call`]). The Cluster client refreshes
/// its map on `MOVED` or a broken connection, not when a node merely stops answering: cut off
/// by a partition, an old master would be sent its lost slots' commands (each a timeout) until
/// the cut healed, long after its replica took over.
static SLOT_OWNERS_EPOCH: AtomicU64 = AtomicU64::new(0);

/// The slot owners changed: every Cluster handle renews its connection before long.
pub fn slot_owners_changed() {
    SLOT_OWNERS_EPOCH.fetch_add(1, Ordering::AcqRel);
}

/// Most commands [`Redis::each`] has in flight at once.
pub const EACH_IN_FLIGHT: usize = 512;

/// A Redis handle plus the bound on each call.
#[derive(Clone)]
pub struct Redis {
    conn: Arc<RwLock<Conn>>,
    /// Set for a standalone server: how to connect again.
    client: Option<redis::Client>,
    reconnecting: Arc<AtomicBool>,
    /// The [`SLOT_OWNERS_EPOCH`] this handle's Cluster connection was made in.
    epoch: Arc<AtomicU64>,
    pub timeout: Duration,
    pub breaker: Arc<Breaker>,
    /// Suspect after a call met an outage (a lost connection, a Cluster error, or timeouts
    /// enough to open the breaker: a node down, a failover under way): until the topology
    /// watcher ([`crate::lifecycle::topology`]) has seen every primary reachable and verified, writes that
    /// take stock are refused ([`Redis::writes_allowed`]). Shared by clones.
    /// Outages seen, and the count as of the last verified topology: suspect while the first
    /// is ahead (a pass that began before an outage cannot clear it).
    outages: Arc<AtomicU64>,
    verified: Arc<AtomicU64>,
    /// Wakes the watcher when an outage makes the handle suspect.
    pub wake: Arc<Notify>,
    /// Where it connects (the topology watcher connects to each node itself).
    pub target: RedisTarget,
}

/// Why a Redis call failed: an error reply or lost connection, or no answer in time.
#[derive(Debug)]
pub enum CallError {
    Redis(RedisError),
    Timeout(Duration),
    /// The breaker is open: recent calls failed, this one was not tried.
    Open,
    /// A node failed or a primary changed, and the new topology is not verified yet (see
    /// [`crate::lifecycle::topology`]): nothing was tried.
    Unverified,
    /// The write was done but did not reach `wanted` replicas within `within_ms` (`WAIT`): a
    /// failover now could lose it, so its outcome is unknown to the caller.
    NotReplicated {
        wanted: u32,
        got: i64,
        within_ms: u64,
    },
}

impl CallError {
    /// Redis does not know a script: it restarted or failed over (see `recovery`).
    pub fn is_noscript(&self) -> bool {
        matches!(self, CallError::Redis(e) if e.kind() == redis::ErrorKind::NoScriptError)
    }

    /// An error reply saying the key does not exist (`XINFO` of a missing stream).
    pub fn is_no_such_key(&self) -> bool {
        matches!(self, CallError::Redis(e) if e.to_string().contains("no such key"))
    }

    /// A failure of the dependency (as opposed to an error reply).
    fn is_outage(&self) -> bool {
        match self {
            CallError::Redis(e) => {
                e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.kind() == redis::ErrorKind::BusyLoadingError
                    || e.kind() == redis::ErrorKind::TryAgain
                    || e.kind() == redis::ErrorKind::ClusterDown
            }
            CallError::Timeout(_) => true,
            CallError::Open | CallError::Unverified | CallError::NotReplicated { .. } => false,
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Redis(e) => write!(f, "{e}"),
            CallError::Timeout(d) => write!(f, "no answer within {} ms", d.as_millis()),
            CallError::Open => write!(f, "failing fast: recent calls failed (circuit open)"),
            CallError::Unverified => write!(
                f,
                "a node failed or a primary changed: buys resume once the new primary is verified"
            ),
            CallError::NotReplicated {
                wanted,
                got,
                within_ms,
            } => write!(
                f,
                "the write reached {got} of {wanted} replica(s) within {within_ms} ms (outcome unknown)"
            ),
        }
    }
}

impl std::error::Error for CallError {}

impl From<RedisError> for CallError {
    fn from(e: RedisError) -> Self {
        CallError::Redis(e)
    }
}

async fn connect_single(
    client: &redis::Client,
    timeout: Duration,
) -> Result<MultiplexedConnection, RedisError> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(timeout.max(Duration::from_secs(1)))
        .set_response_timeout(timeout.max(Duration::from_secs(1)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

impl Redis {
    pub async fn connect(target: &RedisTarget, timeout: Duration) -> Result<Redis, RedisError> {
        let (conn, client) = match target {
            RedisTarget::Single(url) => {
                let client = redis::Client::open(url.as_str())?;
                let conn = connect_single(&client, timeout).await?;
                (Conn::Single(conn), Some(client))
            }
            RedisTarget::Cluster(nodes) => {
                (Conn::Cluster(connect_cluster(nodes, timeout).await?), None)
            }
        };
        Ok(Redis {
            conn: Arc::new(RwLock::new(conn)),
            client,
            reconnecting: Arc::new(AtomicBool::new(false)),
            epoch: Arc::new(AtomicU64::new(SLOT_OWNERS_EPOCH.load(Ordering::Acquire))),
            timeout,
            breaker: Arc::new(Breaker::new(
                crate::store::breaker::FAILURES,
                crate::store::breaker::OPEN,
            )),
            outages: Arc::new(AtomicU64::new(0)),
            verified: Arc::new(AtomicU64::new(0)),
            wake: Arc::new(Notify::new()),
            target: target.clone(),
        })
    }

    fn conn(&self) -> Conn {
        self.conn
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Runs one Redis operation on a clone of the handle, bounded by the configured timeout.
    pub async fn call<T, F, Fut>(&self, op: F) -> Result<T, CallError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        if !self.breaker.allow() {
            return Err(CallError::Open);
        }
        self.renew_if_stale();
        let result = match tokio::time::timeout(self.timeout, op(self.conn())).await {
            Ok(r) => r.map_err(CallError::Redis),
            Err(_) => Err(CallError::Timeout(self.timeout)),
        };
        match &result {
            Err(e) if e.is_outage() => {
                self.breaker.failure();
                // A lost connection or a Cluster in trouble, or slowness that opened the
                // breaker: the topology may be changing (one slow call is not enough).
                if !matches!(e, CallError::Timeout(_)) || self.breaker.is_open() {
                    self.outage();
                }
                self.reconnect();
            }
            _ => self.breaker.success(),
        }
        result
    }

    /// Whether writes that take stock may go out: not while an outage seen by this handle has
    /// not been followed by a verified topology.
    pub fn writes_allowed(&self) -> Result<(), CallError> {
        if self.is_suspect() {
            Err(CallError::Unverified)
        } else {
            Ok(())
        }
    }

    /// Whether an outage was seen and the topology not verified since.
    pub fn is_suspect(&self) -> bool {
        self.outages.load(Ordering::Acquire) > self.verified.load(Ordering::Acquire)
    }

    /// Records an outage (the topology may be changing) and wakes the watcher.
    pub fn outage(&self) {
        self.outages.fetch_add(1, Ordering::AcqRel);
        self.wake.notify_one();
    }

    /// How many outages were seen so far (the watcher notes it before a pass).
    pub fn outages(&self) -> u64 {
        self.outages.load(Ordering::Acquire)
    }

    /// Called by the topology watcher after a pass that began when `outages()` was `since`
    /// found every primary verified: outages up to then are settled.
    pub fn topology_verified(&self, since: u64) {
        self.verified.fetch_max(since, Ordering::AcqRel);
    }

    /// Replaces a standalone connection in the background, retrying until Redis answers.
    fn reconnect(&self) {
        let Some(client) = self.client.clone() else {
            return;
        };
        if self.reconnecting.swap(true, Ordering::AcqRel) {
            return;
        }
        let (slot, flag, timeout) = (self.conn.clone(), self.reconnecting.clone(), self.timeout);
        tokio::spawn(async move {
            loop {
                match connect_single(&client, timeout).await {
                    Ok(fresh) => {
                        *slot.write().unwrap_or_else(|p| p.into_inner()) = Conn::Single(fresh);
                        break;
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
            flag.store(false, Ordering::Release);
        });
    }

    /// A Cluster connection made afresh in the background once the slot owners changed
    /// ([`slot_owners_changed`]); calls go on over the old one meanwhile.
    fn renew_if_stale(&self) {
        let Some(want) = self.stale() else {
            return;
        };
        if self.reconnecting.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            me.renew(want).await;
            me.reconnecting.store(false, Ordering::Release);
        });
    }

    /// The same, waited for: a recovery starts with it, so that its calls (bounded by the
    /// background's long timeout) never go to an old master cut off from the Cluster.
    pub async fn renew_now_if_stale(&self) {
        if let Some(want) = self.stale() {
            self.renew(want).await;
        }
    }

    /// The epoch to renew to, when this handle's Cluster connection is older.
    fn stale(&self) -> Option<u64> {
        let want = SLOT_OWNERS_EPOCH.load(Ordering::Acquire);
        (matches!(self.target, RedisTarget::Cluster(_))
            && self.epoch.load(Ordering::Acquire) != want)
            .then_some(want)
    }

    async fn renew(&self, want: u64) {
        let RedisTarget::Cluster(nodes) = &self.target else {
            return;
        };
        match connect_cluster(nodes, self.timeout).await {
            Ok(fresh) => {
                *self.conn.write().unwrap_or_else(|p| p.into_inner()) = Conn::Cluster(fresh);
                self.epoch.store(want, Ordering::Release);
            }
            Err(e) => eprintln!("redis: reading the Cluster's slot map again: {e}"),
        }
    }

    /// `WAIT replicas timeout_ms` on the primary that holds `key` (for a Cluster, the node of
    /// its slot; this connection's writes there went over one connection): how many replicas
    /// acknowledged every write made before it.
    pub async fn wait_replicas(
        &self,
        key: &str,
        replicas: u32,
        timeout_ms: u64,
    ) -> Result<i64, CallError> {
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(replicas).arg(timeout_ms);
        let slot = key_slot(key.as_bytes());
        self.call(|c| async move {
            match c {
                Conn::Single(mut single) => cmd.query_async(&mut single).await,
                Conn::Cluster(mut cluster) => {
                    use redis::cluster_routing::{
                        Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr,
                    };
                    let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                        Route::new(slot, SlotAddr::Master),
                    ));
                    let v = cluster.route_command(&cmd, route).await?;
                    redis::from_redis_value(&v)
                }
            }
        })
        .await
    }

    /// Runs commands of many sales together (at most [`EACH_IN_FLIGHT`] in flight): a
    /// Cluster pipeline may not cross slots, but concurrent calls on the multiplexed
    /// connections are written back to back, so a batch costs a few round trips, not one per
    /// command. One result per command, in order.
    pub async fn each(&self, cmds: Vec<Cmd>) -> Vec<Result<Value, CallError>> {
        let mut out = Vec::with_capacity(cmds.len());
        let mut cmds = cmds.into_iter().peekable();
        while cmds.peek().is_some() {
            let chunk: Vec<Cmd> = cmds.by_ref().take(EACH_IN_FLIGHT).collect();
            out.extend(
                futures_util::future::join_all(chunk.into_iter().map(|c| self.cmd(c))).await,
            );
        }
        out
    }

    /// Runs one command.
    pub async fn cmd<T: redis::FromRedisValue>(&self, cmd: Cmd) -> Result<T, CallError> {
        self.call(|mut c| async move { cmd.query_async(&mut c).await })
            .await
    }
}

/// A Cluster connection: its slot map read from the nodes now.
async fn connect_cluster(
    nodes: &[String],
    timeout: Duration,
) -> Result<ClusterConnection, RedisError> {
    redis::cluster::ClusterClient::builder(nodes.to_vec())
        .connection_timeout(timeout.max(Duration::from_secs(1)))
        .response_timeout(timeout)
        .build()?
        .get_async_connection()
        .await
}
