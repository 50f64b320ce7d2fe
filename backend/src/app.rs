//! The backend's shared state: configuration, connections, caches, metrics, the provider.
//! Built once by [`App::connect`]; handlers and background duties borrow it. Running it is
//! [`crate::service::run`]'s job (this module knows nothing of HTTP).

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, OnceLock};

use mysql_async::Pool;

use crate::buy::cache::SaleCache;
use crate::buy::reserver::Reserver;
use crate::config::Config;
use crate::error::StartError;
use crate::lifecycle::provider::Provider;
use crate::lifecycle::recovery::Recovery;
use crate::metrics::Metrics;
use crate::store::activity::Activity;
use crate::store::redis_conn::Redis;
use crate::writer::{Writer, WriterConfig};

pub struct App {
    pub cfg: Config,
    /// The request path's Redis handle (short timeout, its own breaker).
    pub redis: Redis,
    /// Buys' reservations, in batches per sale.
    pub reserver: Arc<Reserver>,
    /// Background work's Redis handle: recovery, sweeper, reconciler. A connection of its own
    /// with a long timeout, so a big sale's ledger neither times out nor queues buys behind it.
    pub bg_redis: Redis,
    pub db: Pool,
    pub cache: SaleCache,
    /// Orders as their owners poll them (a second; ten once settled).
    pub orders: crate::buy::cache::OrderCache,
    /// Captchas drawn ahead of the opening second.
    pub captchas: Arc<crate::tokens::captcha::pool::Pool>,
    /// The published sales' list, a second old at most.
    pub storefront: crate::buy::storefront::Storefront,
    pub metrics: Arc<Metrics>,
    /// Requests being served; past `cfg.max_inflight` new ones are shed with 503.
    pub inflight: AtomicUsize,
    pub recovery: Arc<Recovery>,
    /// The simulated payment provider.
    pub provider: Provider,
    /// This backend's own base URL, once it listens (the provider's default notify target).
    pub base_url: OnceLock<String>,
    /// The circuit breaker in front of MariaDB for request-path calls (the writer retries on
    /// its own and does not use it).
    pub db_breaker: Arc<crate::store::breaker::Breaker>,
    /// Signs waiting-room tickets (derived from the link secret, as the edge derives it).
    pub queue_key: Vec<u8>,
    /// This backend's leases in the active set and its writer's wake-up signal.
    pub activity: Arc<Activity>,
}

/// Bound on one background Redis call (a whole sale's ledger, a rebuild).
const BACKGROUND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl App {
    /// Connects to Redis and MariaDB and applies the schema migrations.
    pub async fn connect(cfg: Config) -> Result<Arc<App>, StartError> {
        let redis = Redis::connect(&cfg.redis, cfg.redis_timeout)
            .await
            .map_err(StartError::Redis)?;
        let db = crate::store::db::pool(&cfg.mysql_url, cfg.mysql_pool_max)?;
        crate::store::db::migrate(&db, cfg.mysql_timeout).await?;
        let bg_redis = Redis::connect(&cfg.redis, cfg.redis_timeout.max(BACKGROUND_TIMEOUT))
            .await
            .map_err(StartError::Redis)?;
        let metrics = Arc::new(Metrics::new());
        // A Redis that does not know our scripts is new or restarted: rebuild it first. If
        // that fails, buys answer 503 until the lifecycle loop's next attempt succeeds.
        let recovery = Arc::new(Recovery::default());
        if let Err(e) = recovery.if_needed(&bg_redis, &db, &metrics).await {
            eprintln!("seckill: recovery at start failed ({e}); retrying in the background");
        }
        let captchas = crate::tokens::captcha::pool::Pool::new(
            crate::tokens::captcha::Painter::new(&cfg.secrets.captcha_key),
            cfg.captcha_pool,
            cfg.captcha_pool_dir.as_deref(),
            metrics.captcha_counters(),
        )
        .map_err(|e| StartError::Captchas(cfg.captcha_pool_dir.clone().unwrap_or_default(), e))?;
        let activity = Arc::new(Activity::default());
        let reserver = Reserver::replicated(
            redis.clone(),
            activity.clone(),
            cfg.reserve_batch_max,
            metrics.reserve_batch.clone(),
            Some((cfg.redis_wait_replicas, cfg.redis_wait.as_millis() as u64)),
        );
        Ok(Arc::new(App {
            reserver,
            bg_redis,
            cache: SaleCache::new(cfg.sold_out_ttl),
            orders: Default::default(),
            storefront: Default::default(),
            captchas,
            metrics,
            inflight: AtomicUsize::new(0),
            recovery,
            provider: Provider::new(cfg.secrets.pay_key.clone(), cfg.pay_delay),
            base_url: OnceLock::new(),
            db_breaker: Arc::new(crate::store::breaker::Breaker::new(
                crate::store::breaker::FAILURES,
                crate::store::breaker::OPEN,
            )),
            queue_key: crate::buy::queue::ticket_key(&cfg.secrets.link_key),
            activity,
            redis,
            db,
            cfg,
        }))
    }

    /// One request's MariaDB work: bounded by the timeout, through the breaker.
    pub async fn db_call<T>(
        &self,
        what: &str,
        work: impl std::future::Future<Output = Result<T, crate::error::ApiError>>,
    ) -> Result<T, crate::error::ApiError> {
        crate::store::db::guarded(&self.db_breaker, self.cfg.mysql_timeout, what, work).await
    }

    /// Where the payment provider sends its notifications: the configured URL, else this
    /// backend's own `/api/payments/notify`.
    pub fn notify_url(&self) -> Result<String, crate::error::ApiError> {
        self.cfg
            .pay_notify_url
            .clone()
            .or_else(|| {
                self.base_url
                    .get()
                    .map(|b| format!("{b}/api/payments/notify"))
            })
            .ok_or_else(|| {
                crate::error::ApiError::Unavailable(
                    "not_ready",
                    "backend: not listening yet".into(),
                )
            })
    }

    /// Claims the refunds owed (of one sale, or all) and asks the provider for each; returns
    /// how many this backend asked for.
    pub async fn request_refunds(
        &self,
        now: i64,
        sale: Option<u64>,
    ) -> Result<usize, crate::error::TaskError> {
        let url = match self.notify_url() {
            Ok(url) => url,
            Err(_) => return Ok(0), // not listening yet: the next pass asks
        };
        let claimed = crate::lifecycle::refunds::claim_refunds(&self.db, now, sale).await?;
        for p in &claimed {
            self.provider.refund(url.clone(), p);
        }
        let due = crate::lifecycle::refunds::due(&self.db).await?;
        self.metrics.refunds_due.set(due as i64);
        Ok(claimed.len())
    }

    /// A writer on a Redis connection of its own (its reads never delay the buy path).
    pub async fn writer(&self, consumer: String) -> Result<Writer, StartError> {
        let redis = Redis::connect(
            &self.cfg.redis,
            self.cfg
                .redis_timeout
                .max(std::time::Duration::from_secs(2)),
        )
        .await
        .map_err(StartError::Redis)?;
        Ok(Writer::new(
            redis,
            self.db.clone(),
            WriterConfig {
                batch: self.cfg.writer_batch,
                look: self.cfg.writer_look,
                claim_idle: self.cfg.writer_claim_idle,
                mysql_timeout: self.cfg.mysql_timeout,
                max_failures: self.cfg.writer_max_failures,
                fence: self.cfg.writer_fence,
                consumer,
            },
            self.metrics.clone(),
            self.activity.clone(),
        ))
    }
}
