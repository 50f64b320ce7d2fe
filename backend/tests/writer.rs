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
    let sale = seckill::buy::sale_rows::load(&b.app.db, sale_id)
        .await
        .unwrap()
        .unwrap();
    let now = seckill::clock::now_ms();
    let orders: Vec<_> = (1..=3)
        .map(|seq| seckill::writer::QueuedOrder {
            entry_id: format!("{seq}-0"),
            seq,
            user_id: 1000 + seq,
            slot: 1,
            queued_ms: now,
        })
        .collect();
    assert_eq!(
        seckill::writer::insert_batch(&b.app.db, &sale, &orders, 0)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        seckill::writer::insert_batch(&b.app.db, &sale, &orders, 0)
            .await
            .unwrap(),
        0
    );
    assert_eq!(b.order_count(sale_id).await, 3);
    // These orders were written without their units reserved in Redis: the sale goes, so no
    // sweeper later returns units that were never taken (the suite's last reconcile would see
    // Redis holding more than the stock).
    {
        use mysql_async::prelude::Queryable;
        let mut c = b.app.db.get_conn().await.unwrap();
        c.exec_drop("DELETE FROM orders WHERE sale_id = ?", (sale_id,))
            .await
            .unwrap();
        c.exec_drop("DELETE FROM sales WHERE id = ?", (sale_id,))
            .await
            .unwrap();
    }
    b.stop().await;
}

/// The fence (docs/partitions.md): a batch read before its sale was rebuilt (a Redis failover)
/// inserts nothing, however late it reaches MariaDB; read again under the new generation,
/// it goes in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_read_before_a_rebuild_is_fenced_out() {
    let _serial = SERIAL.lock().await;
    let b = Backend::start(Target::Single, &[("SECKILL_WRITER", "false")]).await;
    let sale_id = b.create_sale(5, 1).await;
    let sale = seckill::buy::sale_rows::load(&b.app.db, sale_id)
        .await
        .unwrap()
        .unwrap();
    let order = |seq: u64| seckill::writer::QueuedOrder {
        entry_id: format!("{seq}-0"),
        seq,
        user_id: 2000 + seq,
        slot: 1,
        queued_ms: seckill::clock::now_ms(),
    };
    let db = &b.app.db;
    assert_eq!(
        seckill::writer::insert_batch(db, &sale, &[order(1)], 0)
            .await
            .unwrap(),
        1
    );
    let raised = seckill::store::fence::raise(db, &[sale_id]).await.unwrap();
    assert_eq!(raised[&sale_id], 1);
    assert_eq!(
        seckill::store::fence::current(db, sale_id).await.unwrap(),
        1
    );
    assert_eq!(
        seckill::writer::insert_batch(db, &sale, &[order(2), order(3)], 0)
            .await
            .unwrap(),
        0,
        "read under generation 0, after the raise to 1: fenced"
    );
    assert_eq!(b.order_count(sale_id).await, 1);
    assert_eq!(
        seckill::writer::insert_batch(db, &sale, &[order(2), order(3)], 1)
            .await
            .unwrap(),
        2
    );
    assert_eq!(b.order_count(sale_id).await, 3);
    {
        use mysql_async::prelude::Queryable;
        let mut c = db.get_conn().await.unwrap();
        c.exec_drop("DELETE FROM orders WHERE sale_id = ?", (sale_id,))
            .await
            .unwrap();
        c.exec_drop("DELETE FROM sales WHERE id = ?", (sale_id,))
            .await
            .unwrap();
    }
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_the_writer_before_returning() {
    let _serial = SERIAL.lock().await;
    // This writer looks at the active set at start and then only at shutdown; the orders are
    // queued by "another backend" (no signal reaches this writer), so only the shutdown
    // drain can explain the rows being there.
    let b = Backend::start(Target::Single, &[("SECKILL_WRITER_LOOK_MS", "600000")]).await;
    let sale = b.create_sale(40, 1).await;
    let lease = seckill::store::activity::register(&b.app.redis, &[sale], 600_000, 0)
        .await
        .unwrap();
    for i in 0..40u64 {
        let (r, _) = seckill::buy::stock::reserve(&b.app.redis, sale, 7000 + i, 1, 0, lease)
            .await
            .unwrap();
        assert!(matches!(r, seckill::buy::stock::Reservation::Queued { .. }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        b.order_count(sale).await,
        0,
        "nothing written before the shutdown"
    );
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

/// Commands Redis served, by name, from `INFO commandstats`.
async fn commandstats(b: &Backend) -> std::collections::HashMap<String, i64> {
    let info: String = b
        .app
        .redis
        .cmd(redis::cmd("INFO").arg("commandstats").clone())
        .await
        .unwrap();
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_string(), calls))
        })
        .collect()
}

/// `POST /admin/sales` with an array: `n` sales of `stock` units starting `starts_in_ms` from
/// now, created in one call; their ids.
async fn create_many(b: &Backend, n: usize, stock: u32, starts_in_ms: i64) -> Vec<u64> {
    let starts = seckill::clock::now_ms() + starts_in_ms;
    let body: Vec<_> = (0..n)
        .map(|i| {
            serde_json::json!({"title": format!("Evening {i}"), "price_cents": 100,
                "stock": stock, "starts_at": starts, "ends_at": starts + 600_000, "queue": "none"})
        })
        .collect();
    let (status, v) = b
        .call(
            hyper::Method::POST,
            "/admin/sales",
            Some(common::ADMIN),
            Some(serde_json::Value::from(body).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["created"], n);
    v["sales"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_u64().unwrap())
        .collect()
}

/// Cost follows work: with hundreds of sales live and upcoming and nobody buying, the
/// backend reads no stream and asks Redis only a few flat things a second, however many
/// sales exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sales_cost_the_writer_nothing() {
    let _serial = SERIAL.lock().await;
    let b = Backend::start(Target::Single, &[]).await;
    // The sales earlier tests kept busy (sold, then stopped) would be looked at until their
    // leases run out: start from a platform where nothing is busy.
    let _: redis::Value = b
        .app
        .redis
        .cmd(
            redis::cmd("DEL")
                .arg(seckill::store::activity::ACTIVE)
                .clone(),
        )
        .await
        .unwrap();
    create_many(&b, 300, 10, -1000).await;
    create_many(&b, 300, 10, 3_600_000).await;
    // Let the writer's first look and the first lifecycle passes go by.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let before = commandstats(&b).await;
    let idle = Duration::from_secs(4);
    tokio::time::sleep(idle).await;
    let after = commandstats(&b).await;
    let delta = |name: &str| after.get(name).unwrap_or(&0) - before.get(name).unwrap_or(&0);
    let total: i64 = after.keys().map(|k| delta(k)).sum();
    let reads = delta("xreadgroup") + delta("xinfo") + delta("xautoclaim") + delta("get");
    eprintln!(
        "idle for {idle:?} with 600 sales: {total} Redis commands, {reads} stream/stock reads"
    );
    assert_eq!(reads, 0, "no stream or stock is read per idle sale");
    assert!(
        total < 120,
        "{total} commands in {idle:?}: idle cost must not grow with the number of sales"
    );
    b.stop().await;
}

/// A burst spread over many sales, and one on a single sale: every queued order is written,
/// and each sale leaves the active set once its stream is drained and its lease ran out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_over_many_sales_and_one_are_written() {
    let _serial = SERIAL.lock().await;
    let b = Backend::start(Target::Single, &[]).await;
    let sales = create_many(&b, 150, 5, -1000).await;
    let hot = b.create_sale(300, 1).await;
    let mut buys = Vec::new();
    for (i, sale) in sales.iter().enumerate() {
        for j in 0..2 {
            buys.push((*sale, format!("many-{sale}-{i}-{j}")));
        }
    }
    for i in 0..300 {
        buys.push((hot, format!("hot-{hot}-{i}")));
    }
    let b = Arc::new(b);
    let mut tasks = Vec::new();
    for chunk in buys.chunks(buys.len() / 16 + 1) {
        let (b, chunk) = (b.clone(), chunk.to_vec());
        tasks.push(tokio::spawn(async move {
            for (sale, name) in chunk {
                let token = b.login(&name).await;
                let path = b.path(sale, &token).await;
                let (status, v) = b.buy(&path, &token).await;
                assert_eq!(status, StatusCode::OK, "{v}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(b.wait_orders(hot, 300).await, 300);
    for sale in &sales {
        assert_eq!(b.wait_orders(*sale, 2).await, 2, "sale {sale}");
    }
    let (_, active) = seckill::store::activity::active(&b.app.redis)
        .await
        .unwrap();
    assert!(
        active.iter().any(|(id, _)| *id == hot),
        "a sale that just sold is busy"
    );
    let b = Arc::try_unwrap(b).ok().expect("the tasks are done");
    b.stop().await;
}
