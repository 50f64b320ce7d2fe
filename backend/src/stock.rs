//! Stock lives in Redis and is only ever checked and changed inside these scripts.
//!
//! `RESERVE` is the heart of the system. In one atomic step it checks the per-user limit,
//! checks stock, decrements it, records the buyer, numbers the order, marks it queued and
//! `XADD`s it to the sale's stream. There is no moment in which a unit is taken but its order
//! is not recorded, and no moment in which two buyers see the same last unit.
//!
//! `RESERVE_MANY` is the same step for a batch of buyers of one sale (group commit, see
//! [`crate::reserver`]): it reserves for each in order and answers each as `RESERVE` would
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
//! them. Such a Redis is not trusted until [`crate::recovery`] has repaired every live sale
//! from MariaDB; only then are the scripts loaded again ([`load_scripts`]).

use std::sync::LazyLock;

use redis::{Cmd, Script, Value};

use crate::keys::SaleKeys;
use crate::redis_conn::{CallError, Redis};

/// KEYS: stock, buyers, seq, reserved, orders. ARGV: user_id, per_user_limit, now_ms.
/// Returns {seq, slot} when queued, or {0, reason}: 1 limit reached, 2 sold out, 3 not loaded.
const RESERVE: &str = r#"
local stock = redis.call('GET', KEYS[1])
if not stock then return {0, 3} end
local user = ARGV[1]
local limit = tonumber(ARGV[2])
local mask = tonumber(redis.call('HGET', KEYS[2], user) or '0')
local slot = -1
for s = 0, limit - 1 do
  if bit.band(mask, bit.lshift(1, s)) == 0 then slot = s break end
end
if slot < 0 then return {0, 1} end
if tonumber(stock) <= 0 then return {0, 2} end
redis.call('DECR', KEYS[1])
redis.call('HSET', KEYS[2], user, bit.bor(mask, bit.lshift(1, slot)))
local seq = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[4], seq, user .. ':' .. (slot + 1))
redis.call('XADD', KEYS[5], '*', 'seq', seq, 'user', user, 'slot', slot + 1, 'ts', ARGV[3])
return {seq, slot + 1}
"#;

/// KEYS: stock, buyers, seq, reserved, orders (one sale's, so one Cluster slot).
/// ARGV: per_user_limit, then (user_id, now_ms) for each buyer, in order.
/// Returns two numbers per buyer, in order: {seq, slot} when queued, or {0, reason} with the
/// reasons of `RESERVE`. The writes are those of sequential `RESERVE` calls, gathered: one
/// read of the masks, one HSET of masks, one HSET of owners, an XADD per order.
const RESERVE_MANY: &str = r#"
local out = {}
local stock = redis.call('GET', KEYS[1])
if not stock then
  for _ = 2, #ARGV, 2 do out[#out + 1] = 0; out[#out + 1] = 3 end
  return out
end
stock = tonumber(stock)
local limit = tonumber(ARGV[1])
local users = {}
for i = 2, #ARGV, 2 do users[#users + 1] = ARGV[i] end
local read = redis.call('HMGET', KEYS[2], unpack(users))
local masks = {}
for i, user in ipairs(users) do
  if masks[user] == nil then masks[user] = tonumber(read[i] or '0') end
end
local seq = tonumber(redis.call('GET', KEYS[3]) or '0')
local taken, changed, owners = 0, {}, {}
for i, user in ipairs(users) do
  local mask = masks[user]
  local slot = -1
  for s = 0, limit - 1 do
    if bit.band(mask, bit.lshift(1, s)) == 0 then slot = s break end
  end
  if slot < 0 then
    out[#out + 1] = 0; out[#out + 1] = 1
  elseif stock - taken <= 0 then
    out[#out + 1] = 0; out[#out + 1] = 2
  else
    taken = taken + 1
    seq = seq + 1
    masks[user] = bit.bor(mask, bit.lshift(1, slot))
    changed[user] = true
    owners[#owners + 1] = seq
    owners[#owners + 1] = user .. ':' .. (slot + 1)
    redis.call('XADD', KEYS[5], '*', 'seq', seq, 'user', user, 'slot', slot + 1, 'ts', ARGV[2 * i + 1])
    out[#out + 1] = seq; out[#out + 1] = slot + 1
  end
end
if taken > 0 then
  redis.call('DECRBY', KEYS[1], taken)
  redis.call('SET', KEYS[3], seq)
  redis.call('HSET', KEYS[4], unpack(owners))
  local fields = {}
  for _, user in ipairs(users) do
    if changed[user] then
      changed[user] = nil
      fields[#fields + 1] = user; fields[#fields + 1] = masks[user]
    end
  end
  redis.call('HSET', KEYS[2], unpack(fields))
end
return out
"#;

/// KEYS: stock, buyers, returned. ARGV: seq, user_id, slot.
/// Returns 1 when the unit went back now, 0 when this order's unit was returned before, -1
/// when the sale is not loaded (Redis lost it: the repair from MariaDB counts the unit).
const RELEASE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('SADD', KEYS[3], ARGV[1]) == 0 then return 0 end
redis.call('INCR', KEYS[1])
local mask = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
local left = bit.band(mask, bit.bnot(bit.lshift(1, tonumber(ARGV[3]) - 1)))
if left == 0 then
  redis.call('HDEL', KEYS[2], ARGV[2])
else
  redis.call('HSET', KEYS[2], ARGV[2], left)
end
return 1
"#;

/// KEYS: stock, buyers, seq, reserved, returned.
/// ARGV: initial stock, highest seq in MariaDB, gap, n, then n triples (seq, user, slot) of the
/// orders MariaDB holds live, then the seqs MariaDB holds cancelled.
/// Makes Redis agree with MariaDB where MariaDB has decided (live orders Redis forgot are
/// added back; cancelled orders count as returned), then recounts stock, buyers and the
/// sequence from the ledger in one atomic step.
/// Returns {live, stock_left, orders_added, units_revived}.
const REPAIR: &str = r#"
local initial = tonumber(ARGV[1])
local n = tonumber(ARGV[4])
local added, revived = 0, 0
local i = 5
for _ = 1, n do
  if redis.call('HSETNX', KEYS[4], ARGV[i], ARGV[i + 1] .. ':' .. ARGV[i + 2]) == 1 then
    added = added + 1
  end
  revived = revived + redis.call('SREM', KEYS[5], ARGV[i])
  i = i + 3
end
for j = i, #ARGV do redis.call('SADD', KEYS[5], ARGV[j]) end
local all = redis.call('HGETALL', KEYS[4])
local live, top, masks = 0, tonumber(ARGV[2]), {}
for j = 1, #all, 2 do
  local seq = tonumber(all[j])
  if seq > top then top = seq end
  if redis.call('SISMEMBER', KEYS[5], all[j]) == 0 then
    live = live + 1
    local user, slot = string.match(all[j + 1], '^(%d+):(%d+)$')
    masks[user] = bit.bor(masks[user] or 0, bit.lshift(1, tonumber(slot) - 1))
  end
end
redis.call('DEL', KEYS[2])
for user, mask in pairs(masks) do redis.call('HSET', KEYS[2], user, mask) end
local left = initial - live
if left < 0 then left = 0 end
redis.call('SET', KEYS[1], left)
local cur = tonumber(redis.call('GET', KEYS[3]) or '0')
if cur > top then top = cur end
redis.call('SET', KEYS[3], top + tonumber(ARGV[3]))
return {live, left, added, revived}
"#;

/// KEYS: stock, reserved, returned. A consistent read of the ledger:
/// {stock or -1, [seq, user:slot, ...], [returned seq, ...]}.
const LEDGER: &str = r#"
local stock = redis.call('GET', KEYS[1])
return {tonumber(stock or '-1'), redis.call('HGETALL', KEYS[2]), redis.call('SMEMBERS', KEYS[3])}
"#;

static RESERVE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RESERVE));
static RESERVE_MANY_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RESERVE_MANY));
static RELEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RELEASE));
pub(crate) static JOIN_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(crate::queue::JOIN));

/// The scripts called by SHA; [`load_scripts`] loads exactly these.
const HOT: &[&str] = &[RESERVE, RESERVE_MANY, RELEASE, crate::queue::JOIN];

/// The SHA1s of the hot scripts.
/// The hot scripts' sources (loaded on the primaries by a recovery).
pub fn hot_sources() -> &'static [&'static str] {
    HOT
}

pub fn hot_hashes() -> Vec<String> {
    HOT.iter()
        .map(|src| Script::new(src).get_hash().to_string())
        .collect()
}

/// `EVALSHA` of a hot script with its keys; the caller appends the arguments.
pub(crate) fn evalsha(script: &Script, keys: &[&str]) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(keys.len()).arg(keys);
    cmd
}

/// `EVAL` of a rare script (sent in full: it works on a Redis that lost its script cache).
pub(crate) fn eval(src: &str, keys: &[&str]) -> Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(src).arg(keys.len()).arg(keys);
    cmd
}

/// Loads the hot scripts into Redis (on a Cluster, into every primary).
pub async fn load_scripts(redis: &Redis) -> Result<(), CallError> {
    for src in HOT {
        let _: Value = redis
            .cmd(redis::cmd("SCRIPT").arg("LOAD").arg(*src).clone())
            .await?;
    }
    Ok(())
}

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
}

pub async fn reserve(
    redis: &Redis,
    sale_id: u64,
    user_id: u64,
    per_user_limit: u32,
    now_ms: i64,
) -> Result<Reservation, CallError> {
    redis.writes_allowed()?;
    let k = SaleKeys::new(sale_id);
    let mut cmd = evalsha(
        &RESERVE_SCRIPT,
        &[&k.stock, &k.buyers, &k.seq, &k.reserved, &k.orders],
    );
    cmd.arg(user_id).arg(per_user_limit).arg(now_ms);
    let (seq, slot): (u64, u64) = redis.cmd(cmd).await?;
    Ok(Reservation::from_reply(seq, slot))
}

/// Reserves for each `(user_id, now_ms)` of one sale in order, in one script call; the
/// outcomes are those of [`reserve`] called for each in turn. An empty batch costs nothing.
pub async fn reserve_many(
    redis: &Redis,
    sale_id: u64,
    per_user_limit: u32,
    buyers: &[(u64, i64)],
) -> Result<Vec<Reservation>, CallError> {
    if buyers.is_empty() {
        return Ok(Vec::new());
    }
    redis.writes_allowed()?;
    let k = SaleKeys::new(sale_id);
    let mut cmd = evalsha(
        &RESERVE_MANY_SCRIPT,
        &[&k.stock, &k.buyers, &k.seq, &k.reserved, &k.orders],
    );
    cmd.arg(per_user_limit);
    for (user, now_ms) in buyers {
        cmd.arg(user).arg(now_ms);
    }
    let flat: Vec<u64> = redis.cmd(cmd).await?;
    if flat.len() != 2 * buyers.len() {
        return Err(CallError::Redis(redis::RedisError::from((
            redis::ErrorKind::TypeError,
            "reserve_many: one answer per buyer expected",
            format!("{} numbers for {} buyers", flat.len(), buyers.len()),
        ))));
    }
    Ok(flat
        .chunks_exact(2)
        .map(|p| Reservation::from_reply(p[0], p[1]))
        .collect())
}

impl Reservation {
    /// `{seq, slot}` or `{0, reason}` as the reserve scripts answer.
    fn from_reply(seq: u64, slot_or_reason: u64) -> Reservation {
        match (seq, slot_or_reason) {
            (0, 1) => Reservation::LimitReached,
            (0, 2) => Reservation::SoldOut,
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
/// order: only one call ever answers [`Released::Now`].
pub async fn release(
    redis: &Redis,
    sale_id: u64,
    seq: u64,
    user_id: u64,
    slot: u8,
) -> Result<Released, CallError> {
    let k = SaleKeys::new(sale_id);
    let mut cmd = evalsha(&RELEASE_SCRIPT, &[&k.stock, &k.buyers, &k.returned]);
    cmd.arg(seq).arg(user_id).arg(slot);
    let returned: i64 = redis.cmd(cmd).await?;
    Ok(match returned {
        1 => Released::Now,
        0 => Released::Before,
        _ => Released::NotLoaded,
    })
}

/// Puts a new sale's stock into Redis (only if absent) and creates its writer group.
pub async fn preheat(redis: &Redis, sale_id: u64, stock: u32) -> Result<(), CallError> {
    let k = SaleKeys::new(sale_id);
    let _: Option<String> = redis
        .cmd(redis::cmd("SET").arg(&k.stock).arg(stock).arg("NX").clone())
        .await?;
    ensure_group(redis, &k.orders).await
}

/// Creates the writers' consumer group on a stream (and the stream), if it is not there.
pub async fn ensure_group(redis: &Redis, stream: &str) -> Result<(), CallError> {
    let mut cmd = redis::cmd("XGROUP");
    cmd.arg("CREATE")
        .arg(stream)
        .arg(crate::keys::WRITER_GROUP)
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
    let mut cmd = eval(
        REPAIR,
        &[&k.stock, &k.buyers, &k.seq, &k.reserved, &k.returned],
    );
    cmd.arg(facts.initial)
        .arg(facts.max_seq)
        .arg(gap)
        .arg(facts.live.len());
    for (seq, user, slot) in &facts.live {
        cmd.arg(seq).arg(user).arg(slot);
    }
    for seq in &facts.cancelled {
        cmd.arg(seq);
    }
    let (live, stock_left, orders_added, units_revived): (i64, i64, i64, i64) =
        redis.cmd(cmd).await?;
    ensure_group(redis, &k.orders).await?;
    Ok(Repaired {
        live,
        stock_left,
        orders_added,
        units_revived,
    })
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
