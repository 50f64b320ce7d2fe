//! The order writer under a crash: entries a writer read but never acknowledged are taken
//! over by another writer and land in MariaDB exactly once.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Backend, Target};
use hyper::StatusCode;
use redis::Value;

/// Every writer watches every sale, so these tests, which each play or stop writers, run one at
/// a time (other test binaries run before or after this one, never beside it).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_of_a_dead_writer_are_reclaimed_and_land_once() {
    let _serial = SERIAL.lock().await;
    // No writer in this backend: the test plays the writer that dies.
    let b = Backend::start(Target::Single, &[("SECKILL_WRITER", "false")]).await;
    let sale = b.create_sale(50, 1).await;
    for i in 0..30 {
        let token = b.login(&format!("crash-{sale}-{i}")).await;
        let path = b.path(sale, &token).await;
        assert_eq!(b.buy(&path, &token).await.0, StatusCode::OK);
    }
    // The doomed writer reads all 30 entries and dies before acknowledging any.
    let stream = format!("{{sale:{sale}}}:orders");
    let read: Value = b
        .app
        .redis
        .cmd(
            redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg("writers")
                .arg("doomed-writer")
                .arg("COUNT")
                .arg(1000)
                .arg("STREAMS")
                .arg(&stream)
                .arg(">")
                .clone(),
        )
        .await
        .unwrap();
    assert!(
        matches!(read, Value::Array(_)),
        "the doomed writer read the entries"
    );
    assert_eq!(b.pending(sale).await, Value::Int(30));
    assert_eq!(b.order_count(sale).await, 0);

    // A new writer takes over once the entries have been idle for claim_idle (here 300 ms).
    let mut writer = b.app.writer("rescuer".into()).await.unwrap();
    writer.cfg.claim_idle = Duration::from_millis(300);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(Arc::new(writer).run(stop_rx));
    assert_eq!(b.wait_orders(sale, 30).await, 30);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.order_count(sale).await, 30);
    assert_eq!(
        b.pending(sale).await,
        Value::Int(0),
        "everything acknowledged after the commit"
    );
    stop_tx.send(true).unwrap();
    task.await.unwrap();
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_batch_changes_nothing() {
    let _serial = SERIAL.lock().await;
    let b = Backend::start(Target::Single, &[("SECKILL_WRITER", "false")]).await;
    let sale_id = b.create_sale(5, 1).await;
    let sale = seckill::buy::sales::load(&b.app.db, sale_id)
        .await
        .unwrap()
        .unwrap();
    let orders: Vec<_> = (1..=3)
        .map(|seq| seckill::writer::QueuedOrder {
            entry_id: format!("{seq}-0"),
            seq,
            user_id: 1000 + seq,
            slot: 1,
            queued_ms: 1,
        })
        .collect();
    assert_eq!(
        seckill::writer::insert_batch(&b.app.db, &sale, &orders)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        seckill::writer::insert_batch(&b.app.db, &sale, &orders)
            .await
            .unwrap(),
        0
    );
    assert_eq!(b.order_count(sale_id).await, 3);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_the_writer_before_returning() {
    let _serial = SERIAL.lock().await;
    // A long idle poll, so only the shutdown drain can explain the rows being there.
    let b = Backend::start(Target::Single, &[("SECKILL_WRITER_IDLE_MS", "5000")]).await;
    let sale = b.create_sale(40, 1).await;
    let mut answered = 0;
    for i in 0..40 {
        let token = b.login(&format!("drain-{sale}-{i}")).await;
        let path = b.path(sale, &token).await;
        if b.buy(&path, &token).await.0 == StatusCode::OK {
            answered += 1;
        }
    }
    assert_eq!(answered, 40);
    b.stop().await;
    // The backend closed its pool on the way out; count through a fresh one.
    let db = seckill::store::db::pool(&common::env("SECKILL_TEST_MYSQL_URL"), 1).unwrap();
    use mysql_async::prelude::Queryable;
    let mut c = db.get_conn().await.unwrap();
    let n: Option<i64> = c
        .query_first(format!(
            "SELECT COUNT(*) FROM orders WHERE sale_id = {sale}"
        ))
        .await
        .unwrap();
    assert_eq!(
        n,
        Some(40),
        "every queued order is in MariaDB once the backend has stopped"
    );
}
