//! The writer's look at the active set, once a second (see the module doc of `writer`):
//! claims what dead writers left, measures backlogs, drains the streams of sales whose lease
//! ended, and retires the drained ones.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{stream, write, Writer};
use crate::store::activity::{self, MARGIN_MS};
use crate::store::keys::SaleKeys;
use crate::store::redis_conn::CallError;

/// How often, at most, the backlog of every busy sale is measured (for the metric).
const BACKLOG_EVERY: Duration = Duration::from_secs(5);

/// What a look at the active set found out, for the next look.
#[derive(Default)]
pub(super) struct Looks {
    last_claim: HashMap<u64, Instant>,
    last_backlog: Option<Instant>,
}

impl Writer {
    /// One look at the active set: claims what dead writers left (each sale every
    /// `claim_idle / 2`), and for each sale whose lease ended (every sale, when `all`) reads
    /// the backlog: a stream with entries is drained, a drained one retired from the set.
    pub(super) async fn look(
        self: &Arc<Self>,
        looks: &mut Looks,
        all: bool,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<(), crate::store::redis_conn::CallError> {
        let (now, members) = activity::active(&self.redis).await?;
        self.metrics.active_sales.set(members.len() as i64);
        let claim_every = (self.cfg.claim_idle / 2).max(Duration::from_millis(100));
        looks
            .last_claim
            .retain(|id, _| members.iter().any(|(m, _)| m == id));
        for (sale, _) in &members {
            let due = looks
                .last_claim
                .get(sale)
                .is_none_or(|t| t.elapsed() >= claim_every);
            if due {
                looks.last_claim.insert(*sale, Instant::now());
                self.claim(*sale).await;
            }
        }
        let measure_all = looks
            .last_backlog
            .is_none_or(|t| t.elapsed() >= BACKLOG_EVERY);
        if measure_all {
            looks.last_backlog = Some(Instant::now());
        }
        let expired = |lease: i64| lease < now - MARGIN_MS;
        let to_look: Vec<(u64, i64)> = members
            .iter()
            .copied()
            .filter(|(_, lease)| all || measure_all || expired(*lease))
            .collect();
        let backlogs = self
            .redis
            .each(
                to_look
                    .iter()
                    .map(|(sale, _)| stream::backlog_cmd(&SaleKeys::new(*sale)))
                    .collect(),
            )
            .await;
        let mut drained = Vec::new();
        for ((sale, lease), backlog) in to_look.into_iter().zip(backlogs) {
            let n = match backlog {
                Ok(reply) => stream::group_backlog(&reply).unwrap_or(0),
                // No stream at all: nothing to write (Redis lost the sale; recovery rebuilds).
                Err(e) if e.is_no_such_key() => 0,
                Err(_) => continue,
            };
            self.metrics
                .sale_gauge(&self.metrics.stream_backlog, sale)
                .set(n);
            if n > 0 || all {
                self.drain(sale, shutdown);
            } else if expired(lease) && !self.lock_drains().contains_key(&sale) {
                drained.push((sale, lease));
            }
        }
        let retired = activity::retire(&self.redis, &drained).await?;
        self.metrics.sales_retired.inc_by(retired.max(0) as u64);
        Ok(())
    }

    /// Takes over what dead writers left pending on this sale's stream, and writes it.
    async fn claim(self: &Arc<Self>, sale_id: u64) {
        let Some(sale) = self.sale(sale_id).await else {
            return;
        };
        let stream = self.stream(sale_id);
        let inserter = self.inserter();
        let claimed = async {
            let gen = self.generation(&stream).await?;
            Ok::<_, CallError>((gen, stream.reclaim(self.cfg.claim_idle).await?))
        };
        match claimed.await {
            Ok((gen, mut entries)) => {
                // Written a batch at a time, as if read.
                while !entries.is_empty() {
                    let rest = entries.split_off(entries.len().min(self.cfg.batch));
                    let batch = std::mem::replace(&mut entries, rest);
                    if let Err(e) = write(&stream, &inserter, &sale, gen, batch).await {
                        eprintln!("writer: sale {sale_id}: writing reclaimed entries failed (they stay pending on us, retried by the sale's drain): {e}");
                        self.activity.queued(sale_id);
                        break;
                    }
                }
            }
            Err(e) => eprintln!("writer: sale {sale_id}: reclaim failed: {e}"),
        }
    }
}
