//! Reservations in batches (group commit to Redis): concurrent buys of one sale share one
//! [`stock::reserve_many`] call.
//!
//! Each sale has a queue. A buy joins its sale's queue; if no call for that sale is under
//! way, it starts one at once (nothing waits when it is alone). While a call is under way,
//! the buys that arrive queue up, and when it returns the next call takes every buy queued
//! (up to `max` per call, oldest first). So a batch is whatever queued during one round trip:
//! one at low load, dozens in a crowd, and every buy waits at most for the call in flight
//! and its own. The script reserves for each buyer in queue order, exactly as that many
//! single calls in a row would (per-user limit, stock never below zero, every unit's order
//! in the stream), and a batch is one sale's keys, so one Redis Cluster slot.
//!
//! A call that fails fails every buy in it with the same error (a timeout or a lost
//! connection leaves their outcome unknown, as for a single call). `max` = 1 turns batching
//! off: each buy calls the single-buyer script itself.
//!
//! Acknowledged means replicated, when the operator asks for it ([`Reserver::replicated`],
//! `SECKILL_REDIS_WAIT_REPLICAS`): after a call that reserved anything, one `WAIT` on the
//! sale's primary (one per batch); if fewer replicas than asked confirm in time, the buys it
//! reserved get [`CallError::NotReplicated`] (503, outcome unknown: a failover now could lose
//! them), and the buys it refused keep their answers (a refusal changed nothing).
//!
//! Every call carries this backend's lease on the sale in the active set
//! (`store::activity`), taken before the first call and renewed when it nears its end; a
//! script that refuses the lease ([`Reservation::LeaseEnded`]: nothing done) is called again
//! once with a fresh one. After a call that queued orders, this backend's writer is woken.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use prometheus::Histogram;
use tokio::sync::oneshot;

use crate::buy::stock::{self, Reservation};
use crate::store::activity::Activity;
use crate::store::changes;
use crate::store::keys::SaleKeys;
use crate::store::redis_conn::{CallError, Redis};

/// The outcome of one buy's reservation; a failed call's error is shared by its whole batch.
pub type Outcome = Result<Reservation, Arc<CallError>>;

struct Waiter {
    user_id: u64,
    now_ms: i64,
    answer: oneshot::Sender<Outcome>,
}

/// A sale's queue is keyed by its id and per-user limit (both fixed for a sale).
type Key = (u64, u32);

pub struct Reserver {
    redis: Redis,
    activity: Arc<Activity>,
    max: usize,
    /// Sales with a call under way, and the buys queued behind it. A sale is in the map
    /// exactly while its flusher runs.
    queues: Mutex<HashMap<Key, VecDeque<Waiter>>>,
    /// Buys per script call.
    batch_size: Histogram,
    /// Replicas to wait for after each call that reserved, and for how long (ms).
    wait: Option<(u32, u64)>,
}

impl Reserver {
    pub fn new(
        redis: Redis,
        activity: Arc<Activity>,
        max: usize,
        batch_size: Histogram,
    ) -> Arc<Reserver> {
        Self::replicated(redis, activity, max, batch_size, None)
    }

    /// A reserver whose reservations must reach `wait.0` replicas within `wait.1` ms before
    /// they are answered (None: answered as soon as the primary has them).
    pub fn replicated(
        redis: Redis,
        activity: Arc<Activity>,
        max: usize,
        batch_size: Histogram,
        wait: Option<(u32, u64)>,
    ) -> Arc<Reserver> {
        Arc::new(Reserver {
            redis,
            activity,
            max: max.max(1),
            queues: Mutex::new(HashMap::new()),
            batch_size,
            wait: wait.filter(|(n, _)| *n > 0),
        })
    }

    /// After a call: Ok when nothing was reserved or no wait is asked for, or when enough
    /// replicas confirmed every write before this point.
    async fn confirm(&self, sale_id: u64, outcomes: &[Reservation]) -> Result<(), CallError> {
        let Some((replicas, ms)) = self.wait else {
            return Ok(());
        };
        if !outcomes
            .iter()
            .any(|r| matches!(r, Reservation::Queued { .. }))
        {
            return Ok(());
        }
        let got = self
            .redis
            .wait_replicas(&SaleKeys::new(sale_id).stock, replicas, ms)
            .await?;
        if got < i64::from(replicas) {
            return Err(CallError::NotReplicated {
                wanted: replicas,
                got,
                within_ms: ms,
            });
        }
        Ok(())
    }

    /// Reserves a unit of `sale_id` for `user_id`, in a batch with the buys of that sale
    /// queued meanwhile.
    pub async fn reserve(
        self: &Arc<Self>,
        sale_id: u64,
        user_id: u64,
        per_user_limit: u32,
        now_ms: i64,
    ) -> Outcome {
        if self.max == 1 {
            self.batch_size.observe(1.0);
            let r = self
                .leased(sale_id, |lease| async move {
                    let (r, left) = stock::reserve(
                        &self.redis,
                        sale_id,
                        user_id,
                        per_user_limit,
                        now_ms,
                        lease,
                    )
                    .await?;
                    Ok((vec![r], left))
                })
                .await
                .map_err(Arc::new)?
                .pop()
                .unwrap_or(Reservation::NotLoaded);
            self.confirm(sale_id, std::slice::from_ref(&r))
                .await
                .map_err(Arc::new)?;
            return Ok(r);
        }
        let (answer, outcome) = oneshot::channel();
        let key = (sale_id, per_user_limit);
        let waiter = Waiter {
            user_id,
            now_ms,
            answer,
        };
        let start_flusher = {
            let mut queues = self.lock();
            match queues.get_mut(&key) {
                Some(queue) => {
                    queue.push_back(waiter);
                    false
                }
                None => {
                    queues.insert(key, VecDeque::from([waiter]));
                    true
                }
            }
        };
        if start_flusher {
            tokio::spawn(self.clone().flush(key));
        }
        // The flusher answers every waiter it takes; it can only drop one by panicking.
        outcome.await.unwrap_or_else(|_| {
            Err(Arc::new(CallError::Redis(redis::RedisError::from((
                redis::ErrorKind::ClientError,
                "reservation batch lost",
            )))))
        })
    }

    /// Runs a reserve call with this backend's lease on the sale; once more with a fresh
    /// lease if the script refused the first (nothing was done then). When the call queued
    /// orders, wakes the writer, and tells the edges if the stock moved to another step
    /// (`store::changes`; in the background: the buyers do not wait for it).
    async fn leased<F, Fut>(&self, sale_id: u64, call: F) -> Result<Vec<Reservation>, CallError>
    where
        F: Fn(i64) -> Fut,
        Fut: std::future::Future<Output = Result<(Vec<Reservation>, i64), CallError>>,
    {
        let lease = self.activity.lease(&self.redis, sale_id, false).await?;
        let (mut outcomes, mut left) = call(lease).await?;
        if outcomes.first() == Some(&Reservation::LeaseEnded) {
            let lease = self.activity.lease(&self.redis, sale_id, true).await?;
            (outcomes, left) = call(lease).await?;
        }
        let queued = outcomes
            .iter()
            .filter(|r| matches!(r, Reservation::Queued { .. }))
            .count() as i64;
        if queued > 0 {
            self.activity.queued(sale_id);
            if left >= 0 && changes::step(left + queued) != changes::step(left) {
                let redis = self.redis.clone();
                tokio::spawn(async move {
                    if let Err(e) = changes::announce(&redis, &[sale_id]).await {
                        eprintln!("reserver: sale {sale_id}: announcing its stock failed: {e}");
                    }
                });
            }
        }
        Ok(outcomes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, VecDeque<Waiter>>> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Calls the script for what is queued, again and again, until the queue is empty; then
    /// removes the sale from the map (under the lock, so a buy arriving after that starts
    /// a flusher of its own).
    async fn flush(self: Arc<Self>, (sale_id, limit): Key) {
        // Should this task end any other way (a panic, the runtime shutting down), the sale
        // leaves the map and the buys still queued get an error instead of waiting forever.
        let mut leave = Leave {
            reserver: &self,
            key: (sale_id, limit),
            done: false,
        };
        loop {
            let batch: Vec<Waiter> = {
                let mut queues = self.lock();
                let Some(queue) = queues.get_mut(&(sale_id, limit)) else {
                    leave.done = true;
                    return;
                };
                if queue.is_empty() {
                    queues.remove(&(sale_id, limit));
                    leave.done = true;
                    return;
                }
                let n = queue.len().min(self.max);
                queue.drain(..n).collect()
            };
            self.batch_size.observe(batch.len() as f64);
            let buyers: Vec<(u64, i64)> = batch.iter().map(|w| (w.user_id, w.now_ms)).collect();
            let call = self
                .leased(sale_id, |lease| {
                    stock::reserve_many(&self.redis, sale_id, limit, &buyers, lease)
                })
                .await;
            match call {
                Ok(outcomes) => {
                    let unconfirmed = self.confirm(sale_id, &outcomes).await.err().map(Arc::new);
                    for (w, r) in batch.into_iter().zip(outcomes) {
                        let answer = match (&unconfirmed, r) {
                            (Some(e), Reservation::Queued { .. }) => Err(e.clone()),
                            (_, r) => Ok(r),
                        };
                        let _ = w.answer.send(answer);
                    }
                }
                Err(e) => {
                    let e = Arc::new(e);
                    for w in batch {
                        let _ = w.answer.send(Err(e.clone()));
                    }
                }
            }
        }
    }
}

struct Leave<'a> {
    reserver: &'a Reserver,
    key: Key,
    /// Set when the flusher left the map itself (it may belong to a new flusher by now).
    done: bool,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.reserver.lock().remove(&self.key);
        }
    }
}
