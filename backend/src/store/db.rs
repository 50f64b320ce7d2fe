//! MariaDB: the connection pool and the schema migrations.
//!
//! Migrations are the SQL files in `backend/migrations/`, compiled in, applied in order at
//! start, each recorded in `schema_migrations`. A named lock (`GET_LOCK`) makes concurrent
//! starts of several backends apply each migration once.
//!
//! Every write that can meet another under contention (writer, sweeper, payments, releases)
//! runs through [`retry_conflicts`]: an InnoDB deadlock or lock-wait timeout is a normal
//! outcome there, and the cure is to run the whole transaction again.

use std::future::Future;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts};

use crate::error::StartError;

/// (version, SQL), in order.
const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("../../migrations/0001_init.sql")),
    (2, include_str!("../../migrations/0002_lifecycle.sql")),
    (3, include_str!("../../migrations/0003_one_charge.sql")),
    (4, include_str!("../../migrations/0004_queue.sql")),
    (5, include_str!("../../migrations/0005_revisions.sql")),
    (6, include_str!("../../migrations/0006_shoppers_orders.sql")),
    (7, include_str!("../../migrations/0007_listed.sql")),
    (8, include_str!("../../migrations/0008_fences.sql")),
];

/// Runs one request's MariaDB work bounded by `timeout`, through the breaker: while it is
/// open the call fails at once with 503; timeouts and lost connections count as failures,
/// answers (a row, no row, a refused write) as successes.
pub async fn guarded<T>(
    breaker: &crate::store::breaker::Breaker,
    timeout: Duration,
    what: &str,
    work: impl Future<Output = Result<T, crate::error::ApiError>>,
) -> Result<T, crate::error::ApiError> {
    use crate::error::ApiError;
    if !breaker.allow() {
        return Err(ApiError::mysql(format!(
            "{what}: failing fast, recent calls failed (circuit open)"
        )));
    }
    let r = match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(ApiError::mysql(format!("{what}: timed out"))),
    };
    match &r {
        Err(ApiError::Database(_)) => breaker.failure(),
        _ => breaker.success(),
    }
    r
}

/// InnoDB rolled the whole transaction back to break a deadlock.
pub const ER_LOCK_DEADLOCK: u16 = 1213;
/// InnoDB gave up waiting for a row lock (the statement was rolled back).
pub const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;
/// Attempts of one transaction before a lock conflict is returned to the caller.
pub const CONFLICT_ATTEMPTS: u32 = 8;

/// True for the errors InnoDB answers under contention, which running again resolves.
pub fn is_lock_conflict(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s)
        if s.code == ER_LOCK_DEADLOCK || s.code == ER_LOCK_WAIT_TIMEOUT)
}

/// Runs `attempt` (one whole transaction, or one statement that is its own) and runs it again,
/// up to [`CONFLICT_ATTEMPTS`] times, when InnoDB answers a deadlock or a lock-wait timeout.
/// The pause between attempts doubles from 2 ms (capped at 250 ms) plus random jitter, so two
/// transactions that deadlocked do not meet again in lockstep. Any other outcome is returned
/// at once. `attempt` must start its own transaction: a dropped one has been rolled back.
pub async fn retry_conflicts<T, F, Fut>(mut attempt: F) -> Result<T, mysql_async::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, mysql_async::Error>>,
{
    let mut pause_ms = 2u64;
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(e) if is_lock_conflict(&e) && tries < CONFLICT_ATTEMPTS => {
                let r = crate::tokens::crypto::random_bytes(2);
                let jitter = u64::from(u16::from_le_bytes([r[0], r[1]])) % (pause_ms + 1);
                tokio::time::sleep(Duration::from_millis(pause_ms + jitter)).await;
                pause_ms = (pause_ms * 2).min(250);
                tries += 1;
            }
            other => return other,
        }
    }
}

pub fn pool(url: &str, max: usize) -> Result<Pool, StartError> {
    let opts =
        Opts::from_url(url).map_err(|e| StartError::Database(format!("SECKILL_MYSQL_URL: {e}")))?;
    let constraints = PoolConstraints::new(1, max.max(1)).ok_or_else(|| {
        StartError::Database(format!("SECKILL_MYSQL_POOL_MAX: bad pool size {max}"))
    })?;
    let opts = OptsBuilder::from_opts(opts)
        .pool_opts(PoolOpts::default().with_constraints(constraints))
        .tcp_nodelay(true);
    Ok(Pool::new(opts))
}

/// Applies the migrations not yet applied. Bounded by `timeout` as a whole.
pub async fn migrate(pool: &Pool, timeout: Duration) -> Result<(), StartError> {
    tokio::time::timeout(timeout.max(Duration::from_secs(30)), migrate_inner(pool))
        .await
        .map_err(|_| StartError::Database("migrations did not finish in time".into()))?
        .map_err(|e| StartError::Database(format!("migration failed: {e}")))
}

async fn migrate_inner(pool: &Pool) -> Result<(), mysql_async::Error> {
    let mut conn = pool.get_conn().await?;
    let locked: Option<i64> = conn
        .query_first("SELECT GET_LOCK('seckill_migrate', 60)")
        .await?;
    if locked != Some(1) {
        return Err(mysql_async::Error::Other(
            "could not take the migration lock".into(),
        ));
    }
    let result = async {
        conn.query_drop(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
               version INT UNSIGNED NOT NULL PRIMARY KEY,
               applied_ms BIGINT NOT NULL) ENGINE=InnoDB",
        )
        .await?;
        for (version, sql) in MIGRATIONS {
            let done: Option<u32> = conn
                .exec_first(
                    "SELECT version FROM schema_migrations WHERE version = ?",
                    (version,),
                )
                .await?;
            if done.is_some() {
                continue;
            }
            for stmt in statements(sql) {
                conn.query_drop(stmt).await?;
            }
            conn.exec_drop(
                "INSERT INTO schema_migrations (version, applied_ms) VALUES (?, ?)",
                (version, crate::clock::now_ms()),
            )
            .await?;
        }
        Ok::<(), mysql_async::Error>(())
    }
    .await;
    conn.query_drop("DO RELEASE_LOCK('seckill_migrate')")
        .await?;
    result
}

/// Splits a migration file into statements: `;` at a line's end closes one; `--` lines are
/// comments.
fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in sql.lines() {
        let t = line.trim();
        if t.starts_with("--") || t.is_empty() {
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
        if t.ends_with(';') {
            out.push(cur.trim().trim_end_matches(';').to_string());
            cur.clear();
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_first_migration_has_both_tables() {
        let stmts = super::statements(super::MIGRATIONS[0].1);
        assert_eq!(stmts.len(), 2);
        assert!(stmts[0].contains("CREATE TABLE IF NOT EXISTS sales"));
        assert!(stmts[1].contains("UNIQUE KEY one_live_order_per_slot"));
    }
}
