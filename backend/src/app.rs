//! The running backend: its shared state, and `run`, which serves HTTP and runs the order
//! writer until a shutdown future resolves, then drains both.
//!
//! `main` and the integration tests both call [`run`] with a listener they bound and a
//! shutdown future they own, so tests start the real server on `127.0.0.1:0`.

use std::future::Future;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, OnceLock};

use mysql_async::Pool;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cache::SaleCache;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::payment::Provider;
use crate::recovery::Recovery;
use crate::redis_conn::Redis;
use crate::writer::{Writer, WriterConfig};

pub struct App {
    pub cfg: Config,
    /// The request path's Redis handle (short timeout, its own breaker).
    pub redis: Redis,
    /// Background work's Redis handle: recovery, sweeper, reconciler. A connection of its own
    /// with a long timeout, so a big sale's ledger neither times out nor queues buys behind it.
    pub bg_redis: Redis,
    pub db: Pool,
    pub cache: SaleCache,
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
    pub db_breaker: Arc<crate::breaker::Breaker>,
}

/// Bound on one background Redis call (a whole sale's ledger, a rebuild).
const BACKGROUND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl App {
    /// Connects to Redis and MariaDB and applies the schema migrations.
    pub async fn connect(cfg: Config) -> Result<Arc<App>, String> {
        let redis = Redis::connect(&cfg.redis, cfg.redis_timeout)
            .await
            .map_err(|e| format!("redis: cannot connect to {:?}: {e}", cfg.redis))?;
        let db = crate::db::pool(&cfg.mysql_url, cfg.mysql_pool_max)?;
        crate::db::migrate(&db, cfg.mysql_timeout).await?;
        let bg_redis = Redis::connect(&cfg.redis, cfg.redis_timeout.max(BACKGROUND_TIMEOUT))
            .await
            .map_err(|e| format!("redis: cannot connect to {:?}: {e}", cfg.redis))?;
        let metrics = Arc::new(Metrics::new());
        // A Redis that does not know our scripts is new or restarted: rebuild it first. If
        // that fails, buys answer 503 until the lifecycle loop's next attempt succeeds.
        let recovery = Arc::new(Recovery::new());
        if let Err(e) = recovery.if_needed(&bg_redis, &db, &metrics).await {
            eprintln!("seckill: recovery at start failed ({e}); retrying in the background");
        }
        Ok(Arc::new(App {
            bg_redis,
            cache: SaleCache::new(cfg.sold_out_ttl),
            metrics,
            inflight: AtomicUsize::new(0),
            recovery,
            provider: Provider::new(cfg.secrets.pay_key.clone(), cfg.pay_delay),
            base_url: OnceLock::new(),
            db_breaker: Arc::new(crate::breaker::Breaker::new(
                crate::redis_conn::BREAKER_FAILURES,
                crate::redis_conn::BREAKER_OPEN,
            )),
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
        crate::db::guarded(&self.db_breaker, self.cfg.mysql_timeout, what, work).await
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

    /// A writer on a Redis connection of its own (its polling never delays the buy path).
    pub async fn writer(&self, consumer: String) -> Result<Writer, String> {
        let redis = Redis::connect(
            &self.cfg.redis,
            self.cfg
                .redis_timeout
                .max(std::time::Duration::from_secs(2)),
        )
        .await
        .map_err(|e| format!("redis: writer cannot connect: {e}"))?;
        Ok(Writer {
            redis,
            db: self.db.clone(),
            metrics: self.metrics.clone(),
            cfg: WriterConfig {
                batch: self.cfg.writer_batch,
                idle: self.cfg.writer_idle,
                claim_idle: self.cfg.writer_claim_idle,
                discover: self.cfg.writer_discover,
                mysql_timeout: self.cfg.mysql_timeout,
                max_failures: self.cfg.writer_max_failures,
                consumer,
            },
        })
    }
}

/// Serves until `shutdown` resolves; then stops accepting, finishes in-flight requests, and
/// lets the writer drain and acknowledge, each within the configured grace period.
pub async fn run(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), String> {
    if let Ok(addr) = listener.local_addr() {
        let _ = app.base_url.set(format!("http://{addr}"));
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let lifecycle = tokio::spawn(lifecycle(app.clone(), stop_rx.clone()));
    let writer = if app.cfg.writer_enabled {
        let w = Arc::new(app.writer(crate::writer::consumer_name()).await?);
        Some(tokio::spawn(w.run(stop_rx.clone())))
    } else {
        None
    };
    crate::http::serve(app.clone(), listener, shutdown).await;
    let _ = stop_tx.send(true);
    let _ = lifecycle.await;
    if let Some(w) = writer {
        if tokio::time::timeout(app.cfg.shutdown_grace, w)
            .await
            .is_err()
        {
            eprintln!("seckill: the writer did not drain within the grace period; its pending entries will be reclaimed");
        }
    }
    app.db.clone().disconnect().await.ok();
    Ok(())
}

/// The background duties of every backend: recover a restarted Redis, sweep unpaid orders
/// past their deadline, refund money owed back, reconcile Redis with MariaDB. Each is safe in several backends at once.
async fn lifecycle(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let mut reconciler = crate::reconcile::Reconciler::new();
    let mut last_reconcile = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(app.cfg.sweep_interval) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        app.metrics
            .breaker_open
            .with_label_values(&["redis"])
            .set(i64::from(app.redis.breaker.is_open()));
        app.metrics
            .breaker_open
            .with_label_values(&["mariadb"])
            .set(i64::from(app.db_breaker.is_open()));
        if let Err(e) = app
            .recovery
            .if_needed(&app.bg_redis, &app.db, &app.metrics)
            .await
        {
            eprintln!("lifecycle: recovery: {e}");
            continue;
        }
        let now = crate::clock::now_ms();
        if let Err(e) = crate::sweeper::sweep(&app.bg_redis, &app.db, &app.metrics, now).await {
            eprintln!("lifecycle: sweeper: {e}");
        }
        if let Ok(url) = app.notify_url() {
            if let Err(e) =
                crate::payment::request_refunds(&app.db, &app.provider, &url, now, None).await
            {
                eprintln!("lifecycle: refunds: {e}");
            }
        }
        if last_reconcile.elapsed() >= app.cfg.reconcile_interval {
            last_reconcile = std::time::Instant::now();
            reconciler.pass(&app.bg_redis, &app.db, &app.metrics).await;
        }
    }
}
