//! The reconciler's screen by counts (for sales with large ledgers): it vouches for a sale
//! only when every count agrees, and hands anything else to the exact check.

mod common;

use common::{signed_path, Backend, Target};
use hyper::StatusCode;
use seckill::lifecycle::reconcile::{check, screen};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_screen_vouches_only_when_every_count_agrees() {
    // No background pass (sweeper, reconciler) may repair what this test breaks on purpose.
    let b = Backend::start(Target::Single, &[("SECKILL_SWEEP_INTERVAL_MS", "3600000")]).await;
    let sale_id = b.create_sale(50, 1).await;
    for i in 0..10 {
        let token = b.login(&format!("screen-{sale_id}-{i}")).await;
        let (status, _) = b.buy(&signed_path(sale_id, &token), &token).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(b.wait_orders(sale_id, 10).await, 10);
    let (redis, db) = (&b.app.bg_redis, &b.app.db);
    let sale = seckill::buy::sale_rows::load(db, sale_id)
        .await
        .unwrap()
        .unwrap();

    // A small ledger is always checked exactly.
    assert!(screen(redis, db, &sale, 100).await.unwrap().is_none());
    // Counts agree: the screen vouches, with the exact check's figures.
    let exact = check(redis, db, &sale).await.unwrap();
    let screened = screen(redis, db, &sale, 5)
        .await
        .unwrap()
        .expect("counts agree");
    assert_eq!(screened, exact);
    assert_eq!((screened.drift, screened.live_in_db), (0, 10));

    // A unit gone from Redis's stock: the counts disagree.
    let stock = format!("{{sale:{sale_id}}}:stock");
    b.redis_int(redis::cmd("DECR").arg(&stock).clone()).await;
    assert!(screen(redis, db, &sale, 5).await.unwrap().is_none());
    assert_eq!(check(redis, db, &sale).await.unwrap().drift, 1);
    b.redis_int(redis::cmd("INCR").arg(&stock).clone()).await;
    assert!(screen(redis, db, &sale, 5).await.unwrap().is_some());

    // A cancelled order whose unit Redis still holds: only the exact check can settle it.
    b.sql_count(&format!(
        "UPDATE orders SET status = 'cancelled', released_ms = NULL WHERE sale_id = {sale_id} AND seq = 1"
    ))
    .await;
    assert!(screen(redis, db, &sale, 5).await.unwrap().is_none());
    assert_eq!(check(redis, db, &sale).await.unwrap().unreleased, vec![1]);
    b.stop().await;
}
