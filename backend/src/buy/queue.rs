//! The waiting room: a sale with a `queue` mode turns its start into a line.
//!
//! Redis holds the numbers, so every edge and every backend agrees on them:
//! - **joining** (`JOIN`) gives a user the next ticket number of the sale, once: joining again
//!   returns the same number. The number is the arrival order at the edge. The shopper gets it
//!   as a signed [`ticket`], bound to sale and user, that the edge verifies without a lookup.
//! - **the serving cursor** (`TICK`) says how far down the line shoppers are admitted. It
//!   moves so that the admissions still outstanding (positions admitted less than
//!   `admit_ttl_s` ago that have not ordered: the edge names the buyer's position on each buy
//!   of a queued sale, and [`bought`] records it) stay at `admit_multiple` x the units left:
//!   every buy and
//!   every admission that lapses unused lets the next shopper in; units that come back
//!   (unpaid orders expired, dead letters) reopen admission by the same rule. An operator may
//!   pause it or cap its rate (admissions a second).
//! - `expired_below`: the cursor as it stood `admit_ttl_s` ago. Positions at or below it were
//!   admitted longer ago than an admission lasts.
//!
//! Positions: in `fifo` a ticket's position is its number. In `random` the numbers handed out
//! up to the draw (`starts + queue_grace_s`; `drawn` is how many) are shuffled by a keyed
//! permutation the edge computes (`edge/lua/seckill/queue.lua`, key derived from the link
//! secret and the sale); later numbers keep their place behind the draw.
//!
//! Each edge pulls the state with the sale states (`GET /internal/sales`, twice a second), and
//! that pull runs `TICK` for each queued sale: one atomic, idempotent step (several edges and
//! backends may run it; the cursor only moves by the rule above). The edge then answers polls,
//! and admits or refuses captchas and purchase paths, from its shared dict alone.

use redis::Value;

use crate::buy::sales::{QueueMode, Sale};
use crate::store::keys::SaleKeys;
use crate::store::redis_conn::{CallError, Redis};

/// The waiting room's state after a tick, as the edge receives it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueState {
    /// Positions up to here are admitted (or were).
    pub cursor: u64,
    /// Positions up to here were admitted longer ago than an admission lasts.
    pub expired_below: u64,
    /// Tickets handed out.
    pub joined: u64,
    /// `random`: how many tickets the draw shuffled (None: not drawn yet).
    pub drawn: Option<u64>,
    /// Admissions a second over the last ten seconds, x 1000 (None: not known yet).
    pub rate_milli: Option<u64>,
    pub paused: bool,
    /// The sale sold out and units came back since (the waitlist is moving).
    pub reopened: bool,
    pub stock_left: i64,
    /// The operator's cap on admissions a second (0: none).
    pub max_rate: u64,
    /// Admissions that ran out unused (positions admitted longer ago than an admission lasts
    /// that did not order).
    pub lapsed: u64,
}

impl QueueState {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "cursor": self.cursor, "expired_below": self.expired_below,
            "joined": self.joined, "waiting": self.joined.saturating_sub(self.cursor),
            "drawn": self.drawn, "rate_per_s": self.rate_milli.map(|r| r as f64 / 1000.0),
            "paused": self.paused, "reopened": self.reopened,
            "stock_left": self.stock_left, "max_rate": self.max_rate, "expired": self.lapsed,
        })
    }

    /// The fields the edge's sale-state line carries after the sale's own (see
    /// `http::internal::sale_states`): `<mode> <grace_s> <ttl_s> <admit_multiple> <cursor>
    /// <expired_below> <joined> <drawn|-1> <rate_milli|-1> <flags: 1 paused, 2 reopened>`.
    pub fn edge_fields(state: Option<&QueueState>, sale: &Sale) -> String {
        let q = &sale.queue;
        let s = state.copied().unwrap_or_default();
        let opt = |v: Option<u64>| v.map_or(-1, |n| n as i64);
        format!(
            "{} {} {} {} {} {} {} {} {} {}",
            q.mode as u8,
            q.grace_s,
            q.admit_ttl_s,
            q.admit_multiple,
            s.cursor,
            s.expired_below,
            s.joined,
            opt(s.drawn),
            opt(s.rate_milli),
            u8::from(s.paused) | (u8::from(s.reopened) << 1)
        )
    }
}

/// How long before the start the line opens (joins earlier are refused): the pre-queue.
pub const OPENS_BEFORE_MS: i64 = 15 * 60 * 1000;

/// When a `random` sale's draw closes (ms); None for other modes.
pub fn draw_at(sale: &Sale) -> Option<i64> {
    (sale.queue.mode == QueueMode::Random)
        .then(|| sale.starts_ms + i64::from(sale.queue.grace_s) * 1000)
}

/// Gives `user_id` a ticket number in the sale's line (the same one on every call), and
/// whether it is new. `again`: the shopper's turn came and passed unused (the edge checked
/// it): a new number at the back of the line.
pub async fn join(
    redis: &Redis,
    sale: &Sale,
    user_id: u64,
    now_ms: i64,
    again: bool,
) -> Result<(u64, bool), CallError> {
    redis.writes_allowed()?;
    let k = SaleKeys::new(sale.id);
    let mut cmd = crate::store::scripts::evalsha(
        &crate::store::scripts::JOIN_SCRIPT,
        &[&k.queue_tickets, &k.queue_seq, &k.queue_state],
    );
    cmd.arg(user_id)
        .arg(now_ms)
        .arg(draw_at(sale).unwrap_or(-1))
        .arg(u8::from(again));
    let (n, new): (u64, u8) = redis.cmd(cmd).await?;
    Ok((n, new == 1))
}

/// One step of the serving cursor (see the module doc); None when the sale's stock is not
/// in Redis.
pub async fn tick(
    redis: &Redis,
    sale: &Sale,
    now_ms: i64,
) -> Result<Option<QueueState>, CallError> {
    let k = SaleKeys::new(sale.id);
    let mut cmd = crate::store::scripts::eval(
        crate::store::scripts::TICK,
        &[
            &k.queue_state,
            &k.queue_seq,
            &k.stock,
            &k.queue_bought,
            &k.queue_log,
        ],
    );
    cmd.arg(now_ms)
        .arg(sale.starts_ms)
        .arg(draw_at(sale).unwrap_or(-1))
        .arg(sale.queue.admit_multiple)
        .arg(i64::from(sale.queue.admit_ttl_s) * 1000);
    let v: Vec<i64> = redis.cmd(cmd).await?;
    if v.len() < 10 {
        return Ok(None);
    }
    let known = |x: i64| u64::try_from(x).ok();
    Ok(Some(QueueState {
        cursor: v[0].max(0) as u64,
        expired_below: v[1].max(0) as u64,
        joined: v[2].max(0) as u64,
        drawn: known(v[3]),
        rate_milli: known(v[4]),
        paused: v[5] == 1,
        reopened: v[6] == 1,
        stock_left: v[7],
        max_rate: v[8].max(0) as u64,
        lapsed: v[9].max(0) as u64,
    }))
}

/// Records that the shopper at `position` ordered (the edge names it on each buy of a queued
/// sale): that admission is used, and no longer counts as outstanding.
pub async fn bought(redis: &Redis, sale_id: u64, position: u64) -> Result<(), CallError> {
    let k = SaleKeys::new(sale_id);
    let mut cmd = redis::cmd("ZADD");
    cmd.arg(&k.queue_bought).arg(position).arg(position);
    let _: Value = redis.cmd(cmd).await?;
    Ok(())
}

/// What an operator may change while a sale runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Control {
    pub paused: Option<bool>,
    /// Admissions a second at most (0: no cap, the rule alone).
    pub max_rate: Option<u64>,
}

pub async fn control(redis: &Redis, sale_id: u64, c: Control) -> Result<(), CallError> {
    let k = SaleKeys::new(sale_id);
    let mut cmd = redis::cmd("HSET");
    cmd.arg(&k.queue_state);
    let mut any = false;
    if let Some(p) = c.paused {
        cmd.arg("paused").arg(u8::from(p));
        any = true;
    }
    if let Some(r) = c.max_rate {
        cmd.arg("rate").arg(r).arg("credit").arg(0);
        any = true;
    }
    if any {
        let _: Value = redis.cmd(cmd).await?;
    }
    Ok(())
}

/// The key tickets are signed with, derived from the link secret (the edge derives the same).
pub fn ticket_key(link_key: &[u8]) -> Vec<u8> {
    crate::tokens::crypto::sign_hex(link_key, b"seckill queue ticket key v1").into_bytes()
}

fn ticket_message(sale_id: u64, user_id: u64, number: u64) -> String {
    format!("q1.{sale_id}.{user_id}.{number}")
}

/// A ticket: `<sale>.<user>.<number>.<hex HMAC-SHA256(key, "q1.<sale>.<user>.<number>")>`.
pub fn ticket(key: &[u8], sale_id: u64, user_id: u64, number: u64) -> String {
    let sig =
        crate::tokens::crypto::sign_hex(key, ticket_message(sale_id, user_id, number).as_bytes());
    format!("{sale_id}.{user_id}.{number}.{sig}")
}

/// This shopper's ticket in the sale's line, if they joined (a reload or another device finds
/// its place again).
pub async fn ticket_of(
    redis: &Redis,
    key: &[u8],
    sale_id: u64,
    user_id: u64,
) -> Result<Option<String>, CallError> {
    let k = SaleKeys::new(sale_id);
    let number: Option<u64> = redis
        .cmd(
            redis::cmd("HGET")
                .arg(&k.queue_tickets)
                .arg(user_id)
                .clone(),
        )
        .await?;
    Ok(number.map(|n| ticket(key, sale_id, user_id, n)))
}

/// A random sale's draw seed: the hex HMAC the edge derives the shuffle's round keys from
/// (`queue.lua` `shuffle_keys`). Published after the draw, so anyone can recompute the
/// places; it reveals nothing of the link secret or of any other sale's draw.
pub fn draw_seed(link_key: &[u8], sale_id: u64) -> String {
    crate::tokens::crypto::sign_hex(
        link_key,
        format!("seckill queue shuffle v1.{sale_id}").as_bytes(),
    )
}

/// The commitment to a draw's seed, shown before the line closes: hex SHA-256 of the seed.
pub fn draw_commitment(seed: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, seed.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// (sale, user, number) of a ticket that verifies.
pub fn verify_ticket(key: &[u8], text: &str) -> Option<(u64, u64, u64)> {
    let mut parts = text.splitn(4, '.');
    // Plain decimal digits, no sign or leading zero: one spelling per ticket (as the edge).
    let mut num = || {
        let p = parts.next()?;
        let plain = !p.is_empty() && !p.starts_with('0') && p.bytes().all(|b| b.is_ascii_digit());
        plain.then(|| p.parse::<u64>().ok()).flatten()
    };
    let (sale, user, number) = (num()?, num()?, num()?);
    let sig = parts.next()?;
    crate::tokens::crypto::verify_hex(key, ticket_message(sale, user, number).as_bytes(), sig)
        .then_some((sale, user, number))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_vector() {
        // Also asserted by edge/spec/queue_spec.lua.
        let key = ticket_key(b"test-link-key-0123456789");
        assert_eq!(
            ticket(&key, 7, 42, 1001),
            "7.42.1001.19d9c44388c2170de52de9a69ff7db8433b73358cd5b010efb3e73c4b012b61a"
        );
    }

    #[test]
    fn tickets_verify_only_as_issued() {
        let key = ticket_key(b"0123456789abcdef0123456789abcdef");
        let t = ticket(&key, 7, 42, 1001);
        assert_eq!(verify_ticket(&key, &t), Some((7, 42, 1001)));
        assert_eq!(verify_ticket(&key, &t.replace(".1001.", ".1000.")), None);
        assert_eq!(verify_ticket(&key, &t.replacen("7.", "8.", 1)), None);
        assert_eq!(verify_ticket(b"another key", &t), None);
        assert_eq!(verify_ticket(&key, "7.42.1001"), None);
        assert_eq!(verify_ticket(&key, &format!("+{t}")), None);
        assert_eq!(verify_ticket(&key, &format!("0{t}")), None);
        let (head, sig) = t.rsplit_once('.').unwrap();
        assert_eq!(verify_ticket(&key, &format!("{head}.x.{sig}")), None);
    }
}
