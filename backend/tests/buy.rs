//! The invariants of the buy path, proven against real Redis (standalone and Cluster) and
//! real MariaDB: never more orders than stock, never two for one user, every `queued` ends as
//! exactly one row.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::{Backend, Target};
use hyper::StatusCode;

/// 2,000 shoppers at once against 100 units.
async fn crowd_gets_exactly_the_stock(target: Target) {
    let b = Arc::new(Backend::start(target, &[]).await);
    let sale = b.create_sale(100, 1).await;
    let mut shoppers = Vec::new();
    for i in 0..2000 {
        let token = b.login(&format!("crowd-{sale}-{i}")).await;
        let path = b.path(sale, &token).await;
        shoppers.push((token, path));
    }
    let mut tasks = Vec::new();
    for (token, path) in shoppers {
        let b = b.clone();
        tasks.push(tokio::spawn(async move { b.buy(&path, &token).await }));
    }
    let mut queued = HashSet::new();
    let (mut sold_out, mut other) = (0, Vec::new());
    for t in tasks {
        let (status, v) = t.await.unwrap();
        match status {
            StatusCode::OK => {
                assert_eq!(v["status"], "queued");
                assert!(
                    queued.insert(v["order_id"].as_str().unwrap().to_string()),
                    "order ids are unique"
                );
            }
            StatusCode::GONE => sold_out += 1,
            s => other.push((s, v)),
        }
    }
    assert!(other.is_empty(), "only queued or sold out: {other:?}");
    assert_eq!(queued.len(), 100);
    assert_eq!(sold_out, 1900);
    assert_eq!(b.wait_orders(sale, 100).await, 100);
    // Let a late writer batch land, if there were one, before counting again.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(b.order_count(sale).await, 100);
    assert_eq!(
        b.sql_count(&format!(
            "SELECT COUNT(DISTINCT user_id) FROM orders WHERE sale_id = {sale}"
        ))
        .await,
        100
    );
    let ids: HashSet<String> = {
        use mysql_async::prelude::Queryable;
        let mut c = b.app.db.get_conn().await.unwrap();
        let rows: Vec<u64> = c
            .query(format!("SELECT id FROM orders WHERE sale_id = {sale}"))
            .await
            .unwrap();
        rows.into_iter().map(|i| i.to_string()).collect()
    };
    assert_eq!(
        ids, queued,
        "every queued answer is a row, and every row was answered queued"
    );
    let stock = b.stock_left(sale).await;
    assert_eq!(stock, Some(0), "Redis stock ends at 0, never negative");
    let check = b.check(sale).await;
    assert_eq!(
        (check.drift, check.queued, check.live_in_db),
        (0, 0, 100),
        "every unit accounted for, nothing left in flight: {check:?}"
    );
    Arc::try_unwrap(b)
        .ok()
        .expect("all tasks done")
        .stop()
        .await;
}

/// One shopper firing 50 requests at once gets exactly one order.
async fn one_user_gets_one_order(target: Target) {
    let b = Arc::new(Backend::start(target, &[]).await);
    let sale = b.create_sale(10, 1).await;
    let token = b.login(&format!("greedy-{sale}")).await;
    let path = b.path(sale, &token).await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (b, token, path) = (b.clone(), token.clone(), path.clone());
        tasks.push(tokio::spawn(async move { b.buy(&path, &token).await.0 }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1);
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CONFLICT)
            .count(),
        49
    );
    assert_eq!(b.wait_orders(sale, 1).await, 1);
    let stock = b.stock_left(sale).await;
    assert_eq!(stock, Some(9));
    Arc::try_unwrap(b)
        .ok()
        .expect("all tasks done")
        .stop()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn standalone_2000_shoppers_100_units() {
    crowd_gets_exactly_the_stock(Target::Single).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_2000_shoppers_100_units() {
    crowd_gets_exactly_the_stock(Target::Cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn standalone_one_user_50_requests() {
    one_user_gets_one_order(Target::Single).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_one_user_50_requests() {
    one_user_gets_one_order(Target::Cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_limit_two_allows_two_orders() {
    let b = Backend::start(Target::Single, &[]).await;
    let sale = b.create_sale(10, 2).await;
    let token = b.login(&format!("two-{sale}")).await;
    let path = b.path(sale, &token).await;
    assert_eq!(b.buy(&path, &token).await.0, StatusCode::OK);
    assert_eq!(b.buy(&path, &token).await.0, StatusCode::OK);
    assert_eq!(b.buy(&path, &token).await.0, StatusCode::CONFLICT);
    assert_eq!(b.wait_orders(sale, 2).await, 2);
    b.stop().await;
}
