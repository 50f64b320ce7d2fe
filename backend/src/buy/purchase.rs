//! The buy, as a domain step: a verified shopper and a sale in, an order number or the
//! reason there is none out. Every check that needs no Redis first (the window, the local
//! sold-out flag), then one reservation through the reserver (one script call per batch).
//! The HTTP handler (`http::shopper::buy`) verifies the link and turns the outcome into a
//! reply; this module knows nothing of HTTP.

use std::sync::Arc;
use std::time::Instant;

use crate::buy::cache::SaleCache;
use crate::buy::orders;
use crate::buy::reserver::Reserver;
use crate::buy::sales::Sale;
use crate::buy::stock::Reservation;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::store::redis_conn::CallError;

/// A unit is held and its order queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bought {
    pub order_id: u64,
    /// Which of the shopper's allowed orders this is (1..=per_user_limit).
    pub slot: u8,
}

/// What a buy needs below the handler.
pub struct Checkout<'a> {
    pub reserver: &'a Arc<Reserver>,
    pub cache: &'a SaleCache,
    pub metrics: &'a Metrics,
    /// Starts a recovery of Redis (it restarted or lost the sale): called, not awaited.
    pub recover: &'a (dyn Fn() + Send + Sync),
}

impl Checkout<'_> {
    /// Reserves a unit of `sale` for `user_id` at `now_ms`: the order, or why not (`409`
    /// already bought, `410` sold out or ended, `425` not started, `503` paused or Redis in
    /// trouble). Each outcome is counted in `seckill_reservations_total`.
    pub async fn buy(&self, sale: &Sale, user_id: u64, now_ms: i64) -> Result<Bought, ApiError> {
        let outcome = |o: &str| self.metrics.reservations.with_label_values(&[o]).inc();
        if let Err(e) = sale.open_at(now_ms) {
            outcome(e.code());
            return Err(e);
        }
        if self.cache.is_sold_out(sale.id) {
            outcome("sold_out_local");
            return Err(ApiError::SoldOut);
        }
        let started = Instant::now();
        let r = self
            .reserver
            .reserve(sale.id, user_id, sale.per_user_limit, now_ms)
            .await;
        self.metrics
            .redis_duration
            .with_label_values(&["reserve"])
            .observe(started.elapsed().as_secs_f64());
        match r {
            Ok(Reservation::Queued { seq, slot }) => {
                outcome("queued");
                Ok(Bought {
                    order_id: orders::order_id(sale.id, seq),
                    slot,
                })
            }
            Ok(Reservation::LimitReached) => {
                outcome("duplicate");
                Err(ApiError::AlreadyBought)
            }
            Ok(Reservation::SoldOut) => {
                outcome("sold_out");
                self.cache.mark_sold_out(sale.id).await;
                Err(ApiError::SoldOut)
            }
            Ok(Reservation::LeaseEnded) => {
                // Refused twice, with a fresh lease: the Redis nodes' clocks disagree by
                // more than the margin (see store::activity). Nothing was reserved.
                outcome("error");
                Err(ApiError::Unavailable(
                    "redis_clock",
                    "redis: the sale's lease ended as it was given (do the Redis nodes' clocks agree?)".into(),
                ))
            }
            Ok(Reservation::NotLoaded) => {
                outcome("not_loaded");
                (self.recover)();
                Err(ApiError::Unavailable(
                    "stock_not_loaded",
                    format!(
                        "sale {}: stock is not in Redis (being rebuilt from MariaDB)",
                        sale.id
                    ),
                ))
            }
            Err(e) => {
                let (label, err) = redis_failure(&e, self.recover);
                outcome(label);
                if label == "error" {
                    self.metrics
                        .redis_errors
                        .with_label_values(&["reserve"])
                        .inc();
                }
                Err(err)
            }
        }
    }
}

/// What a failed stock-taking Redis call means for the shopper (a fast `503` naming why),
/// and its outcome label; a Redis that restarted or failed over starts a recovery.
pub fn redis_failure(
    e: &CallError,
    recover: &(dyn Fn() + Send + Sync),
) -> (&'static str, ApiError) {
    match e {
        // A node failed or a primary changed: nothing is taken until it is verified.
        CallError::Unverified => (
            "failover",
            ApiError::Unavailable("redis_failover", format!("redis: {e}")),
        ),
        // Reserved on the primary, not yet on its replicas: a failover could lose it.
        CallError::NotReplicated { .. } => (
            "not_replicated",
            ApiError::Unavailable("not_replicated", format!("redis: {e}")),
        ),
        // Redis restarted: nothing is reserved until it has been rebuilt.
        e if e.is_noscript() => {
            recover();
            (
                "recovering",
                ApiError::Unavailable(
                    "redis_recovering",
                    "redis: restarted; its state is being rebuilt from MariaDB".into(),
                ),
            )
        }
        e => ("error", ApiError::redis(e)),
    }
}
