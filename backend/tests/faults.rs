//! Faults injected for real: each test runs its own Redis, MariaDB and backend processes
//! (`common::world`) and kills one of them with `kill -9` in the middle of a burst of buys,
//! or freezes Redis, or makes MariaDB refuse one order. After each, the invariants of
//! docs/DESIGN.md must hold: every `queued` answer ends as exactly one order, never more orders
//! than stock, never two for one user, and Redis stock + live orders = initial stock.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::world::World;
use common::Api;
use hyper::{Method, StatusCode};
use mysql_async::prelude::Queryable;
use serde_json::json;

/// Each test starts three servers; one at a time keeps the machine's two cores sane.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Shopper {
    name: String,
    token: String,
    path: String,
}

#[derive(Debug, Clone)]
enum Outcome {
    Queued(u64),
    Refused(StatusCode),
    /// No answer: the backend died with the request in flight.
    Lost,
}

async fn create_sale(api: &Api, stock: u32) -> u64 {
    let starts = seckill::clock::now_ms() - 1000;
    api.create_sale_from(json!({"title": "Fault", "price_cents": 100, "stock": stock,
        "starts_at": starts, "ends_at": starts + 600_000, "per_user_limit": 1, "queue": "none"}))
        .await
}

async fn shoppers(api: &Api, sale: u64, prefix: &str, n: usize) -> Vec<Arc<Shopper>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("{prefix}-{sale}-{i}");
        let token = api.login(&name).await;
        let path = api.path(sale, &token).await;
        out.push(Arc::new(Shopper { name, token, path }));
    }
    out
}

/// Every shopper buys once, `concurrency` at a time; `queued` counts queued answers live.
async fn burst(
    api: Arc<Api>,
    who: Vec<Arc<Shopper>>,
    concurrency: usize,
    queued: Arc<AtomicUsize>,
) -> Vec<(Arc<Shopper>, Outcome)> {
    let gate = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = Vec::with_capacity(who.len());
    for s in who {
        let (api, gate, queued) = (api.clone(), gate.clone(), queued.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.unwrap();
            let outcome = match api
                .try_call(Method::POST, &s.path, Some(&s.token), None)
                .await
            {
                Ok((StatusCode::OK, v)) => {
                    queued.fetch_add(1, Ordering::Relaxed);
                    Outcome::Queued(v["order_id"].as_str().unwrap().parse().unwrap())
                }
                Ok((status, _)) => Outcome::Refused(status),
                Err(_) => Outcome::Lost,
            };
            (s, outcome)
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// Waits until the sale is quiet: nothing in flight, nothing owed, drift 0 (or 60 s pass).
async fn settle(w: &World, sale: u64) -> seckill::lifecycle::reconcile::SaleCheck {
    let (redis, db) = w.inspect().await;
    let s = seckill::buy::sale_rows::load(&db, sale)
        .await
        .unwrap()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c = seckill::lifecycle::reconcile::check(&redis, &db, &s).await;
        if let Ok(c) = &c {
            if (c.queued == 0 && c.unreleased.is_empty() && c.drift == 0)
                || Instant::now() > deadline
            {
                return c.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "the sale never settled: {c:?}\n{}",
            w.backend_log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// (order id -> user id) of the sale's orders in MariaDB.
async fn orders_in_db(w: &World, sale: u64) -> HashMap<u64, u64> {
    let (_, db) = w.inspect().await;
    let mut c = db.get_conn().await.unwrap();
    let rows: Vec<(u64, u64)> = c
        .exec("SELECT id, user_id FROM orders WHERE sale_id = ?", (sale,))
        .await
        .unwrap();
    rows.into_iter().collect()
}

/// The invariants after a fault: every queued answer is an order, exactly `stock` orders
/// (the crowd outnumbers the stock, so it sells out), one per user, drift 0.
async fn assert_invariants(w: &World, sale: u64, stock: usize, queued: &[u64]) {
    let check = settle(w, sale).await;
    let orders = orders_in_db(w, sale).await;
    for id in queued {
        assert!(
            orders.contains_key(id),
            "queued order {id} is not in MariaDB"
        );
    }
    assert_eq!(orders.len(), stock, "exactly the stock was sold: {check:?}");
    let users: HashSet<u64> = orders.values().copied().collect();
    assert_eq!(users.len(), orders.len(), "never two orders for one user");
    assert_eq!((check.drift, check.stock_left), (0, Some(0)), "{check:?}");
}

fn queued_ids(results: &[(Arc<Shopper>, Outcome)]) -> Vec<u64> {
    results
        .iter()
        .filter_map(|(_, o)| match o {
            Outcome::Queued(id) => Some(*id),
            _ => None,
        })
        .collect()
}

/// Waits until `queued` reaches `n`.
async fn when_queued(queued: &AtomicUsize, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while queued.load(Ordering::Relaxed) < n {
        assert!(Instant::now() < deadline, "the burst stalled");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Buys again for every shopper whose answer was lost or 503, until each has a final answer.
async fn retry_unanswered(api: Arc<Api>, results: &mut Vec<(Arc<Shopper>, Outcome)>) {
    for _ in 0..50 {
        let again: Vec<Arc<Shopper>> = results
            .iter()
            .filter(|(_, o)| {
                matches!(
                    o,
                    Outcome::Lost | Outcome::Refused(StatusCode::SERVICE_UNAVAILABLE)
                )
            })
            .map(|(s, _)| s.clone())
            .collect();
        if again.is_empty() {
            return;
        }
        let names: HashSet<String> = again.iter().map(|s| s.name.clone()).collect();
        results.retain(|(s, _)| !names.contains(&s.name));
        results.extend(burst(api.clone(), again, 16, Arc::new(AtomicUsize::new(0))).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("some shoppers never got an answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_backend_mid_burst_loses_no_queued_order() {
    let _serial = SERIAL.lock().await;
    let mut w = World::new("backend", &[], &[]);
    w.start_backend().await;
    let api = Arc::new(Api::new(w.api.base.clone()));
    let stock = 300;
    let sale = create_sale(&api, stock).await;
    let crowd = shoppers(&api, sale, "kb", 700).await;
    let queued = Arc::new(AtomicUsize::new(0));
    let running = tokio::spawn(burst(api.clone(), crowd, 32, queued.clone()));
    when_queued(&queued, 100).await;
    w.kill_backend();
    let mut results = running.await.unwrap();
    assert!(
        results.iter().any(|(_, o)| matches!(o, Outcome::Lost)),
        "the kill hit requests in flight"
    );
    w.start_backend().await;
    retry_unanswered(api.clone(), &mut results).await;
    assert_invariants(&w, sale, stock as usize, &queued_ids(&results)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_mariadb_mid_burst_lands_every_order_once_it_is_back() {
    let _serial = SERIAL.lock().await;
    let mut w = World::new("mariadb", &[], &[]);
    w.start_backend().await;
    let api = Arc::new(Api::new(w.api.base.clone()));
    let stock = 300;
    let sale = create_sale(&api, stock).await;
    let crowd = shoppers(&api, sale, "km", 600).await;
    let queued = Arc::new(AtomicUsize::new(0));
    let running = tokio::spawn(burst(api.clone(), crowd, 32, queued.clone()));
    when_queued(&queued, 50).await;
    w.kill_mariadb();
    let results = running.await.unwrap();
    // Buying needs no MariaDB: the whole burst was answered while it was down.
    assert!(results.iter().all(|(_, o)| !matches!(
        o,
        Outcome::Lost | Outcome::Refused(StatusCode::SERVICE_UNAVAILABLE)
    )));
    w.start_mariadb();
    assert_invariants(&w, sale, stock as usize, &queued_ids(&results)).await;
}

/// Redis killed mid-burst and restarted from its AOF.
async fn redis_killed_mid_burst(fsync: &str) -> (usize, usize) {
    let mut w = World::new(
        "redis",
        &["--appendonly", "yes", "--appendfsync", fsync],
        &[],
    );
    w.start_backend().await;
    let api = Arc::new(Api::new(w.api.base.clone()));
    let stock = 300;
    let sale = create_sale(&api, stock).await;
    let crowd = shoppers(&api, sale, "kr", 700).await;
    let queued = Arc::new(AtomicUsize::new(0));
    let running = tokio::spawn(burst(api.clone(), crowd, 32, queued.clone()));
    when_queued(&queued, 100).await;
    w.kill_redis();
    let started = Instant::now();
    let mut results = running.await.unwrap();
    let fast_503 = results
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Refused(StatusCode::SERVICE_UNAVAILABLE)))
        .count();
    assert!(fast_503 > 0, "buys failed with 503 while Redis was down");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "and failed fast"
    );
    w.start_redis();
    retry_unanswered(api.clone(), &mut results).await;
    let queued = queued_ids(&results);
    let orders = {
        settle(&w, sale).await;
        orders_in_db(&w, sale).await
    };
    let lost = queued.iter().filter(|id| !orders.contains_key(id)).count();
    let check = settle(&w, sale).await;
    assert_eq!(
        orders.len(),
        stock as usize,
        "sold exactly the stock, no oversell: {check:?}"
    );
    let users: HashSet<u64> = orders.values().copied().collect();
    assert_eq!(users.len(), orders.len(), "never two orders for one user");
    assert_eq!((check.drift, check.stock_left), (0, Some(0)), "{check:?}");
    assert!(
        w.backend_log().contains("recovery: sale"),
        "the backend rebuilt the sale"
    );
    (lost, queued.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_redis_with_aof_always_loses_nothing_and_never_oversells() {
    let _serial = SERIAL.lock().await;
    let (lost, queued) = redis_killed_mid_burst("always").await;
    assert_eq!(
        lost, 0,
        "with appendfsync always no queued answer is lost ({queued} queued)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_redis_with_aof_everysec_never_oversells() {
    let _serial = SERIAL.lock().await;
    let (lost, queued) = redis_killed_mid_burst("everysec").await;
    // Up to a second of acknowledged writes may go (the documented window); the stock they
    // held is sold again, never twice.
    eprintln!("everysec: {lost} of {queued} queued answers lost with the last second of writes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_without_aof_is_rebuilt_from_mariadb() {
    let _serial = SERIAL.lock().await;
    let mut w = World::new("noaof", &["--appendonly", "no"], &[]);
    w.start_backend().await;
    let api = Arc::new(Api::new(w.api.base.clone()));
    let stock = 200;
    let sale = create_sale(&api, stock).await;
    let first = shoppers(&api, sale, "na", 120).await;
    let early = burst(
        api.clone(),
        first.clone(),
        16,
        Arc::new(AtomicUsize::new(0)),
    )
    .await;
    let early_ids = queued_ids(&early);
    assert_eq!(early_ids.len(), 120);
    settle(&w, sale).await;
    w.kill_redis();
    w.start_redis();
    // Everything Redis knew is gone; the backend rebuilds it from MariaDB before buys resume.
    let second = shoppers(&api, sale, "nb", 200).await;
    let mut results = burst(api.clone(), second, 16, Arc::new(AtomicUsize::new(0))).await;
    retry_unanswered(api.clone(), &mut results).await;
    let sold_after = queued_ids(&results).len();
    assert_eq!(
        sold_after,
        stock as usize - 120,
        "only the units MariaDB did not hold were sold again"
    );
    // Earlier buyers are still held to their limit.
    let again = burst(
        api.clone(),
        first[..10].to_vec(),
        4,
        Arc::new(AtomicUsize::new(0)),
    )
    .await;
    assert!(
        again.iter().all(|(_, o)| matches!(
            o,
            Outcome::Refused(StatusCode::CONFLICT) | Outcome::Refused(StatusCode::GONE)
        )),
        "{:?}",
        again.iter().map(|(_, o)| o.clone()).collect::<Vec<_>>()
    );
    let mut all = early_ids;
    all.extend(queued_ids(&results));
    assert_invariants(&w, sale, stock as usize, &all).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_redis_gets_fast_503s_and_the_service_recovers() {
    let _serial = SERIAL.lock().await;
    let mut w = World::new("pause", &[], &[]);
    w.start_backend().await;
    let api = Arc::new(Api::new(w.api.base.clone()));
    let stock = 100;
    let sale = create_sale(&api, stock).await;
    let crowd = shoppers(&api, sale, "cp", 150).await;
    let (warm, rest) = crowd.split_at(10);
    let mut results = burst(api.clone(), warm.to_vec(), 4, Arc::new(AtomicUsize::new(0))).await;
    let (redis, _) = w.inspect().await;
    let _: () = redis
        .cmd(redis::cmd("CLIENT").arg("PAUSE").arg(2000).clone())
        .await
        .unwrap();
    let paused_at = Instant::now();
    let frozen = &rest[..40];
    let mut slowest = Duration::ZERO;
    let mut during = Vec::new();
    for chunk in frozen.chunks(8) {
        let t = Instant::now();
        let r = burst(
            api.clone(),
            chunk.to_vec(),
            8,
            Arc::new(AtomicUsize::new(0)),
        )
        .await;
        slowest = slowest.max(t.elapsed());
        during.extend(r);
        if paused_at.elapsed() > Duration::from_millis(1500) {
            break;
        }
    }
    assert!(!during.is_empty());
    for (_, o) in &during {
        assert!(
            matches!(o, Outcome::Refused(StatusCode::SERVICE_UNAVAILABLE)),
            "frozen Redis: {o:?}"
        );
    }
    assert!(
        slowest < Duration::from_millis(1000),
        "each answer within a bound: {slowest:?}"
    );
    // After the pause the service recovers on its own.
    tokio::time::sleep(Duration::from_millis(2500).saturating_sub(paused_at.elapsed())).await;
    results.extend(during);
    let mut recovered = false;
    for _ in 0..50 {
        let probe = burst(
            api.clone(),
            rest[40..41].to_vec(),
            1,
            Arc::new(AtomicUsize::new(0)),
        )
        .await;
        if matches!(
            probe[0].1,
            Outcome::Queued(_) | Outcome::Refused(StatusCode::CONFLICT)
        ) {
            recovered = true;
            results.extend(probe);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "buys work again after the pause");
    results.extend(
        burst(
            api.clone(),
            rest[41..].to_vec(),
            16,
            Arc::new(AtomicUsize::new(0)),
        )
        .await,
    );
    retry_unanswered(api.clone(), &mut results).await;
    assert_invariants(&w, sale, stock as usize, &queued_ids(&results)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_mariadb_keeps_refusing_is_dead_lettered_and_its_unit_returned() {
    let _serial = SERIAL.lock().await;
    let mut w = World::new("poison", &[], &[("SECKILL_WRITER_MAX_FAILURES", "3")]);
    w.start_backend().await;
    let api = Arc::new(Api::new(w.api.base.clone()));
    let sale = create_sale(&api, 50).await;
    let crowd = shoppers(&api, sale, "po", 30).await;
    let poison_user = seckill::tokens::session::user_id_for(
        common::world::SESSION_KEY.as_bytes(),
        &crowd[7].name,
    );
    // MariaDB refuses this one shopper's row (user_id NULL in a NOT NULL column).
    w.root_sql(&format!(
        "CREATE TRIGGER refuse_one BEFORE INSERT ON orders FOR EACH ROW
           SET NEW.user_id = IF(NEW.user_id = {poison_user}, NULL, NEW.user_id)"
    ));
    let results = burst(api.clone(), crowd.clone(), 8, Arc::new(AtomicUsize::new(0))).await;
    let ids = queued_ids(&results);
    assert_eq!(ids.len(), 30);
    let check = settle(&w, sale).await;
    let orders = orders_in_db(&w, sale).await;
    assert_eq!(orders.len(), 29, "every other order landed: {check:?}");
    assert_eq!(
        (check.drift, check.stock_left),
        (0, Some(21)),
        "the poison order's unit came back: {check:?}"
    );
    let (redis, _) = w.inspect().await;
    let dead: i64 = redis
        .cmd(
            redis::cmd("XLEN")
                .arg(format!("{{sale:{sale}}}:dead"))
                .clone(),
        )
        .await
        .unwrap();
    assert_eq!(dead, 1, "the refused order is in the dead-letter stream");
    let metrics = api.get_text("/metrics").await;
    assert!(
        metrics.contains("seckill_writer_dead_letters_total 1"),
        "{metrics}"
    );
    let poison_id = results
        .iter()
        .find(|(s, _)| s.name == crowd[7].name)
        .map(|(_, o)| match o {
            Outcome::Queued(id) => *id,
            other => panic!("{other:?}"),
        })
        .unwrap();
    let (status, v) = api
        .call(
            Method::GET,
            &format!("/api/orders/{poison_id}"),
            Some(&crowd[7].token),
            None,
        )
        .await;
    assert_eq!(
        (status, v["status"].as_str()),
        (StatusCode::OK, Some("cancelled")),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_mariadb_gets_fast_503s_from_the_breaker_while_buying_goes_on() {
    let _serial = SERIAL.lock().await;
    let mut w = World::new("dbfreeze", &[], &[("SECKILL_MYSQL_TIMEOUT_MS", "300")]);
    w.start_backend().await;
    let api = Arc::new(Api::new(w.api.base.clone()));
    let sale = create_sale(&api, 50).await;
    let crowd = shoppers(&api, sale, "df", 20).await;
    let first = burst(
        api.clone(),
        crowd[..10].to_vec(),
        4,
        Arc::new(AtomicUsize::new(0)),
    )
    .await;
    let ids = queued_ids(&first);
    assert_eq!(ids.len(), 10);
    settle(&w, sale).await;
    let mut owners = first.iter().filter_map(|(s, o)| match o {
        Outcome::Queued(id) => Some((s.token.clone(), format!("/api/orders/{id}"))),
        _ => None,
    });
    let (who, order_path) = owners.next().unwrap();
    let who = &who;
    assert_eq!(
        api.call(Method::GET, &order_path, Some(who), None).await.0,
        StatusCode::OK
    );

    // A status read in the last second may come from the order cache; an
    // order nobody has looked at yet needs MariaDB.
    let (cold_who, cold_path) = owners.next().unwrap();
    w.freeze_mariadb();
    let mut took = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let (status, v) = api
            .call(Method::GET, &cold_path, Some(&cold_who), None)
            .await;
        took.push(t.elapsed());
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    }
    assert!(
        took.iter().all(|t| *t < Duration::from_secs(1)),
        "every answer bounded: {took:?}"
    );
    let fast = took
        .iter()
        .filter(|t| **t < Duration::from_millis(50))
        .count();
    assert!(
        fast >= 3,
        "once the breaker is open, answers come at once: {took:?}"
    );
    // Buying needs no MariaDB: it goes on while MariaDB is frozen.
    let second = burst(
        api.clone(),
        crowd[10..].to_vec(),
        4,
        Arc::new(AtomicUsize::new(0)),
    )
    .await;
    assert_eq!(
        queued_ids(&second).len(),
        10,
        "{:?}",
        second.iter().map(|(_, o)| o.clone()).collect::<Vec<_>>()
    );

    w.thaw_mariadb();
    let deadline = Instant::now() + Duration::from_secs(20);
    while api.call(Method::GET, &order_path, Some(who), None).await.0 != StatusCode::OK {
        assert!(Instant::now() < deadline, "order lookups never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let check = settle(&w, sale).await;
    assert_eq!(
        (check.live_in_db, check.drift, check.queued),
        (20, 0, 0),
        "{check:?}"
    );
}
