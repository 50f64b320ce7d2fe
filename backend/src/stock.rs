//! Stock lives in Redis and is only ever checked and changed inside these scripts.
//!
//! `RESERVE` is the heart of the system. In one atomic step it checks the per-user limit,
//! checks stock, decrements it, records the buyer, numbers the order, marks it queued and
//! `XADD`s it to the sale's stream. There is no moment in which a unit is taken but its order
//! is not recorded, and no moment in which two buyers see the same last unit.
//!
//! `RELEASE` is its undo: it gives one order's unit back and frees the buyer's slot, exactly
//! once per order however often it is called.
//!
//! All keys are one sale's (`{sale:ID}:*`), so both scripts run unchanged on Redis Cluster.
//! Scripts are loaded once and called by SHA (`redis::Script` falls back to a load on
//! `NOSCRIPT`, e.g. after a Redis restart).

use std::sync::LazyLock;

use redis::Script;

use crate::keys::SaleKeys;
use crate::redis_conn::{CallError, Redis};

/// KEYS: stock, buyers, seq, queued, orders. ARGV: user_id, per_user_limit, now_ms.
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
redis.call('HSET', KEYS[4], seq, user)
redis.call('XADD', KEYS[5], '*', 'seq', seq, 'user', user, 'slot', slot + 1, 'ts', ARGV[3])
return {seq, slot + 1}
"#;

/// KEYS: stock, buyers, returned. ARGV: seq, user_id, slot.
/// Returns 1 when the unit went back now, 0 when this order's unit was returned before.
const RELEASE: &str = r#"
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

static RESERVE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RESERVE));
static RELEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RELEASE));

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
    let k = SaleKeys::new(sale_id);
    let reply: (u64, u64) = redis
        .call(|mut c| async move {
            RESERVE_SCRIPT
                .key(&k.stock)
                .key(&k.buyers)
                .key(&k.seq)
                .key(&k.queued)
                .key(&k.orders)
                .arg(user_id)
                .arg(per_user_limit)
                .arg(now_ms)
                .invoke_async(&mut c)
                .await
        })
        .await?;
    Ok(match reply {
        (0, 1) => Reservation::LimitReached,
        (0, 2) => Reservation::SoldOut,
        (0, _) => Reservation::NotLoaded,
        (seq, slot) => Reservation::Queued {
            seq,
            slot: slot as u8,
        },
    })
}

/// Gives the unit of order `seq` back to stock and frees the buyer's slot. Idempotent per
/// order: returns true only for the call that actually returned the unit.
pub async fn release(
    redis: &Redis,
    sale_id: u64,
    seq: u64,
    user_id: u64,
    slot: u8,
) -> Result<bool, CallError> {
    let k = SaleKeys::new(sale_id);
    let returned: i64 = redis
        .call(|mut c| async move {
            RELEASE_SCRIPT
                .key(&k.stock)
                .key(&k.buyers)
                .key(&k.returned)
                .arg(seq)
                .arg(user_id)
                .arg(slot)
                .invoke_async(&mut c)
                .await
        })
        .await?;
    Ok(returned == 1)
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
