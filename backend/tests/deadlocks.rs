//! InnoDB deadlocks are provoked on purpose against the real MariaDB: two connections lock
//! two rows in opposite order. The transaction InnoDB picks as the victim gets error 1213;
//! run through `db::retry_conflicts`, it is run again and commits.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Pool, TxOpts};

async fn pool() -> Pool {
    seckill::store::db::pool(&common::env("SECKILL_TEST_MYSQL_URL"), 8).unwrap()
}

/// Waits until a connection of ours runs `statement` (B asking for row 1, which A holds).
/// Whether A's next request comes just before or just after B's, the two form a cycle.
async fn until_running(db: &Pool, statement: &str) {
    let mut c = db.get_conn().await.unwrap();
    for _ in 0..500 {
        let running: Option<i64> = c
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.processlist WHERE info = ?",
                (statement,),
            )
            .await
            .unwrap();
        if running.unwrap_or(0) > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("B never asked for the row A holds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlocked_transaction_is_retried_and_wins() {
    let db = pool().await;
    let table = format!("deadlock_probe_{}", std::process::id());
    {
        let mut c = db.get_conn().await.unwrap();
        c.query_drop(format!(
            "CREATE TABLE {table} (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB"
        ))
        .await
        .unwrap();
        let rows: Vec<String> = (1..=200).map(|i| format!("({i}, 0)")).collect();
        c.query_drop(format!("INSERT INTO {table} VALUES {}", rows.join(",")))
            .await
            .unwrap();
    }

    // A: the heavy transaction (200 rows changed), so InnoDB picks B as the victim. It holds
    // row 1 and, once B waits for row 1 while holding row 2, asks for row 2: a deadlock.
    let mut a_conn = db.get_conn().await.unwrap();
    let mut a = a_conn.start_transaction(TxOpts::default()).await.unwrap();
    a.query_drop(format!("UPDATE {table} SET v = v + 1 WHERE id >= 3"))
        .await
        .unwrap();
    a.query_drop(format!("UPDATE {table} SET v = v + 1 WHERE id = 1"))
        .await
        .unwrap();

    // B: row 2 then row 1, through the retry.
    let attempts = Arc::new(AtomicU32::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<u16>));
    let b_task = {
        let (db, table, attempts, first_error) = (
            db.clone(),
            table.clone(),
            attempts.clone(),
            first_error.clone(),
        );
        tokio::spawn(async move {
            seckill::store::db::retry_conflicts(|| {
                let (db, table, attempts, first_error) = (
                    db.clone(),
                    table.clone(),
                    attempts.clone(),
                    first_error.clone(),
                );
                async move {
                    attempts.fetch_add(1, Ordering::SeqCst);
                    let r = async {
                        let mut c = db.get_conn().await?;
                        let mut tx = c.start_transaction(TxOpts::default()).await?;
                        tx.query_drop(format!("UPDATE {table} SET v = v + 10 WHERE id = 2"))
                            .await?;
                        tx.query_drop(format!("UPDATE {table} SET v = v + 10 WHERE id = 1"))
                            .await?;
                        tx.commit().await
                    }
                    .await;
                    if let Err(mysql_async::Error::Server(e)) = &r {
                        first_error.lock().unwrap().get_or_insert(e.code);
                    }
                    r
                }
            })
            .await
        })
    };
    until_running(&db, &format!("UPDATE {table} SET v = v + 10 WHERE id = 1")).await;
    // Closing the circle: InnoDB detects the deadlock and rolls B back.
    a.query_drop(format!("UPDATE {table} SET v = v + 1 WHERE id = 2"))
        .await
        .unwrap();
    a.commit().await.unwrap();
    drop(a_conn);

    b_task
        .await
        .unwrap()
        .expect("the retried transaction commits");
    assert_eq!(
        *first_error.lock().unwrap(),
        Some(seckill::store::db::ER_LOCK_DEADLOCK),
        "B's first attempt met the deadlock"
    );
    assert!(attempts.load(Ordering::SeqCst) >= 2, "B was run again");
    let mut c = db.get_conn().await.unwrap();
    let v: Vec<(i32, i32)> = c
        .query(format!(
            "SELECT id, v FROM {table} WHERE id <= 2 ORDER BY id"
        ))
        .await
        .unwrap();
    assert_eq!(
        v,
        vec![(1, 11), (2, 11)],
        "both transactions took effect once"
    );
    c.query_drop(format!("DROP TABLE {table}")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_errors_are_not_retried() {
    let db = pool().await;
    let attempts = AtomicU32::new(0);
    let r: Result<(), _> = seckill::store::db::retry_conflicts(|| async {
        attempts.fetch_add(1, Ordering::SeqCst);
        let mut c = db.get_conn().await?;
        c.query_drop("SELECT * FROM no_such_table_here").await
    })
    .await;
    assert!(r.is_err());
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
}
