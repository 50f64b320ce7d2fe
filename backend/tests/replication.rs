//! Acknowledged means replicated, when asked (`SECKILL_REDIS_WAIT_REPLICAS`): a primary and its
//! replica, real `redis-server` processes of this test; the replica frozen (SIGSTOP) makes the
//! reservations it cannot confirm answer "not replicated" (outcome unknown: the primary has
//! them), the refusals keep their answers, and a thawed replica confirms again. Batched and
//! one call per buy.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use prometheus::{Histogram, HistogramOpts};
use seckill::buy::reserver::Reserver;
use seckill::buy::stock::{self, Reservation};
use seckill::config::RedisTarget;
use seckill::store::nodes::Nodes;
use seckill::store::redis_conn::{CallError, Redis};

use common::world::{free_port, lib};

fn signal(pidfile: &Path, sig: &str) {
    let pid = std::fs::read_to_string(pidfile).expect("pid file");
    let ok = Command::new("kill")
        .args([sig, pid.trim()])
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "kill {sig} {}", pid.trim());
}

/// A primary and one replica, stopped (and their files removed) when dropped.
struct Pair {
    dir: PathBuf,
    primary: u16,
    replica: u16,
}

impl Pair {
    fn start() -> Pair {
        let dir = std::env::temp_dir().join(format!("seckill-replication-{}", free_port()));
        let (primary, replica) = (free_port(), free_port());
        lib(
            "start_redis",
            &[dir.join("primary").to_str().unwrap(), &primary.to_string()],
        );
        lib(
            "start_redis",
            &[
                dir.join("replica").to_str().unwrap(),
                &replica.to_string(),
                "--replicaof",
                "127.0.0.1",
                &primary.to_string(),
            ],
        );
        lib(
            "wait_for",
            &[
                "30",
                "the replica in sync",
                "bash",
                "-c",
                &format!("redis-cli -p {replica} info replication | grep -q master_link_status:up"),
            ],
        );
        Pair {
            dir,
            primary,
            replica,
        }
    }

    fn replica_pid(&self) -> PathBuf {
        self.dir.join("replica").join("redis.pid")
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        // A frozen replica would not stop on SIGTERM.
        if let Ok(pid) = std::fs::read_to_string(self.replica_pid()) {
            let _ = Command::new("kill").args(["-CONT", pid.trim()]).status();
        }
        for who in ["replica", "primary"] {
            let pidfile = self.dir.join(who).join("redis.pid");
            lib("stop_pidfile", &[pidfile.to_str().unwrap(), who]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn sizes() -> Histogram {
    Histogram::with_opts(HistogramOpts::new("sizes", "buys per call")).unwrap()
}

async fn run(max: usize) {
    let pair = Pair::start();
    let redis = Redis::connect(
        &RedisTarget::Single(format!("redis://127.0.0.1:{}", pair.primary)),
        Duration::from_secs(2),
    )
    .await
    .expect("primary up");
    seckill::store::scripts::load_hot(&redis)
        .await
        .expect("scripts load");
    let sale = 9_000_000 + max as u64;
    stock::preheat(&redis, sale, 3).await.expect("preheat");
    let reserver = Reserver::replicated(
        redis.clone(),
        Default::default(),
        max,
        sizes(),
        Some((1, 300)),
    );

    // A replica that keeps up: the buy is confirmed.
    let r = reserver.reserve(sale, 1, 1, 0).await.expect("replicated");
    assert!(matches!(r, Reservation::Queued { seq: 1, .. }), "{r:?}");

    // A replica that does not answer: reserved on the primary, not confirmed.
    signal(&pair.replica_pid(), "-STOP");
    let started = std::time::Instant::now();
    let e = reserver.reserve(sale, 2, 1, 0).await.unwrap_err();
    assert!(
        matches!(
            *e,
            CallError::NotReplicated {
                wanted: 1,
                got: 0,
                within_ms: 300
            }
        ),
        "{e}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(290),
        "WAIT did not wait"
    );
    assert_eq!(stock::stock_left(&redis, sale).await.unwrap(), Some(1));
    // A refusal changed nothing: it is answered as it is, without waiting for anyone.
    let again = reserver.reserve(sale, 1, 1, 0).await.expect("a refusal");
    assert_eq!(again, Reservation::LimitReached);

    // Thawed, the replica catches up and confirms again.
    signal(&pair.replica_pid(), "-CONT");
    let r = reserver
        .reserve(sale, 3, 1, 0)
        .await
        .expect("replicated again");
    assert!(matches!(r, Reservation::Queued { seq: 3, .. }), "{r:?}");
}

#[tokio::test]
async fn a_buy_is_answered_only_once_a_replica_has_it() {
    run(1).await;
}

#[tokio::test]
async fn a_batch_is_confirmed_by_one_wait() {
    run(128).await;
}

#[tokio::test]
async fn on_a_cluster_the_wait_goes_to_the_sales_primary() {
    // The test Cluster has no replicas: WAIT, routed to the primary of the sale's slot,
    // answers 0 after its timeout, and the reservation is "not replicated".
    let nodes = std::env::var("SECKILL_TEST_REDIS_CLUSTER")
        .expect("SECKILL_TEST_REDIS_CLUSTER is set by scripts/test")
        .split(',')
        .map(|n| format!("redis://{n}"))
        .collect();
    let redis = Redis::connect(&RedisTarget::Cluster(nodes), Duration::from_secs(2))
        .await
        .expect("cluster up");
    seckill::store::scripts::load_hot(&redis)
        .await
        .expect("scripts load");
    // Sales of their own on every run (the test Cluster outlives a run during development).
    let base = 9_100_000_000 + seckill::clock::now_ms() as u64 % 1_000_000_000 * 2;
    for (sale, max) in [(base, 1usize), (base + 1, 16)] {
        stock::preheat(&redis, sale, 2).await.expect("preheat");
        let reserver = Reserver::replicated(
            redis.clone(),
            Default::default(),
            max,
            sizes(),
            Some((1, 100)),
        );
        let e = reserver.reserve(sale, 1, 1, 0).await.unwrap_err();
        assert!(
            matches!(
                *e,
                CallError::NotReplicated {
                    wanted: 1,
                    got: 0,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(stock::stock_left(&redis, sale).await.unwrap(), Some(1));
    }
}

#[tokio::test]
async fn a_promoted_replica_is_not_verified_and_refuses_buys_until_rebuilt() {
    let pair = Pair::start();
    let url = |port: u16| format!("redis://127.0.0.1:{port}");
    let primary = Nodes::new(&RedisTarget::Single(url(pair.primary)));
    let before = primary.primaries().await.expect("the primary answers");
    assert_eq!(before.len(), 1);
    // A recovery's last steps: the marker for the primary's id, then the hot scripts.
    primary.mark_and_load(&before).await.expect("marked");
    assert_eq!(primary.state(&before[0]).await.unwrap(), (true, true));

    // The replica is no primary while it follows.
    let replica = Nodes::new(&RedisTarget::Single(url(pair.replica)));
    assert!(
        replica.primaries().await.is_err(),
        "a replica passed as a primary"
    );

    // Promoted (as the Cluster would after its master died): a new replication id, no marker
    // for it, and no hot scripts (loaded on primaries only): its first buy answers NOSCRIPT.
    let promoted = Command::new("redis-cli")
        .args(["-p", &pair.replica.to_string(), "REPLICAOF", "NO", "ONE"])
        .status()
        .expect("redis-cli runs");
    assert!(promoted.success());
    let after = replica
        .primaries()
        .await
        .expect("the promoted replica answers");
    assert_ne!(
        after[0].replid, before[0].replid,
        "a promotion keeps its id"
    );
    assert_eq!(replica.state(&after[0]).await.unwrap(), (false, false));
    let direct = Redis::connect(
        &RedisTarget::Single(url(pair.replica)),
        Duration::from_secs(2),
    )
    .await
    .expect("the promoted replica");
    let e = stock::reserve(&direct, 1, 1, 1, 0, i64::MAX / 4)
        .await
        .unwrap_err();
    assert!(e.is_noscript(), "a buy on an unrebuilt primary: {e}");

    // Rebuilt (marked, then the scripts): verified, and it takes buys.
    replica.mark_and_load(&after).await.expect("marked");
    assert_eq!(replica.state(&after[0]).await.unwrap(), (true, true));
    stock::preheat(&direct, 1, 1).await.expect("preheat");
    let (r, _) = stock::reserve(&direct, 1, 1, 1, 0, i64::MAX / 4)
        .await
        .expect("a buy");
    assert!(matches!(r, Reservation::Queued { .. }), "{r:?}");
}
