//! Reservations in batches are exactly reservations one after another: the batch script
//! against the single-buyer script on real Redis (standalone and Cluster), over random
//! sales, buyers and batch cuts; and the group commit under concurrency.
//!
//! These sales live only in Redis (ids far above any test sale in MariaDB), so no writer
//! consumes their streams while the test compares them.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use prometheus::core::Metric;
use prometheus::{Histogram, HistogramOpts};
use redis::Value;
use seckill::buy::reserver::Reserver;
use seckill::buy::stock::{self, Reservation};
use seckill::config::RedisTarget;
use seckill::store::keys::SaleKeys;
use seckill::store::redis_conn::Redis;

use common::env;

/// A lease that never ends: these sales are not registered in the active set (no writer is
/// meant to find them), so the lease the scripts check is given directly.
const FOREVER: i64 = 4_000_000_000_000_000;

async fn redis(cluster: bool) -> Redis {
    let target = if cluster {
        RedisTarget::Cluster(
            env("SECKILL_TEST_REDIS_CLUSTER")
                .split(',')
                .map(|n| format!("redis://{n}"))
                .collect(),
        )
    } else {
        RedisTarget::Single(env("SECKILL_TEST_REDIS_URL"))
    };
    let r = Redis::connect(&target, Duration::from_secs(5))
        .await
        .expect("redis up");
    seckill::store::scripts::load_hot(&r)
        .await
        .expect("scripts load");
    r
}

/// A small deterministic generator (xorshift64*): the seed is printed, so a failing case can
/// be replayed with `SEED=...`.
struct Rng(u64);

impl Rng {
    fn from_env() -> Rng {
        let seed = std::env::var("SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("reserve_batch: SEED={seed}");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in lo..=hi.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// A sale id of this test's own, fresh for each call.
fn fresh_sale(rng: &mut Rng) -> u64 {
    4_000_000_000 + rng.range(0, 200_000_000)
}

/// Everything the reserve scripts write for one sale, with the sale's id taken out.
#[derive(Debug, PartialEq)]
struct SaleState {
    stock: Option<i64>,
    buyers: HashMap<String, String>,
    seq: Option<i64>,
    reserved: HashMap<String, String>,
    /// (seq, user, slot, ts) of every stream entry, in stream order.
    stream: Vec<Vec<String>>,
}

async fn state(r: &Redis, sale: u64) -> SaleState {
    let k = SaleKeys::new(sale);
    let stock: Option<i64> = r
        .cmd(redis::cmd("GET").arg(&k.stock).clone())
        .await
        .unwrap();
    let buyers: HashMap<String, String> = r
        .cmd(redis::cmd("HGETALL").arg(&k.buyers).clone())
        .await
        .unwrap();
    let seq: Option<i64> = r.cmd(redis::cmd("GET").arg(&k.seq).clone()).await.unwrap();
    let reserved: HashMap<String, String> = r
        .cmd(redis::cmd("HGETALL").arg(&k.reserved).clone())
        .await
        .unwrap();
    let entries: Vec<(String, Vec<String>)> = r
        .cmd(
            redis::cmd("XRANGE")
                .arg(&k.orders)
                .arg("-")
                .arg("+")
                .clone(),
        )
        .await
        .unwrap();
    SaleState {
        stock,
        buyers,
        seq,
        reserved,
        stream: entries.into_iter().map(|(_, fields)| fields).collect(),
    }
}

async fn drop_sale(r: &Redis, sale: u64) {
    // Not busy any more (the reserver registered it): no writer should look for it.
    let _: Value = r
        .cmd(
            redis::cmd("ZREM")
                .arg(seckill::store::activity::ACTIVE)
                .arg(sale)
                .clone(),
        )
        .await
        .unwrap();
    let k = SaleKeys::new(sale);
    let _: Value = r
        .cmd(
            redis::cmd("DEL")
                .arg(&k.stock)
                .arg(&k.buyers)
                .arg(&k.seq)
                .arg(&k.reserved)
                .arg(&k.orders)
                .clone(),
        )
        .await
        .unwrap();
}

/// One random case: a sale (or none: not loaded), buyers drawn from a small crowd so that
/// many come back, the same calls made one by one on sale A and in random cuts on sale B.
async fn one_case(r: &Redis, rng: &mut Rng, case: usize) {
    let (a, b) = (fresh_sale(rng), fresh_sale(rng));
    let loaded = rng.range(0, 9) > 0;
    let stock = rng.range(0, 40) as u32;
    let limit = rng.range(1, 3) as u32;
    let crowd = rng.range(1, 60);
    let buyers: Vec<(u64, i64)> = (0..rng.range(0, 150))
        .map(|_| {
            (
                rng.range(1, crowd),
                1_795_000_000_000 + rng.range(0, 9999) as i64,
            )
        })
        .collect();
    if loaded {
        stock::preheat(r, a, stock).await.unwrap();
        stock::preheat(r, b, stock).await.unwrap();
    }
    let mut one_by_one = Vec::new();
    for &(user, now) in &buyers {
        one_by_one.push(
            stock::reserve(r, a, user, limit, now, FOREVER)
                .await
                .unwrap()
                .0,
        );
    }
    let mut batched = Vec::new();
    let mut rest = &buyers[..];
    while !rest.is_empty() {
        let n = (rng.range(1, 24) as usize).min(rest.len());
        let (outcomes, left) = stock::reserve_many(r, b, limit, &rest[..n], FOREVER)
            .await
            .unwrap();
        let stock_now: Option<i64> = stock::stock_left(r, b).await.unwrap();
        assert_eq!(
            left,
            stock_now.unwrap_or(-1),
            "case {case}: units left after a batch"
        );
        batched.extend(outcomes);
        rest = &rest[n..];
    }
    let what = format!(
        "case {case}: loaded {loaded}, stock {stock}, limit {limit}, {} buyers of {crowd}",
        buyers.len()
    );
    assert_eq!(one_by_one, batched, "{what}: outcomes differ");
    assert_eq!(
        state(r, a).await,
        state(r, b).await,
        "{what}: Redis differs"
    );
    if loaded {
        let queued = one_by_one
            .iter()
            .filter(|o| matches!(o, Reservation::Queued { .. }))
            .count() as u32;
        assert!(queued <= stock, "{what}: {queued} queued of {stock}");
    }
    drop_sale(r, a).await;
    drop_sale(r, b).await;
}

async fn batches_equal_sequential_calls(cluster: bool) {
    let r = redis(cluster).await;
    let mut rng = Rng::from_env();
    for case in 0..120 {
        one_case(&r, &mut rng, case).await;
    }
}

#[tokio::test]
async fn standalone_batches_equal_sequential_calls() {
    batches_equal_sequential_calls(false).await;
}

#[tokio::test]
async fn cluster_batches_equal_sequential_calls() {
    batches_equal_sequential_calls(true).await;
}

#[tokio::test]
async fn an_empty_batch_costs_nothing() {
    let r = redis(false).await;
    let (out, _) = stock::reserve_many(&r, 4_300_000_001, 1, &[], FOREVER)
        .await
        .unwrap();
    assert!(out.is_empty());
}

/// A reservation whose lease is about to end does nothing (see store::activity): no unit
/// taken, no entry in the stream, answered LeaseEnded, alone or in a batch.
#[tokio::test]
async fn a_lease_about_to_end_reserves_nothing() {
    let r = redis(false).await;
    let sale = 4_300_000_002;
    stock::preheat(&r, sale, 5).await.unwrap();
    let soon = seckill::clock::now_ms() + 1_000; // inside the 2 s margin
    let (one, _) = stock::reserve(&r, sale, 1, 1, 0, soon).await.unwrap();
    assert_eq!(one, Reservation::LeaseEnded);
    let (many, left) = stock::reserve_many(&r, sale, 1, &[(2, 0), (3, 0)], soon)
        .await
        .unwrap();
    assert_eq!(many, vec![Reservation::LeaseEnded, Reservation::LeaseEnded]);
    assert_eq!(left, -1);
    assert_eq!(stock::stock_left(&r, sale).await.unwrap(), Some(5));
    let len: i64 = r
        .cmd(redis::cmd("XLEN").arg(SaleKeys::new(sale).orders).clone())
        .await
        .unwrap();
    assert_eq!(len, 0, "no order entered the stream");
    let later = seckill::clock::now_ms() + 60_000;
    let (ok, left) = stock::reserve(&r, sale, 1, 1, 0, later).await.unwrap();
    assert!(matches!(ok, Reservation::Queued { .. }));
    assert_eq!(left, 4);
    drop_sale(&r, sale).await;
}

fn histogram() -> Histogram {
    Histogram::with_opts(
        HistogramOpts::new("batch", "buys per call").buckets(vec![1.0, 8.0, 16.0, 32.0]),
    )
    .unwrap()
}

/// 600 buys from 300 shoppers (each twice) at once for 60 units, limit 1, batches of at
/// most 16: exactly 60 orders, no shopper twice, every order in the stream numbered 1..=60,
/// every buy in exactly one call, no call over 16.
async fn group_commit_under_a_crowd(cluster: bool) {
    let r = redis(cluster).await;
    let mut rng = Rng::from_env();
    let sale = fresh_sale(&mut rng);
    stock::preheat(&r, sale, 60).await.unwrap();
    let sizes = histogram();
    let reserver = Reserver::new(r.clone(), Default::default(), 16, sizes.clone());
    let mut tasks = Vec::new();
    for i in 0..600u64 {
        let reserver: Arc<Reserver> = reserver.clone();
        let user = 1 + i % 300;
        tasks.push(tokio::spawn(async move {
            (
                user,
                reserver.reserve(sale, user, 1, 1_795_000_000_000).await,
            )
        }));
    }
    let mut orders: HashMap<u64, u64> = HashMap::new();
    let (mut sold_out, mut duplicate) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            (user, Ok(Reservation::Queued { seq, slot })) => {
                assert_eq!(slot, 1);
                assert!(
                    orders.insert(user, seq).is_none(),
                    "user {user} bought twice"
                );
            }
            (_, Ok(Reservation::SoldOut)) => sold_out += 1,
            (_, Ok(Reservation::LimitReached)) => duplicate += 1,
            (_, other) => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(orders.len(), 60);
    assert_eq!(orders.len() + sold_out + duplicate, 600);
    let mut seqs: Vec<u64> = orders.values().copied().collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=60).collect::<Vec<u64>>());
    let s = state(&r, sale).await;
    assert_eq!(s.stock, Some(0));
    assert_eq!(s.stream.len(), 60);
    assert_eq!(s.reserved.len(), 60);
    assert_eq!(
        sizes.get_sample_sum(),
        600.0,
        "every buy in exactly one call"
    );
    let over_16 = sizes.get_sample_count()
        - sizes.metric().get_histogram().get_bucket()[2].cumulative_count();
    assert_eq!(over_16, 0, "no call over the cap");
    drop_sale(&r, sale).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn standalone_group_commit_under_a_crowd() {
    group_commit_under_a_crowd(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_group_commit_under_a_crowd() {
    group_commit_under_a_crowd(true).await;
}

/// A buy alone is sent at once, alone: one call of one.
#[tokio::test]
async fn a_lone_buy_waits_for_no_one() {
    let r = redis(false).await;
    let mut rng = Rng::from_env();
    let sale = fresh_sale(&mut rng);
    stock::preheat(&r, sale, 5).await.unwrap();
    let sizes = histogram();
    let reserver = Reserver::new(r.clone(), Default::default(), 128, sizes.clone());
    let got = reserver.reserve(sale, 7, 1, 1).await.unwrap();
    assert_eq!(got, Reservation::Queued { seq: 1, slot: 1 });
    assert_eq!((sizes.get_sample_count(), sizes.get_sample_sum()), (1, 1.0));
    drop_sale(&r, sale).await;
}
