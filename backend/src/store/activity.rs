//! Which sales are busy: the *active set*, so that periodic work follows the sales that have
//! work and never loops over every sale that exists.
//!
//! A sorted set in Redis (`seckill:active`, one key: one Cluster slot) maps a sale id to the
//! time until which it is registered as busy (a *lease*, in ms of that node's clock). Every
//! change to a sale's Redis state registers the sale first: a reservation (the reserver), a
//! unit given back (sweeper, reconciler, dead letters, refunds), a waiting-room join or an
//! operator's step of the line. Whoever has periodic work reads this set, not the sales:
//!
//! - the order writer reads the streams of its own reservations at once (an in-process
//!   signal) and, once a second, checks the sales whose lease ran out: a stream with entries
//!   is written, a drained one is *retired* from the set ([`Activity::retire`]);
//! - the edge's state pull sends the current state of the busy sales only, and steps the
//!   waiting rooms among them;
//! - the reconciler checks the busy sales only.
//!
//! **Why a lease, and why the reserve scripts check it.** Retiring a sale races a new
//! reservation: the writer sees the stream drained, a buy adds an entry, the writer removes
//! the sale, and the entry would wait unseen. So a reservation carries the lease the backend
//! holds, and the reserve scripts refuse to add to the stream when the sale node's clock is
//! within [`MARGIN_MS`] of its end (the backend then takes a new lease and tries again); the
//! writer retires only sales whose lease ended more than [`MARGIN_MS`] ago by the set's node,
//! and only if the lease is still the one it saw (`retire.lua`). A reservation that could
//! follow the writer's look therefore happened before it, and the look saw its entry, as long
//! as the nodes' clocks agree within twice the margin (one host here: exactly).
//!
//! A backend takes a lease of [`LEASE_MS`] and takes a new one when less than [`RENEW_MS`] is
//! left: one call per busy sale every ~50 s. Leases are forgotten when the Redis handle saw
//! an outage (a failover may have lost the set's last writes); a recovery registers every
//! sale whose stream still holds entries.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use redis::Value;
use tokio::sync::Notify;

use super::redis_conn::{CallError, Redis};
use super::scripts::{evalsha, LEASE_SCRIPT, RETIRE_SCRIPT};

/// The active set's key.
pub const ACTIVE: &str = "seckill:active";
/// The waiting rooms someone joined: a sorted set, sale id -> the sale's end (ms). Every pull
/// of the edges steps each of them until its sale ends.
pub const LINES: &str = "seckill:lines";
/// How long a lease lasts.
pub const LEASE_MS: i64 = 60_000;
/// A backend takes a new lease when less than this is left of its own.
pub const RENEW_MS: i64 = 10_000;
/// The reserve scripts stop using a lease this long before it ends; the writer retires a sale
/// only this long after its lease ended. Covers the clocks of two Redis nodes disagreeing.
pub const MARGIN_MS: i64 = 2_000;

/// This backend's side of the active set: its leases (sale id -> (lease end, the Redis
/// handle's outage count when given)), and the sales it reserved in that its own writer has
/// not read yet (the in-process signal; see `writer`).
#[derive(Default)]
pub struct Activity {
    leases: Mutex<HashMap<u64, (i64, u64)>>,
    /// Waiting rooms this backend registered in [`LINES`] (with the outage count then).
    lines: Mutex<HashMap<u64, u64>>,
    queued: Mutex<HashSet<u64>>,
    wake: Notify,
}

impl Activity {
    /// Orders of `sale_id` were just added to its stream here: wakes this backend's writer.
    pub fn queued(&self, sale_id: u64) {
        lock(&self.queued).insert(sale_id);
        self.wake.notify_one();
    }

    /// The sales with orders queued here since the last call.
    pub fn take_queued(&self) -> Vec<u64> {
        lock(&self.queued).drain().collect()
    }

    /// Resolves when [`Activity::queued`] was called since the last [`Activity::take_queued`]
    /// (or at once, if it was called before this wait began).
    pub async fn wait_queued(&self) {
        self.wake.notified().await
    }

    /// A lease on `sale_id` with at least [`RENEW_MS`] left (by this host's clock), taken now
    /// if this backend holds none that good. `force` takes a new one regardless (a reserve
    /// script refused the old one).
    pub async fn lease(&self, redis: &Redis, sale_id: u64, force: bool) -> Result<i64, CallError> {
        let generation = redis.outages();
        if !force {
            if let Some((until, g)) = self.lock().get(&sale_id) {
                if *g == generation && *until - crate::clock::now_ms() > RENEW_MS {
                    return Ok(*until);
                }
            }
        }
        let until = register(redis, &[sale_id], LEASE_MS, 0).await?;
        let mut leases = self.lock();
        // Forget leases of sales nobody asked about for a while (a bounded map).
        if leases.len() > 100_000 {
            let now = crate::clock::now_ms();
            leases.retain(|_, (u, _)| *u > now);
        }
        leases.insert(sale_id, (until, generation));
        Ok(until)
    }

    /// Registers the sale's waiting room in [`LINES`] (once per backend, again after an
    /// outage), so that the edges' pulls step it until `ends_ms`.
    pub async fn line(&self, redis: &Redis, sale_id: u64, ends_ms: i64) -> Result<(), CallError> {
        let generation = redis.outages();
        if lock(&self.lines).get(&sale_id) == Some(&generation) {
            return Ok(());
        }
        let _: Value = redis
            .cmd(
                redis::cmd("ZADD")
                    .arg(LINES)
                    .arg("NX")
                    .arg(ends_ms)
                    .arg(sale_id)
                    .clone(),
            )
            .await?;
        let mut lines = lock(&self.lines);
        if lines.len() > 100_000 {
            lines.clear();
        }
        lines.insert(sale_id, generation);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (i64, u64)>> {
        lock(&self.leases)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Registers sales as busy for `lease_ms` from now, or until `at_least_ms` if that is later
/// (a waiting room is busy until its sale ends). Returns the lease's end.
pub async fn register(
    redis: &Redis,
    sale_ids: &[u64],
    lease_ms: i64,
    at_least_ms: i64,
) -> Result<i64, CallError> {
    let mut cmd = evalsha(&LEASE_SCRIPT, &[ACTIVE]);
    cmd.arg(lease_ms).arg(at_least_ms);
    for id in sale_ids {
        cmd.arg(id);
    }
    redis.cmd(cmd).await
}

/// The busy sales now: the set's clock (ms) and each sale with its lease's end.
pub async fn active(redis: &Redis) -> Result<(i64, Vec<(u64, i64)>), CallError> {
    let flat: Vec<i64> = redis
        .cmd(crate::store::scripts::eval(
            crate::store::scripts::ACTIVE_LIST,
            &[ACTIVE],
        ))
        .await?;
    let Some((now, rest)) = flat.split_first() else {
        return Err(CallError::Redis(redis::RedisError::from((
            redis::ErrorKind::TypeError,
            "active set: no clock in the reply",
        ))));
    };
    let sales = rest
        .chunks_exact(2)
        .filter(|p| p[0] > 0)
        .map(|p| (p[0] as u64, p[1]))
        .collect();
    Ok((*now, sales))
}

/// Removes sales seen drained, each only if its lease is still `lease` (see the module doc).
/// Returns how many left the set.
pub async fn retire(redis: &Redis, drained: &[(u64, i64)]) -> Result<i64, CallError> {
    if drained.is_empty() {
        return Ok(0);
    }
    let mut cmd = evalsha(&RETIRE_SCRIPT, &[ACTIVE]);
    for (id, lease) in drained {
        cmd.arg(id).arg(lease);
    }
    let n: Value = redis.cmd(cmd).await?;
    Ok(match n {
        Value::Int(n) => n,
        _ => 0,
    })
}

/// The waiting rooms to step now: registered in [`LINES`] and their sale not ended by
/// `now_ms`. Lines whose sale ended more than an hour ago are dropped on the way.
pub async fn lines(redis: &Redis, now_ms: i64) -> Result<Vec<u64>, CallError> {
    let _: Value = redis
        .cmd(
            redis::cmd("ZREMRANGEBYSCORE")
                .arg(LINES)
                .arg("-inf")
                .arg(format!("({}", now_ms - 3_600_000))
                .clone(),
        )
        .await?;
    redis
        .cmd(
            redis::cmd("ZRANGEBYSCORE")
                .arg(LINES)
                .arg(format!("({now_ms}"))
                .arg("+inf")
                .clone(),
        )
        .await
}
