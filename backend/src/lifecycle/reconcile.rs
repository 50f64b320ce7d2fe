//! The reconciler: per sale, every unit is in exactly one place,
//! `Redis stock left + live orders (queued, created, paid) = initial stock`.
//!
//! A check reads Redis's ledger of the sale atomically (stock, every order reserved, every
//! unit returned), then MariaDB's orders, and counts as live each order MariaDB holds live
//! plus each order Redis holds live that MariaDB does not know yet (still in the stream).
//! The difference is the drift, exported as `seckill_stock_drift{sale}`. A sale with a
//! large ledger is screened by counts first ([`screen`]); the exact check runs when the
//! counts disagree.
//!
//! Orders move between the two reads, so a sale under load may show a passing drift; only a
//! drift seen twice in a row with the same value is repaired. What is safe to repair:
//! - a cancelled order whose unit Redis still holds (a sweeper died between its two steps,
//!   or Redis lost the return): the unit is given back, once (`RELEASE` is idempotent);
//! - anything else (Redis lost writes, stock missing): the sale's Redis state is rebuilt by
//!   the `REPAIR` script from Redis's ledger plus MariaDB, the system of record.

use std::collections::{HashMap, HashSet};

use mysql_async::prelude::Queryable;
use mysql_async::Pool;
use serde::Serialize;

use crate::buy::orders::order_id;
use crate::buy::sales::Sale;
use crate::buy::stock::{self, DbFacts};
use crate::error::TaskError;
use crate::metrics::Metrics;
use crate::store::fence;
use crate::store::redis_conn::Redis;

/// One order as MariaDB holds it.
#[derive(Debug, Clone)]
pub struct DbOrder {
    pub seq: u64,
    pub user_id: u64,
    pub slot: u8,
    pub live: bool,
    /// Cancelled and its unit not yet given back.
    pub unreleased: bool,
}

pub async fn db_orders(db: &Pool, sale_id: u64) -> Result<Vec<DbOrder>, mysql_async::Error> {
    let mut conn = db.get_conn().await?;
    let rows: Vec<(u64, u64, u8, String, bool)> = conn
        .exec(
            "SELECT seq, user_id, slot, CAST(status AS CHAR), released_ms IS NULL
               FROM orders WHERE id BETWEEN ? AND ?",
            (order_id(sale_id, 0), order_id(sale_id, 0xffff_ffff)),
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|(seq, user_id, slot, status, not_released)| DbOrder {
            seq,
            user_id,
            slot,
            live: status != "cancelled",
            unreleased: status == "cancelled" && not_released,
        })
        .collect())
}

/// The orders of many sales, one query per [`MANY`] sales: sale id -> its orders.
pub async fn db_orders_many(
    db: &Pool,
    sale_ids: &[u64],
) -> Result<HashMap<u64, Vec<DbOrder>>, mysql_async::Error> {
    let mut out: HashMap<u64, Vec<DbOrder>> = HashMap::new();
    let mut conn = db.get_conn().await?;
    for chunk in sale_ids.chunks(MANY) {
        let list: Vec<String> = chunk.iter().map(u64::to_string).collect();
        let rows: Vec<(u64, u64, u64, u8, String, bool)> = conn
            .query(format!(
                "SELECT sale_id, seq, user_id, slot, CAST(status AS CHAR), released_ms IS NULL
                   FROM orders WHERE sale_id IN ({})",
                list.join(",")
            ))
            .await?;
        for (sale, seq, user_id, slot, status, not_released) in rows {
            out.entry(sale).or_default().push(DbOrder {
                seq,
                user_id,
                slot,
                live: status != "cancelled",
                unreleased: status == "cancelled" && not_released,
            });
        }
    }
    Ok(out)
}

/// Sales per query or batch of Redis calls when many are rebuilt at once.
pub const MANY: usize = 500;

/// MariaDB's facts for a repair.
pub fn facts(sale: &Sale, orders: &[DbOrder], gen: u64) -> DbFacts {
    DbFacts {
        gen,
        initial: sale.stock,
        max_seq: orders.iter().map(|o| o.seq).max().unwrap_or(0),
        live: orders
            .iter()
            .filter(|o| o.live)
            .map(|o| (o.seq, o.user_id, o.slot))
            .collect(),
        cancelled: orders.iter().filter(|o| !o.live).map(|o| o.seq).collect(),
    }
}

/// The state of one sale at one check.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SaleCheck {
    pub sale_id: u64,
    pub initial: u32,
    /// None when the sale's stock is not in Redis.
    pub stock_left: Option<i64>,
    /// Orders in MariaDB, live (created or paid).
    pub live_in_db: i64,
    /// Orders reserved in Redis that MariaDB does not hold yet (in the stream).
    pub queued: i64,
    /// Cancelled in MariaDB, unit still held in Redis.
    pub unreleased: Vec<u64>,
    /// initial - stock_left - (live_in_db + queued). 0 when every unit is accounted for.
    pub drift: i64,
}

pub async fn check(redis: &Redis, db: &Pool, sale: &Sale) -> Result<SaleCheck, TaskError> {
    // Redis first: an order reserved after this read and written before the MariaDB read
    // is counted once (from MariaDB) and only skews this one check.
    let ledger = stock::ledger(redis, sale.id).await?;
    let orders = db_orders(db, sale.id).await?;
    let in_db: HashMap<u64, &DbOrder> = orders.iter().map(|o| (o.seq, o)).collect();
    let redis_live = |seq: &u64| !ledger.returned.contains(seq);
    let live_in_db = orders.iter().filter(|o| o.live).count() as i64;
    let queued = ledger
        .reserved
        .keys()
        .filter(|seq| redis_live(seq) && !in_db.contains_key(seq))
        .count() as i64;
    let unreleased: Vec<u64> = orders
        .iter()
        .filter(|o| !o.live && ledger.reserved.contains_key(&o.seq) && redis_live(&o.seq))
        .map(|o| o.seq)
        .collect();
    let left = ledger.stock.unwrap_or(0);
    Ok(SaleCheck {
        sale_id: sale.id,
        initial: sale.stock,
        stock_left: ledger.stock,
        live_in_db,
        queued,
        unreleased,
        drift: i64::from(sale.stock) - left - live_in_db - queued,
    })
}

/// Above this many orders in its ledger, a sale's periodic check is screened by counts first
/// ([`screen`]): reading a ledger of 300,000 orders atomically holds Redis, and every buy
/// behind it, for about 0.3 s.
pub const EXACT_UP_TO: i64 = 20_000;

/// The check in counts, O(1) in Redis and one indexed count in MariaDB: Some(check with drift
/// 0) when the counts agree (Redis: stock + reserved - returned = initial; MariaDB: no more
/// orders than Redis reserved, no more live ones than Redis holds live, no cancelled order
/// whose unit is still out), None when they do not, or when the ledger holds no more than
/// `exact_up_to` orders: then only the exact [`check`] can tell.
pub async fn screen(
    redis: &Redis,
    db: &Pool,
    sale: &Sale,
    exact_up_to: i64,
) -> Result<Option<SaleCheck>, TaskError> {
    let (stock_left, reserved, returned) = stock::ledger_counts(redis, sale.id).await?;
    let Some(left) = stock_left else {
        return Ok(None);
    };
    let redis_live = reserved - returned;
    if reserved <= exact_up_to || i64::from(sale.stock) - left - redis_live != 0 {
        return Ok(None);
    }
    let mut conn = db.get_conn().await?;
    let counts: Option<(i64, i64, i64)> = conn
        .exec_first(
            "SELECT COUNT(*), CAST(COALESCE(SUM(status <> 'cancelled'), 0) AS SIGNED),
                    CAST(COALESCE(SUM(status = 'cancelled' AND released_ms IS NULL), 0) AS SIGNED)
               FROM orders WHERE id BETWEEN ? AND ?",
            (order_id(sale.id, 0), order_id(sale.id, 0xffff_ffff)),
        )
        .await?;
    let (total, live_in_db, unreleased) = counts.unwrap_or((0, 0, 0));
    if total > reserved || live_in_db > redis_live || unreleased != 0 {
        return Ok(None);
    }
    Ok(Some(SaleCheck {
        sale_id: sale.id,
        initial: sale.stock,
        stock_left,
        live_in_db,
        queued: redis_live - live_in_db,
        unreleased: Vec::new(),
        drift: 0,
    }))
}

/// Gives back the units of cancelled orders that Redis still holds, and marks them released.
pub async fn finish_releases(
    redis: &Redis,
    db: &Pool,
    metrics: &Metrics,
    sale_id: u64,
    seqs: &[u64],
) -> Result<u64, TaskError> {
    let mut done = 0;
    let orders = db_orders(db, sale_id).await?;
    let wanted: HashSet<u64> = seqs.iter().copied().collect();
    let mut marked = Vec::new();
    for o in orders.iter().filter(|o| !o.live && wanted.contains(&o.seq)) {
        let r = stock::release(redis, sale_id, o.seq, o.user_id, o.slot).await?;
        if r == stock::Released::Now {
            done += 1;
            metrics.units_returned.inc();
            metrics.repairs.with_label_values(&["release"]).inc();
        }
        if r != stock::Released::NotLoaded {
            marked.push(order_id(sale_id, o.seq));
        }
    }
    crate::buy::orders::mark_released(db, &marked).await?;
    Ok(done)
}

/// Rebuilds the sale's Redis state from its ledger and MariaDB, moving the order sequence
/// `gap` past the highest known number (see [`stock::repair`]).
pub async fn rebuild(
    redis: &Redis,
    db: &Pool,
    metrics: &Metrics,
    sale: &Sale,
    gap: u64,
) -> Result<stock::Repaired, TaskError> {
    // The fence first: an insert from an old master lands before the read below, or never.
    let gen = fence::raise(db, &[sale.id]).await?;
    let orders = db_orders(db, sale.id).await?;
    let gen = gen.get(&sale.id).copied().unwrap_or(0);
    let r = stock::repair(redis, sale.id, &facts(sale, &orders, gen), gap).await?;
    metrics.repairs.with_label_values(&["rebuild"]).inc();
    // The unreleased cancelled orders of the snapshot now count as returned in Redis.
    let unreleased: Vec<u64> = orders
        .iter()
        .filter(|o| o.unreleased)
        .map(|o| order_id(sale.id, o.seq))
        .collect();
    crate::buy::orders::mark_released(db, &unreleased).await?;
    Ok(r)
}

/// [`rebuild`] for many sales at once: their orders read [`MANY`] sales a query, their
/// repairs sent together. Returns how many were rebuilt; the first failure ends it.
pub async fn rebuild_many(
    redis: &Redis,
    db: &Pool,
    metrics: &Metrics,
    sales: &[&Sale],
    gap: u64,
) -> Result<Vec<(u64, stock::Repaired)>, TaskError> {
    let mut done = Vec::with_capacity(sales.len());
    for chunk in sales.chunks(MANY) {
        let ids: Vec<u64> = chunk.iter().map(|s| s.id).collect();
        let gens = fence::raise(db, &ids).await?;
        let mut orders = db_orders_many(db, &ids).await?;
        let facts: Vec<(u64, DbFacts)> = chunk
            .iter()
            .map(|s| {
                (
                    s.id,
                    facts(
                        s,
                        orders.get(&s.id).map_or(&[][..], Vec::as_slice),
                        gens.get(&s.id).copied().unwrap_or(0),
                    ),
                )
            })
            .collect();
        let results = stock::repair_many(redis, &facts, gap).await;
        let mut unreleased = Vec::new();
        for (sale, r) in chunk.iter().zip(results) {
            let r = r?;
            metrics.repairs.with_label_values(&["rebuild"]).inc();
            unreleased.extend(
                orders
                    .remove(&sale.id)
                    .unwrap_or_default()
                    .iter()
                    .filter(|o| o.unreleased)
                    .map(|o| order_id(sale.id, o.seq)),
            );
            done.push((sale.id, r));
        }
        // The unreleased cancelled orders of the snapshot now count as returned in Redis.
        crate::buy::orders::mark_released(db, &unreleased).await?;
    }
    Ok(done)
}

/// Checks one sale and, when `repair` and the drift is not 0, repairs it and checks again.
pub async fn reconcile_sale(
    redis: &Redis,
    db: &Pool,
    metrics: &Metrics,
    sale: &Sale,
    repair: bool,
) -> Result<SaleCheck, TaskError> {
    let mut c = check(redis, db, sale).await?;
    if repair && (c.drift != 0 || c.stock_left.is_none() || !c.unreleased.is_empty()) {
        if !c.unreleased.is_empty() {
            finish_releases(redis, db, metrics, sale.id, &c.unreleased).await?;
            c = check(redis, db, sale).await?;
        }
        if c.drift != 0 || c.stock_left.is_none() {
            // Stock gone means Redis lost this sale's keys, sequence included.
            let gap = if c.stock_left.is_none() {
                stock::SEQ_GAP
            } else {
                0
            };
            rebuild(redis, db, metrics, sale, gap).await?;
            c = check(redis, db, sale).await?;
        }
    }
    record(metrics, &c);
    Ok(c)
}

fn record(metrics: &Metrics, c: &SaleCheck) {
    metrics
        .sale_gauge(&metrics.stock_drift, c.sale_id)
        .set(c.drift);
    if let Some(left) = c.stock_left {
        metrics.sale_gauge(&metrics.stock_left, c.sale_id).set(left);
    }
}

/// The periodic reconciler: checks the busy sales (the active set: sales whose Redis state
/// changed lately, see `store::activity`) and the sales whose last check found drift, never
/// every sale: a sale nothing happened to cannot drift (a Redis that lost data is found by
/// the recovery, which rebuilds every sale). Repairs a sale whose drift was the same,
/// non-zero, at two checks in a row. Per-sale series of sales no longer checked are removed.
#[derive(Default)]
pub struct Reconciler {
    last: HashMap<u64, i64>,
}

impl Reconciler {
    pub async fn pass(&mut self, redis: &Redis, db: &Pool, metrics: &Metrics) {
        let busy: HashSet<u64> = match crate::store::activity::active(redis).await {
            Ok((_, members)) => members.into_iter().map(|(id, _)| id).collect(),
            Err(e) => {
                eprintln!("reconciler: reading the active set failed: {e}");
                return;
            }
        };
        let mut ids: HashSet<u64> = busy.clone();
        ids.extend(
            self.last
                .iter()
                .filter(|(_, d)| **d != 0)
                .map(|(id, _)| *id),
        );
        self.last.retain(|id, _| ids.contains(id));
        // Series stay for the sales checked here and for the moving waiting rooms.
        let mut keep = ids.clone();
        match crate::store::activity::lines(redis, crate::clock::now_ms()).await {
            Ok(lines) => keep.extend(lines),
            Err(e) => eprintln!("reconciler: reading the waiting rooms failed: {e}"),
        }
        metrics.keep_sales(&keep);
        let ids: Vec<u64> = ids.into_iter().collect();
        let list = match crate::buy::sale_rows::load_many(db, &ids).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("reconciler: loading the busy sales failed: {e}");
                return;
            }
        };
        for sale in list {
            self.check_one(redis, db, metrics, &sale).await;
        }
    }

    async fn check_one(&mut self, redis: &Redis, db: &Pool, metrics: &Metrics, sale: &Sale) {
        match screen(redis, db, sale, EXACT_UP_TO).await {
            Ok(Some(c)) => {
                record(metrics, &c);
                self.last.insert(sale.id, 0);
                return;
            }
            Ok(None) => {}
            Err(e) => {
                eprintln!("reconciler: sale {}: {e}", sale.id);
                return;
            }
        }
        let first = match check(redis, db, sale).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("reconciler: sale {}: {e}", sale.id);
                return;
            }
        };
        let persistent = self.last.get(&sale.id) == Some(&first.drift) && first.drift != 0;
        if !persistent && first.stock_left.is_some() {
            record(metrics, &first);
            self.last.insert(sale.id, first.drift);
            return;
        }
        eprintln!(
            "reconciler: sale {}: drift {} seen twice (stock left {:?}), repairing",
            sale.id, first.drift, first.stock_left
        );
        match reconcile_sale(redis, db, metrics, sale, true).await {
            Ok(c) => {
                self.last.insert(sale.id, c.drift);
            }
            Err(e) => eprintln!("reconciler: sale {}: {e}", sale.id),
        }
    }
}
