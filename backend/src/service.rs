//! The running backend: serves HTTP, runs the order writer and the background duties until a
//! shutdown future resolves, then drains them.
//!
//! `main` and the integration tests both call [`run`] with a listener they bound and a
//! shutdown future they own, so tests start the real server on `127.0.0.1:0` (as mini-redis's
//! `server::run(listener, shutdown)`). The state ([`App`]) knows nothing of this module.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::App;

/// Serves until `shutdown` resolves; then stops accepting, finishes in-flight requests, and
/// lets the writer drain and acknowledge, each within the configured grace period.
pub async fn run(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), crate::error::StartError> {
    if let Ok(addr) = listener.local_addr() {
        let _ = app.base_url.set(format!("http://{addr}"));
    }
    let unix = match &app.cfg.listen_unix {
        Some(path) => Some(crate::http::server::listen_unix(path)?),
        None => None,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let lifecycle = tokio::spawn(lifecycle(app.clone(), stop_rx.clone()));
    let watcher = crate::lifecycle::topology::Deps {
        target: app.cfg.redis.clone(),
        redis: app.redis.clone(),
        bg_redis: app.bg_redis.clone(),
        db: app.db.clone(),
        metrics: app.metrics.clone(),
        recovery: app.recovery.clone(),
    };
    let topology = tokio::spawn(crate::lifecycle::topology::run(watcher, stop_rx.clone()));
    let writer = if app.cfg.writer_enabled {
        let w = Arc::new(app.writer(crate::writer::consumer_name()).await?);
        Some(tokio::spawn(w.run(stop_rx.clone())))
    } else {
        None
    };
    crate::http::serve(app.clone(), listener, unix, shutdown).await;
    if let Some(path) = &app.cfg.listen_unix {
        let _ = std::fs::remove_file(path);
    }
    let _ = stop_tx.send(true);
    let _ = lifecycle.await;
    let _ = topology.await;
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

/// The background duties of every backend: recover a restarted Redis, forget sales an
/// operator changed, sweep unpaid orders past their deadline, refund money owed back,
/// reconcile the busy sales. Each costs the same however many sales exist. Each is safe in several backends at once.
async fn lifecycle(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let mut reconciler = crate::lifecycle::reconcile::Reconciler::default();
    // The sales' revision this backend's cache has followed (changes before the start are
    // not cached yet).
    let mut seen_rev = crate::buy::sale_rows::revision(&app.db)
        .await
        .map_or(0, |(rev, _)| rev);
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
        if let Err(e) = app.cache.follow(&app.db, &mut seen_rev).await {
            eprintln!("lifecycle: following the sales' revisions: {e}");
        }
        let now = crate::clock::now_ms();
        if let Err(e) =
            crate::lifecycle::sweeper::sweep(&app.bg_redis, &app.db, &app.metrics, now).await
        {
            eprintln!("lifecycle: sweeper: {e}");
        }
        if let Err(e) = app.request_refunds(now, None).await {
            eprintln!("lifecycle: refunds: {e}");
        }
        if last_reconcile.elapsed() >= app.cfg.reconcile_interval {
            last_reconcile = std::time::Instant::now();
            reconciler.pass(&app.bg_redis, &app.db, &app.metrics).await;
        }
    }
}
