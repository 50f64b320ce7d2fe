//! Stock lives in Redis and is only ever checked and changed inside these scripts.
//!
//! `RESERVE` is the heart of the system. In one atomic step it checks the per-user limit,
//! checks stock, decrements it, records the buyer, numbers the order, marks it queued and
//! `XADD`s it to the sale's stream. There is no moment in which a unit is taken but its order
//! is not recorded, and no moment in which two buyers see the same last unit.
//!
//! `RESERVE_MANY` is the same step for a batch of buyers of one sale (group commit, see
//! [`crate::buy::reserver`]): it reserves for each in order and answers each as `RESERVE` would
//! have, had the calls run one after another; a batch costs one round trip.
//!
//! `RELEASE` is its undo: it gives one order's unit back and frees the buyer's slot, exactly
//! once per order however often it is called.
//!
//! `REPAIR` rebuilds a sale's Redis state from Redis's own ledger (`reserved`, `returned`)
//! plus what MariaDB, the system of record, knows; see [`repair`].
//!
//! All keys are one sale's (`{sale:ID}:*`), so the scripts run unchanged on Redis Cluster.
//!
//! The hot scripts are called with `EVALSHA` and are **never loaded on the fly**: a Redis that
//! answers `NOSCRIPT` has restarted or failed over, and may have lost its last writes with
//! them. Such a Redis is not trusted until [`crate::lifecycle::recovery`] has repaired every live sale
//! from MariaDB; only then are the scripts loaded again ([`crate::store::scripts::load_hot`]).

use redis::Cmd;

use crate::store::activity::MARGIN_MS;
use crate::store::keys::SaleKeys;
use crate::store::redis_conn::{CallError, Redis};
use crate::store::scripts::{
    eval, evalsha, LEDGER, RELEASE_SCRIPT, REPAIR, RESERVE_MANY_SCRIPT, RESERVE_SCRIPT,
};

/// What a reservation attempt came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Reservation {
    /// A unit is held and the order is in the stream: `seq` numbers it within the sale,
    /// `slot` (1..=limit) is which of the buyer's allowed orders it is.
    Queued {
        seq: u64,
        slot: u8,
    },
    LimitReached,
    SoldOut,
    /// The sale's stock is not in Redis (never preheated, or Redis lost its data).
    NotLoaded,
    /// Nothing was done: the lease given with the call was about to end (take a new one and
    /// call again; see `store::activity`).
    LeaseEnded,
}

/// Reserves a unit for one buyer; also answers the units left after it (-1: not loaded, or
/// nothing done). `lease` is the end of this backend's lease on the sale in the active set
/// (`store::activity`): the script refuses ([`Reservation::LeaseEnded`]) when it is about to
/// end.
pub async fn reserve(
    redis: &Redis,
    sale_id: u64,
    user_id: u64,
    per_user_limit: u32,
    now_ms: i64,
    lease: i64,
) -> Result<(Reservation, i64), CallError> {
    redis.writes_allowed()?;
    let k = SaleKeys::new(sale_id);
    let mut cmd = evalsha(
        &RESERVE_SCRIPT,
        &[&k.stock, &k.buyers, &k.seq, &k.reserved, &k.orders],
    );
    cmd.arg(user_id)
        .arg(per_user_limit)
        .arg(now_ms)
        .arg(lease)
        .arg(MARGIN_MS);
    let (seq, slot, left): (u64, u64, i64) = redis.cmd(cmd).await?;
    Ok((Reservation::from_reply(seq, slot), left))
}

/// Reserves for each `(user_id, now_ms)` of one sale in order, in one script call; the
/// outcomes are those of [`reserve`] called for each in turn, and the units left after the
/// batch (-1: not loaded, or nothing done). An empty batch costs nothing.
pub async fn reserve_many(
    redis: &Redis,
    sale_id: u64,
    per_user_limit: u32,
    buyers: &[(u64, i64)],
    lease: i64,
) -> Result<(Vec<Reservation>, i64), CallError> {
    if buyers.is_empty() {
        return Ok((Vec::new(), -1));
    }
    redis.writes_allowed()?;
    let k = SaleKeys::new(sale_id);
    let mut cmd = evalsha(
        &RESERVE_MANY_SCRIPT,
        &[&k.stock, &k.buyers, &k.seq, &k.reserved, &k.orders],
    );
    cmd.arg(per_user_limit).arg(lease).arg(MARGIN_MS);
    for (user, now_ms) in buyers {
        cmd.arg(user).arg(now_ms);
    }
    let flat: Vec<i64> = redis.cmd(cmd).await?;
    if flat.len() != 2 * buyers.len() + 1 {
        return Err(CallError::Redis(redis::RedisError::from((
            redis::ErrorKind::TypeError,
            "reserve_many: one answer per buyer and the units left expected",
            format!("{} numbers for {} buyers", flat.len(), buyers.len()),
        ))));
    }
    let left = flat[flat.len() - 1];
    let outcomes = flat[..flat.len() - 1]
        .chunks_exact(2)
        .map(|p| Reservation::from_reply(p[0].max(0) as u64, p[1].max(0) as u64))
        .collect();
    Ok((outcomes, left))
}

impl Reservation {
    /// `{seq, slot}` or `{0, reason}` as the reserve scripts answer.
    fn from_reply(seq: u64, slot_or_reason: u64) -> Reservation {
        match (seq, slot_or_reason) {
            (0, 1) => Reservation::LimitReached,
            (0, 2) => Reservation::SoldOut,
            (0, 4) => Reservation::LeaseEnded,
            (0, _) => Reservation::NotLoaded,
            (seq, slot) => Reservation::Queued {
                seq,
                slot: slot as u8,
            },
        }
    }
}

/// What giving a unit back came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Released {
    /// This call returned the unit.
    Now,
    /// An earlier call did; nothing changed.
    Before,
    /// The sale is not in Redis; a repair from MariaDB will count the unit.
    NotLoaded,
}

/// Gives the unit of order `seq` back to stock and frees the buyer's slot. Idempotent per
/// order: only one call ever answers [`Released::Now`]. The sale is registered as busy
/// before, and the edges are told after (units back reopen a sold-out sale).
pub async fn release(
    redis: &Redis,
    sale_id: u64,
    seq: u64,
    user_id: u64,
    slot: u8,
) -> Result<Released, CallError> {
    let k = SaleKeys::new(sale_id);
    // Busy first (the reconciler checks the busy sales), told after (the edges reopen it).
    crate::store::activity::register(redis, &[sale_id], crate::store::activity::LEASE_MS, 0)
        .await?;
    let mut cmd = evalsha(&RELEASE_SCRIPT, &[&k.stock, &k.buyers, &k.returned]);
    cmd.arg(seq).arg(user_id).arg(slot);
    let returned: i64 = redis.cmd(cmd).await?;
    let r = match returned {
        1 => Released::Now,
        0 => Released::Before,
        _ => Released::NotLoaded,
    };
    if r == Released::Now {
        crate::store::changes::announce(redis, &[sale_id]).await?;
    }
    Ok(r)
}

/// Puts a new sale's stock into Redis (only if absent) and creates its writer group.
pub async fn preheat(redis: &Redis, sale_id: u64, stock: u32) -> Result<(), CallError> {
    let k = SaleKeys::new(sale_id);
    let _: Option<String> = redis
        .cmd(redis::cmd("SET").arg(&k.stock).arg(stock).arg("NX").clone())
        .await?;
    ensure_group(redis, &k.orders).await
}

/// Puts many new sales' stock into Redis (each only if absent) and creates their writer
/// groups: the commands of all sales sent together. Fails if any failed.
pub async fn preheat_many(redis: &Redis, sales: &[(u64, u32)]) -> Result<(), CallError> {
    let mut cmds = Vec::with_capacity(sales.len() * 2);
    for (id, stock) in sales {
        let k = SaleKeys::new(*id);
        cmds.push(redis::cmd("SET").arg(&k.stock).arg(stock).arg("NX").clone());
        cmds.push(
            redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(&k.orders)
                .arg(crate::store::keys::WRITER_GROUP)
                .arg("0")
                .arg("MKSTREAM")
                .clone(),
        );
    }
    for r in redis.each(cmds).await {
        match r {
            Err(CallError::Redis(e)) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => return Err(e),
            Ok(_) => {}
        }
    }
    Ok(())
}

/// Sets the stock of a sale nothing was reserved in yet; false when orders exist.
pub async fn restock(redis: &Redis, sale_id: u64, stock: u32) -> Result<bool, CallError> {
    let k = SaleKeys::new(sale_id);
    let mut cmd = eval(crate::store::scripts::RESTOCK, &[&k.stock, &k.reserved]);
    cmd.arg(stock);
    let set: i64 = redis.cmd(cmd).await?;
    Ok(set == 1)
}

/// Creates the writers' consumer group on a stream (and the stream), if it is not there.
pub async fn ensure_group(redis: &Redis, stream: &str) -> Result<(), CallError> {
    let mut cmd = redis::cmd("XGROUP");
    cmd.arg("CREATE")
        .arg(stream)
        .arg(crate::store::keys::WRITER_GROUP)
        .arg("0")
        .arg("MKSTREAM");
    match redis.cmd::<()>(cmd).await {
        Err(CallError::Redis(e)) if e.code() == Some("BUSYGROUP") => Ok(()),
        other => other,
    }
}

/// Units left in Redis, or None when the sale is not loaded.
pub async fn stock_left(redis: &Redis, sale_id: u64) -> Result<Option<i64>, CallError> {
    redis
        .cmd(redis::cmd("GET").arg(SaleKeys::new(sale_id).stock).clone())
        .await
}

/// How far a repair after lost writes moves the order sequence (far more orders than one
/// second of a sale, the loss window of `appendfsync everysec`).
pub const SEQ_GAP: u64 = 1_000_000;

/// What MariaDB knows of one sale, handed to [`repair`].
#[derive(Debug, Default, Clone)]
pub struct DbFacts {
    pub initial: u32,
    pub max_seq: u64,
    /// (seq, user_id, slot) of live orders (created or paid).
    pub live: Vec<(u64, u64, u8)>,
    /// Seqs of cancelled orders.
    pub cancelled: Vec<u64>,
    /// The sale's generation, raised before these facts were read (`store::fence`).
    pub gen: u64,
}

/// What a repair did.
#[derive(Debug, PartialEq, Eq)]
pub struct Repaired {
    pub live: i64,
    pub stock_left: i64,
    /// Live orders MariaDB had and Redis had forgotten.
    pub orders_added: i64,
    /// Orders Redis counted as returned that MariaDB holds live.
    pub units_revived: i64,
}

/// Rebuilds a sale's stock, buyers and sequence in Redis from its ledger and MariaDB's facts,
/// atomically. Safe while the sale takes buys: reservations made after `facts` was read are in
/// the ledger and counted; MariaDB's facts only add what Redis forgot.
///
/// `gap` moves the order sequence that far past the highest number either side knows: after
/// Redis lost writes, order ids it handed out in the lost window are in neither, and must not
/// be handed out again to someone else.
pub async fn repair(
    redis: &Redis,
    sale_id: u64,
    facts: &DbFacts,
    gap: u64,
) -> Result<Repaired, CallError> {
    let k = SaleKeys::new(sale_id);
    let (live, stock_left, orders_added, units_revived): (i64, i64, i64, i64) =
        redis.cmd(repair_cmd(sale_id, facts, gap)).await?;
    ensure_group(redis, &k.orders).await?;
    Ok(Repaired {
        live,
        stock_left,
        orders_added,
        units_revived,
    })
}

/// The `REPAIR` call of one sale (see [`repair`]).
fn repair_cmd(sale_id: u64, facts: &DbFacts, gap: u64) -> Cmd {
    let k = SaleKeys::new(sale_id);
    let mut cmd = eval(
        REPAIR,
        &[
            &k.stock,
            &k.buyers,
            &k.seq,
            &k.reserved,
            &k.returned,
            &k.gen,
        ],
    );
    cmd.arg(facts.initial)
        .arg(facts.max_seq)
        .arg(gap)
        .arg(facts.live.len())
        .arg(facts.gen);
    for (seq, user, slot) in &facts.live {
        cmd.arg(seq).arg(user).arg(slot);
    }
    for seq in &facts.cancelled {
        cmd.arg(seq);
    }
    cmd
}

/// [`repair`] for many sales, their calls sent together; one result per sale, in order.
pub async fn repair_many(
    redis: &Redis,
    sales: &[(u64, DbFacts)],
    gap: u64,
) -> Vec<Result<Repaired, CallError>> {
    let cmds = sales
        .iter()
        .map(|(id, facts)| repair_cmd(*id, facts, gap))
        .collect();
    let groups = sales
        .iter()
        .map(|(id, _)| {
            redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(SaleKeys::new(*id).orders)
                .arg(crate::store::keys::WRITER_GROUP)
                .arg("0")
                .arg("MKSTREAM")
                .clone()
        })
        .collect();
    let repaired = redis.each(cmds).await;
    let grouped = redis.each(groups).await;
    repaired
        .into_iter()
        .zip(grouped)
        .map(|(r, g)| {
            match g {
                Err(CallError::Redis(e)) if e.code() == Some("BUSYGROUP") => {}
                Err(e) => return Err(e),
                Ok(_) => {}
            }
            let (live, stock_left, orders_added, units_revived): (i64, i64, i64, i64) =
                redis::from_redis_value(&r?).map_err(CallError::Redis)?;
            Ok(Repaired {
                live,
                stock_left,
                orders_added,
                units_revived,
            })
        })
        .collect()
}

/// Redis's ledger of one sale, read atomically.
#[derive(Debug, Default)]
pub struct Ledger {
    /// None when the sale is not loaded.
    pub stock: Option<i64>,
    /// seq -> (user_id, slot) of every order reserved.
    pub reserved: std::collections::HashMap<u64, (u64, u8)>,
    pub returned: std::collections::HashSet<u64>,
}

pub async fn ledger(redis: &Redis, sale_id: u64) -> Result<Ledger, CallError> {
    let k = SaleKeys::new(sale_id);
    let (stock, reserved, returned): (i64, Vec<String>, Vec<u64>) = redis
        .cmd(eval(LEDGER, &[&k.stock, &k.reserved, &k.returned]))
        .await?;
    let mut out = Ledger {
        stock: (stock >= 0).then_some(stock),
        returned: returned.into_iter().collect(),
        ..Ledger::default()
    };
    for pair in reserved.chunks(2) {
        if let [seq, owner] = pair {
            if let (Ok(seq), Some((user, slot))) = (seq.parse(), parse_owner(owner)) {
                out.reserved.insert(seq, (user, slot));
            }
        }
    }
    Ok(out)
}

/// Redis's ledger of one sale in counts, read atomically in O(1): units left (None when the
/// sale is not loaded), orders ever reserved, units returned.
pub async fn ledger_counts(
    redis: &Redis,
    sale_id: u64,
) -> Result<(Option<i64>, i64, i64), CallError> {
    let k = SaleKeys::new(sale_id);
    redis
        .call(|mut c| async move {
            redis::pipe()
                .atomic()
                .cmd("GET")
                .arg(&k.stock)
                .cmd("HLEN")
                .arg(&k.reserved)
                .cmd("SCARD")
                .arg(&k.returned)
                .query_async(&mut c)
                .await
        })
        .await
}

/// One order in Redis's ledger: its owner and slot (None if Redis never reserved it), and
/// whether its unit was returned.
pub async fn ledger_entry(
    redis: &Redis,
    sale_id: u64,
    seq: u64,
) -> Result<(Option<(u64, u8)>, bool), CallError> {
    let k = SaleKeys::new(sale_id);
    let (owner, returned): (Option<String>, bool) = redis
        .call(|mut c| async move {
            redis::pipe()
                .cmd("HGET")
                .arg(&k.reserved)
                .arg(seq)
                .cmd("SISMEMBER")
                .arg(&k.returned)
                .arg(seq)
                .query_async(&mut c)
                .await
        })
        .await?;
    Ok((owner.as_deref().and_then(parse_owner), returned))
}

/// `user:slot` as the reserve script writes it.
pub fn parse_owner(text: &str) -> Option<(u64, u8)> {
    let (user, slot) = text.split_once(':')?;
    Some((user.parse().ok()?, slot.parse().ok()?))
}
