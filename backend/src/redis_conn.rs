//! One Redis handle for the whole process: a standalone server through a reconnecting
//! `ConnectionManager`, or a Redis Cluster through `ClusterConnection`, chosen by
//! configuration. Both are multiplexed and cheap to clone; callers never care which it is.
//! Every call is bounded by [`Redis::timeout`] and goes through a circuit breaker, so a Redis
//! that is down or frozen costs callers nothing once the breaker is open.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};

use crate::breaker::Breaker;
use crate::config::RedisTarget;

#[derive(Clone)]
pub enum Conn {
    Single(ConnectionManager),
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

/// A Redis handle plus the bound on each call.
#[derive(Clone)]
pub struct Redis {
    pub conn: Conn,
    pub timeout: Duration,
    pub breaker: Arc<Breaker>,
}

/// Consecutive failures that open the breaker, and how long it stays open.
pub const BREAKER_FAILURES: u32 = 5;
pub const BREAKER_OPEN: Duration = Duration::from_millis(500);

/// Why a Redis call failed: an error reply or lost connection, or no answer in time.
#[derive(Debug)]
pub enum CallError {
    Redis(RedisError),
    Timeout(Duration),
    /// The breaker is open: recent calls failed, this one was not tried.
    Open,
}

impl CallError {
    /// Redis does not know a script: it restarted or failed over (see `recovery`).
    pub fn is_noscript(&self) -> bool {
        matches!(self, CallError::Redis(e) if e.kind() == redis::ErrorKind::NoScriptError)
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
            CallError::Open => false,
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Redis(e) => write!(f, "{e}"),
            CallError::Timeout(d) => write!(f, "no answer within {} ms", d.as_millis()),
            CallError::Open => write!(f, "failing fast: recent calls failed (circuit open)"),
        }
    }
}

impl std::error::Error for CallError {}

impl From<RedisError> for CallError {
    fn from(e: RedisError) -> Self {
        CallError::Redis(e)
    }
}

impl Redis {
    pub async fn connect(target: &RedisTarget, timeout: Duration) -> Result<Redis, RedisError> {
        let conn = match target {
            RedisTarget::Single(url) => {
                let client = redis::Client::open(url.as_str())?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(timeout.max(Duration::from_secs(1)))
                    .set_number_of_retries(2);
                Conn::Single(ConnectionManager::new_with_config(client, config).await?)
            }
            RedisTarget::Cluster(nodes) => {
                let client = redis::cluster::ClusterClient::builder(nodes.clone())
                    .connection_timeout(timeout.max(Duration::from_secs(1)))
                    .response_timeout(timeout)
                    .build()?;
                Conn::Cluster(client.get_async_connection().await?)
            }
        };
        Ok(Redis {
            conn,
            timeout,
            breaker: Arc::new(Breaker::new(BREAKER_FAILURES, BREAKER_OPEN)),
        })
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
        let result = match tokio::time::timeout(self.timeout, op(self.conn.clone())).await {
            Ok(r) => r.map_err(CallError::Redis),
            Err(_) => Err(CallError::Timeout(self.timeout)),
        };
        match &result {
            Err(e) if e.is_outage() => self.breaker.failure(),
            _ => self.breaker.success(),
        }
        result
    }

    /// Runs one command.
    pub async fn cmd<T: redis::FromRedisValue>(&self, cmd: Cmd) -> Result<T, CallError> {
        self.call(|mut c| async move { cmd.query_async(&mut c).await })
            .await
    }
}
