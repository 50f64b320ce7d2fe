//! The invariants of the buy path, proven against real Redis (standalone and Cluster) and
//! real MariaDB: never more orders than stock, never two for one user, every `queued` ends as
//! exactly one row.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::{Backend, Target};
use hyper::StatusCode;

/// 2,000 shoppers at once against 100 units. A shopper told 503 (the machine is two cores
/// running this and more) tries again, as the page does; the final answers are counted.
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
        tasks.push(tokio::spawn(async move {
            let user: u64 = token.split('.').next().unwrap().parse().unwrap();
            (user, b.buy_until_answered(&path, &token).await)
        }));
    }
    let mut queued = HashSet::new();
    // Shoppers who were told 503 at least once: their reservation may have gone through with
    // the answer lost, and a retry then says 409 (or 410, once the sale is sold out).
    let mut unsure = HashSet::new();
    let (mut sold_out, mut other) = (0, Vec::new());
    for t in tasks {
        let (user, (status, v, retried)) = t.await.unwrap();
        if retried {
            unsure.insert(user);
        }
        match status {
            StatusCode::CONFLICT if retried => {}
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
    assert!(queued.len() <= 100);
    assert!(
        queued.len() + unsure.len() >= 100 && sold_out + queued.len() <= 2000,
        "{} queued, {} unsure, {sold_out} sold out",
        queued.len(),
        unsure.len()
    );
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
    let rows: Vec<(u64, u64)> = {
        use mysql_async::prelude::Queryable;
        let mut c = b.app.db.get_conn().await.unwrap();
        c.query(format!(
            "SELECT id, user_id FROM orders WHERE sale_id = {sale}"
        ))
        .await
        .unwrap()
    };
    let unexplained: Vec<&(u64, u64)> = rows
        .iter()
        .filter(|(id, user)| !queued.contains(&id.to_string()) && !unsure.contains(user))
        .collect();
    assert!(
        unexplained.is_empty(),
        "every row was answered queued (or its shopper was told 503): {unexplained:?}"
    );
    let row_ids: HashSet<String> = rows.iter().map(|(id, _)| id.to_string()).collect();
    assert!(queued.is_subset(&row_ids), "every queued answer is a row");
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
        tasks.push(tokio::spawn(async move {
            b.buy_until_answered(&path, &token).await
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap().0);
    }
    // One reservation; every other try is refused as a duplicate. (Were the one answer a
    // 503 under load, its retry says 409 too: then all 50 are 409.)
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let conflict = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert!(ok <= 1 && ok + conflict == 50, "{statuses:?}");
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
