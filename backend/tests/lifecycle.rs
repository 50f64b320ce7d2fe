//! The order lifecycle against the real Redis and MariaDB: payment with signed, idempotent
//! notifications; the deadline sweeper returning each unit exactly once (two sweepers at once,
//! a sweeper dying between its steps); the timeout racing a late payment; the reconciler
//! finding and repairing drift.

mod common;

use std::time::Duration;

use common::{Backend, Target, ADMIN, PAY_KEY};
use hyper::{Method, StatusCode};
use mysql_async::prelude::Queryable;
use seckill::lifecycle::payment::{self, Applied, Event, Notification, Payment, Start};
use seckill::lifecycle::sweeper;
use serde_json::{json, Value};

/// Sweeps close every expired order of every sale: the tests of this file run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The background sweeper and reconciler stay out of the way: tests drive them by hand.
const MANUAL: &[(&str, &str)] = &[
    ("SECKILL_SWEEP_INTERVAL_MS", "3600000"),
    ("SECKILL_PAY_DELAY_MS", "50"),
];

/// Creates a sale with a pay window of `pay_window_s` and buys one unit each for `n` users;
/// returns the sale and (token, order id) per buyer, once all orders are in MariaDB.
async fn sale_with_orders(
    b: &Backend,
    stock: u32,
    pay_window_s: u32,
    n: usize,
) -> (u64, Vec<(String, u64)>) {
    let starts = seckill::clock::now_ms() - 1000;
    let sale = b
        .create_sale_from(
            json!({"title": "Lifecycle", "price_cents": 4200, "stock": stock,
            "starts_at": starts, "ends_at": starts + 600_000, "per_user_limit": 1,
            "pay_window_s": pay_window_s, "queue": "none"}),
        )
        .await;
    let mut buyers = Vec::new();
    for i in 0..n {
        let token = b.login(&format!("life-{sale}-{i}")).await;
        let path = b.path(sale, &token).await;
        let (status, v) = b.buy(&path, &token).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        buyers.push((token, v["order_id"].as_str().unwrap().parse().unwrap()));
    }
    assert_eq!(b.wait_orders(sale, n as i64).await, n as i64);
    (sale, buyers)
}

async fn pay(b: &Backend, token: &str, id: u64) -> (StatusCode, Value) {
    b.call(
        Method::POST,
        &format!("/api/orders/{id}/pay"),
        Some(token),
        None,
    )
    .await
}

/// True once the order reads `paid` (within 5 s).
async fn becomes_paid(b: &Backend, token: &str, id: u64) -> bool {
    for _ in 0..100 {
        if order(b, token, id).await["status"] == "paid" {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn order(b: &Backend, token: &str, id: u64) -> Value {
    let (status, v) = b
        .call(Method::GET, &format!("/api/orders/{id}"), Some(token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v
}

/// Sends a provider notification signed with `key`.
async fn notify(b: &Backend, body: &str, key: Option<&[u8]>) -> (StatusCode, Value) {
    let mut req = hyper::Request::builder()
        .method(Method::POST)
        .uri(format!("{}/api/payments/notify", b.base));
    if let Some(key) = key {
        req = req.header(
            "x-pay-signature",
            seckill::tokens::crypto::sign_hex(key, body.as_bytes()),
        );
    }
    let req = req
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_string(),
        )))
        .unwrap();
    let resp = b.client.request(req).await.unwrap();
    let status = resp.status();
    use http_body_util::BodyExt;
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Starts paying the order as its owner would, without the provider's charge (tests deliver
/// the notifications themselves).
async fn start_payment(b: &Backend, token: &str, id: u64) -> Payment {
    let user = common::user_of(token);
    match payment::start(&b.app.db, user, id, seckill::clock::now_ms())
        .await
        .unwrap()
    {
        Start::New(p) => p,
        other => panic!("expected a new payment, got {other:?}"),
    }
}

async fn payment_status(b: &Backend, payment_id: &str) -> Option<String> {
    let mut c = b.app.db.get_conn().await.unwrap();
    c.exec_first(
        "SELECT CAST(status AS CHAR) FROM payments WHERE id = ?",
        (payment_id,),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_order_is_paid_once_and_forged_notifications_are_refused() {
    let _serial = SERIAL.lock().await;
    let b = Backend::start(Target::Single, MANUAL).await;
    let (sale, buyers) = sale_with_orders(&b, 5, 900, 1).await;
    let (token, id) = &buyers[0];
    assert_eq!(order(&b, token, *id).await["status"], "created");
    // The shopper can list their orders in the sale (how a lost answer is found again).
    let (status, mine) = b
        .call(
            Method::GET,
            &format!("/api/sales/{sale}/orders"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    assert_eq!(mine["orders"].as_array().unwrap().len(), 1);
    assert_eq!(mine["orders"][0]["order_id"], id.to_string());
    let stranger = b.login(&format!("stranger-{sale}")).await;
    let (_, theirs) = b
        .call(
            Method::GET,
            &format!("/api/sales/{sale}/orders"),
            Some(&stranger),
            None,
        )
        .await;
    assert_eq!(
        theirs["orders"].as_array().unwrap().len(),
        0,
        "only one's own orders"
    );

    // The shopper pays; the simulated provider notifies the backend, signed.
    let (status, started) = pay(&b, token, *id).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let payment_id = started["payment_id"].as_str().unwrap().to_string();
    let paid = becomes_paid(&b, token, *id).await;
    assert!(paid, "the provider's notification made the order paid");
    assert_eq!(
        payment_status(&b, &payment_id).await.as_deref(),
        Some("succeeded")
    );

    // The same notification again changes nothing.
    let n = Notification {
        payment_id: payment_id.clone(),
        order_id: *id,
        amount_cents: 4200,
        event: Event::Succeeded,
    };
    let (status, v) = notify(&b, &n.body(), Some(PAY_KEY.as_bytes())).await;
    assert_eq!(
        (status, v["result"].as_str()),
        (StatusCode::OK, Some("already_paid")),
        "{v}"
    );
    let paid_ms = order(&b, token, *id).await["paid_ms"].clone();
    let (status, _) = notify(&b, &n.body(), Some(PAY_KEY.as_bytes())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        order(&b, token, *id).await["paid_ms"],
        paid_ms,
        "a replay changes nothing"
    );

    // A second, different payment for a paid order is refused and owed back. (Fresh ids: a
    // rerun against the same database must not meet this run's rows.)
    let other_id = seckill::tokens::crypto::random_hex(16);
    let forged_id = seckill::tokens::crypto::random_hex(16);
    let other = Notification {
        payment_id: other_id.clone(),
        order_id: *id,
        amount_cents: 4200,
        event: Event::Succeeded,
    };
    let (_, v) = notify(&b, &other.body(), Some(PAY_KEY.as_bytes())).await;
    assert_eq!(v["result"], "refund_due", "{v}");
    assert_eq!(
        payment_status(&b, &other_id).await.as_deref(),
        Some("refund_due")
    );

    // Unsigned and mis-signed notifications are refused and change nothing.
    let forged = Notification {
        payment_id: forged_id.clone(),
        order_id: *id,
        amount_cents: 1,
        event: Event::Succeeded,
    };
    let (status, v) = notify(&b, &forged.body(), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    let (status, v) = notify(&b, &forged.body(), Some(b"not-the-provider-key")).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("bad_signature"))
    );
    assert_eq!(
        payment_status(&b, &forged_id).await,
        None,
        "nothing recorded"
    );

    // Paying a paid order again answers the payment that paid it: no new charge.
    let (status, v) = pay(&b, token, *id).await;
    assert_eq!(
        (status, v["payment_id"].as_str(), v["status"].as_str()),
        (StatusCode::OK, Some(payment_id.as_str()), Some("succeeded")),
        "{v}"
    );
    assert_eq!(b.app.provider.charges(), 1, "one charge for one order");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sweepers_return_each_expired_unit_exactly_once() {
    let _serial = SERIAL.lock().await;
    let b = Backend::start(Target::Single, MANUAL).await;
    let (sale, buyers) = sale_with_orders(&b, 6, 1, 6).await;
    assert_eq!(b.stock_left(sale).await, Some(0));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let now = seckill::clock::now_ms();
    let (a, c) = tokio::join!(
        sweeper::sweep(&b.app.redis, &b.app.db, &b.app.metrics, now),
        sweeper::sweep(&b.app.redis, &b.app.db, &b.app.metrics, now),
    );
    let (a, c) = (a.unwrap(), c.unwrap());
    assert_eq!(
        a.closed + c.closed,
        6,
        "each order closed once: {a:?} {c:?}"
    );
    assert_eq!(
        a.released + c.released,
        6,
        "each unit returned once: {a:?} {c:?}"
    );
    assert_eq!(b.stock_left(sale).await, Some(6));
    let again = sweeper::sweep(&b.app.redis, &b.app.db, &b.app.metrics, now)
        .await
        .unwrap();
    assert_eq!(
        (again.closed, again.released),
        (0, 0),
        "a third pass finds nothing"
    );
    let check = b.check(sale).await;
    assert_eq!((check.drift, check.live_in_db), (0, 0), "{check:?}");
    let (token, id) = &buyers[0];
    assert_eq!(order(&b, token, *id).await["status"], "cancelled");
    // The buyer was released from the per-user limit and may buy again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let path = b.path(sale, token).await;
    assert_eq!(b.buy(&path, token).await.0, StatusCode::OK);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweeper_dying_between_its_steps_leaves_work_the_next_one_finishes_once() {
    let _serial = SERIAL.lock().await;
    let b = Backend::start(Target::Single, MANUAL).await;
    let (sale, _) = sale_with_orders(&b, 3, 1, 3).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Step one only: the orders are cancelled, and the sweeper "dies".
    let closed = sweeper::close_expired(&b.app.db, &b.app.metrics, seckill::clock::now_ms())
        .await
        .unwrap();
    assert_eq!(closed, 3);
    assert_eq!(b.stock_left(sale).await, Some(0), "units not returned yet");
    let check = b.check(sale).await;
    assert_eq!(
        (check.drift, check.unreleased.len()),
        (3, 3),
        "the reconciler sees the owed units"
    );
    // Two sweepers pick up the unfinished step two at once.
    let (x, y) = tokio::join!(
        sweeper::release_pending(&b.app.redis, &b.app.db, &b.app.metrics),
        sweeper::release_pending(&b.app.redis, &b.app.db, &b.app.metrics),
    );
    assert_eq!(x.unwrap() + y.unwrap(), 3, "each unit returned once");
    assert_eq!(b.stock_left(sale).await, Some(3));
    assert_eq!(b.check(sale).await.drift, 0);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_racing_a_late_payment_returns_the_unit_once_or_takes_the_money() {
    let _serial = SERIAL.lock().await;
    let b = Backend::start(Target::Single, MANUAL).await;
    let n = 40;
    let (sale, buyers) = sale_with_orders(&b, n as u32, 2, n).await;
    // Every shopper starts paying in time...
    let mut payments = Vec::new();
    for (token, id) in &buyers {
        let started = start_payment(&b, token, *id).await;
        payments.push(started);
    }
    // ...and each notification arrives right at the deadline, racing the sweepers.
    let b = std::sync::Arc::new(b);
    let mut tasks = Vec::new();
    for p in payments {
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            let pay_by: i64 = {
                let mut c = b.app.db.get_conn().await.unwrap();
                c.exec_first("SELECT pay_by_ms FROM orders WHERE id = ?", (p.order_id,))
                    .await
                    .unwrap()
                    .unwrap()
            };
            let wait = pay_by - seckill::clock::now_ms() + (p.order_id % 5) as i64 - 2;
            if wait > 0 {
                tokio::time::sleep(Duration::from_millis(wait as u64)).await;
            }
            let n = Notification {
                payment_id: p.payment_id.clone(),
                order_id: p.order_id,
                amount_cents: p.amount_cents,
                event: Event::Succeeded,
            };
            let (applied, swept) = tokio::join!(
                payment::apply(&b.app.db, &n, seckill::clock::now_ms()),
                sweeper::sweep(
                    &b.app.redis,
                    &b.app.db,
                    &b.app.metrics,
                    seckill::clock::now_ms()
                ),
            );
            swept.unwrap();
            (p, applied.unwrap())
        }));
    }
    let mut paid = 0;
    for t in tasks {
        let (p, applied) = t.await.unwrap();
        let status = payment_status(&b, &p.payment_id).await;
        match applied {
            Applied::Paid => {
                paid += 1;
                assert_eq!(status.as_deref(), Some("succeeded"));
            }
            Applied::RefundDue(_) => assert_eq!(status.as_deref(), Some("refund_due")),
            other => panic!("first delivery of a payment cannot be {other:?}"),
        }
    }
    // Whatever is still expired and unswept is closed now.
    sweeper::sweep(
        &b.app.redis,
        &b.app.db,
        &b.app.metrics,
        seckill::clock::now_ms() + 10_000,
    )
    .await
    .unwrap();
    let paid_rows = b
        .sql_count(&format!(
            "SELECT COUNT(*) FROM orders WHERE sale_id = {sale} AND status = 'paid'"
        ))
        .await;
    let refunds = b
        .sql_count(&format!(
            "SELECT COUNT(*) FROM payments p JOIN orders o ON o.id = p.order_id
          WHERE o.sale_id = {sale} AND p.status = 'refund_due' AND o.status = 'cancelled'"
        ))
        .await;
    assert_eq!(
        paid_rows, paid,
        "paid orders are exactly the accepted payments"
    );
    assert_eq!(
        refunds,
        n as i64 - paid,
        "every refused payment is owed back, on a closed order"
    );
    assert_eq!(
        b.stock_left(sale).await,
        Some(n as i64 - paid),
        "each closed order's unit came back once"
    );
    assert_eq!(b.check(sale).await.drift, 0);
    // Every refused payment is refunded once; then each order's money is its price if paid.
    let asked = b
        .app
        .request_refunds(seckill::clock::now_ms(), Some(sale))
        .await
        .unwrap();
    assert_eq!(asked as i64, n as i64 - paid);
    let mut money = seckill::lifecycle::refunds::money_check(&b.app.db, &[sale])
        .await
        .unwrap();
    for _ in 0..100 {
        if money.refunds_pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        money = seckill::lifecycle::refunds::money_check(&b.app.db, &[sale])
            .await
            .unwrap();
    }
    assert_eq!(money.refunds_pending, 0, "{money:?}");
    assert!(money.mismatched.is_empty(), "{money:?}");
    assert_eq!(money.orders_with_payments, n as u64);
    eprintln!("race: {paid} of {n} payments won against the deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_after_the_close_is_refused_and_owed_back() {
    let _serial = SERIAL.lock().await;
    let b = Backend::start(Target::Single, MANUAL).await;
    let (sale, buyers) = sale_with_orders(&b, 2, 1, 1).await;
    let (token, id) = &buyers[0];
    let started = start_payment(&b, token, *id).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    sweeper::sweep(
        &b.app.redis,
        &b.app.db,
        &b.app.metrics,
        seckill::clock::now_ms(),
    )
    .await
    .unwrap();
    let n = Notification {
        payment_id: started.payment_id.clone(),
        order_id: *id,
        amount_cents: 4200,
        event: Event::Succeeded,
    };
    let (status, v) = notify(&b, &n.body(), Some(PAY_KEY.as_bytes())).await;
    assert_eq!(
        (status, v["result"].as_str(), v["reason"].as_str()),
        (StatusCode::OK, Some("refund_due"), Some("order_closed")),
        "{v}"
    );
    assert_eq!(order(&b, token, *id).await["status"], "cancelled");
    assert_eq!(b.stock_left(sale).await, Some(2), "the unit came back once");
    let (status, v) = pay(&b, token, *id).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (StatusCode::GONE, Some("order_closed"))
    );

    // The money goes back through the provider exactly once, however many backends ask.
    let owed = seckill::lifecycle::refunds::money_check(&b.app.db, &[sale])
        .await
        .unwrap();
    assert_eq!(owed.refunds_pending, 1, "{owed:?}");
    let url = b.app.notify_url().unwrap();
    let now = seckill::clock::now_ms();
    let (x, y) = tokio::join!(
        b.app.request_refunds(now, Some(sale)),
        b.app.request_refunds(now, Some(sale)),
    );
    assert_eq!(
        x.unwrap() + y.unwrap(),
        1,
        "one backend asks for the refund"
    );
    let mut refunded = None;
    for _ in 0..100 {
        refunded = payment_status(&b, &started.payment_id).await;
        if refunded.as_deref() == Some("refunded") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        refunded.as_deref(),
        Some("refunded"),
        "the provider confirmed"
    );
    assert_eq!(b.app.provider.refunds(), 1);
    // Asked again (a retry after a lost confirmation): the provider refunds nothing more and
    // the replayed confirmation changes nothing.
    b.app.provider.refund(url, &started);
    let replay = Notification {
        event: Event::Refunded,
        ..n.clone()
    };
    let (status, v) = notify(&b, &replay.body(), Some(PAY_KEY.as_bytes())).await;
    assert_eq!(
        (status, v["result"].as_str()),
        (StatusCode::OK, Some("already_refunded")),
        "{v}"
    );
    assert_eq!(b.app.provider.refunds(), 1, "refunded once");
    let settled = seckill::lifecycle::refunds::money_check(&b.app.db, &[sale])
        .await
        .unwrap();
    assert_eq!(settled.refunds_pending, 0, "{settled:?}");
    assert!(settled.mismatched.is_empty(), "{settled:?}");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_pay_calls_make_one_charge() {
    let _serial = SERIAL.lock().await;
    let b = Backend::start(Target::Single, MANUAL).await;
    let (_, buyers) = sale_with_orders(&b, 2, 900, 1).await;
    let (token, id) = &buyers[0];
    let b = std::sync::Arc::new(b);
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let (b, token, id) = (b.clone(), token.clone(), *id);
            tokio::spawn(async move { pay(&b, &token, id).await })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for c in calls {
        let (status, v) = c.await.unwrap();
        assert!(
            status == StatusCode::ACCEPTED || status == StatusCode::OK,
            "{status}: {v}"
        );
        ids.insert(v["payment_id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 1, "every answer names the one payment: {ids:?}");
    // A second click 100 ms later: the same payment again.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_, again) = pay(&b, token, *id).await;
    assert!(
        ids.contains(again["payment_id"].as_str().unwrap()),
        "{again}"
    );
    assert_eq!(b.app.provider.charges(), 1, "one provider charge");
    let rows = b
        .sql_count(&format!(
            "SELECT COUNT(*) FROM payments WHERE order_id = {id}"
        ))
        .await;
    assert_eq!(rows, 1, "one payment row");
    let paid = becomes_paid(&b, token, *id).await;
    assert!(paid, "the one charge paid the order");
    // Someone else's order and a missing one get the same answer.
    let stranger = b.login("pay-stranger").await;
    let (s1, v1) = pay(&b, &stranger, *id).await;
    let (s2, v2) = pay(&b, &stranger, *id + 1000).await;
    assert_eq!(
        (s1, v1["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found")),
        "{v1}"
    );
    assert_eq!(
        (s2, v2["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found")),
        "{v2}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconciler_reports_drift_and_repairs_it() {
    let _serial = SERIAL.lock().await;
    let b = Backend::start(Target::Single, MANUAL).await;
    let (sale, _) = sale_with_orders(&b, 10, 900, 4).await;
    let check = b.check(sale).await;
    assert_eq!(
        (check.drift, check.stock_left, check.live_in_db),
        (0, Some(6), 4),
        "{check:?}"
    );

    // Redis loses two units (as if a return were lost): drift 2, reported, then repaired.
    b.redis_int(
        redis::cmd("DECRBY")
            .arg(format!("{{sale:{sale}}}:stock"))
            .arg(2)
            .clone(),
    )
    .await;
    let reconcile = |repair: bool| {
        let path = if repair {
            "/admin/reconcile?repair=1"
        } else {
            "/admin/reconcile"
        };
        b.call(Method::POST, path, Some(ADMIN), None)
    };
    let (status, v) = reconcile(false).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["ok"], false, "{v}");
    let mine = |v: &Value| {
        v["sales"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["sale_id"] == sale)
            .cloned()
            .unwrap()
    };
    assert_eq!(mine(&v)["drift"], 2);
    let (_, v) = reconcile(true).await;
    assert_eq!(mine(&v)["drift"], 0, "{v}");
    assert_eq!(b.stock_left(sale).await, Some(6));
    let metrics = b.get_text("/metrics").await;
    assert!(
        metrics.contains(&format!("seckill_stock_drift{{sale=\"{sale}\"}} 0")),
        "{metrics}"
    );

    // Redis forgets an order MariaDB holds and the stock key (data loss): rebuilt from MariaDB.
    b.redis_int(
        redis::cmd("DEL")
            .arg(format!("{{sale:{sale}}}:reserved"))
            .arg(format!("{{sale:{sale}}}:stock"))
            .arg(format!("{{sale:{sale}}}:seq"))
            .clone(),
    )
    .await;
    let (_, v) = reconcile(true).await;
    assert_eq!(mine(&v)["drift"], 0, "{v}");
    assert_eq!(
        b.stock_left(sale).await,
        Some(6),
        "stock rebuilt from MariaDB's live orders"
    );
    // The sequence moved well past MariaDB's highest order: a new buy gets a fresh id, never
    // one Redis may have handed out before it lost its keys, and lands.
    let token = b.login(&format!("after-repair-{sale}")).await;
    let path = b.path(sale, &token).await;
    let (status, v) = b.buy(&path, &token).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (_, seq) = seckill::buy::orders::split(v["order_id"].as_str().unwrap().parse().unwrap());
    assert_eq!(seq, 4 + seckill::buy::stock::SEQ_GAP + 1);
    assert_eq!(b.wait_orders(sale, 5).await, 5);
    // Buyers held in MariaDB are still held after the rebuild.
    let first = b.login(&format!("life-{sale}-0")).await;
    let path = b.path(sale, &first).await;
    assert_eq!(b.buy(&path, &first).await.0, StatusCode::CONFLICT);
    b.stop().await;
}
