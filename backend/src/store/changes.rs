//! The change log of sale states: how the edges learn what changed, not the whole world.
//!
//! A Redis stream (`seckill:changes`, one key, trimmed to about [`KEEP`] entries) of sale ids
//! whose fast-moving state changed: stock crossing a step ([`step`]: every unit at the end,
//! about every 20% before), sold out, units coming back, a waiting room paused or capped, a
//! sale rebuilt. A backend adds an entry after the change; the edge's pull asks for the
//! entries after the last id it saw (`changes.lua`) and gets those sales' states. Definitions
//! (a sale created, edited, paused, ended) travel by MariaDB revision instead
//! (`buy::sales::changed_since`); waiting rooms that are moving are stepped by every pull.
//!
//! An edge that fell behind the trimming, or whose id is ahead of the log (a Redis that lost
//! writes), is told to start over from the full list.

use redis::Value;

use super::redis_conn::{CallError, Redis};
use super::scripts::{eval, CHANGES};

/// The change log's key.
pub const LOG: &str = "seckill:changes";
/// About how many entries the log keeps.
pub const KEEP: usize = 100_000;

/// Records that these sales' state changed.
pub async fn announce(redis: &Redis, sale_ids: &[u64]) -> Result<(), CallError> {
    if sale_ids.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = sale_ids.iter().map(u64::to_string).collect();
    let mut cmd = redis::cmd("XADD");
    cmd.arg(LOG)
        .arg("MAXLEN")
        .arg("~")
        .arg(KEEP)
        .arg("*")
        .arg("s")
        .arg(ids.join(","));
    let _: Value = redis.cmd(cmd).await?;
    Ok(())
}

/// What the log holds after an id.
#[derive(Debug, PartialEq, Eq)]
pub enum Since {
    /// The sales changed after it (repeated ids possible), and the id to go on from.
    Changed { last: String, sales: Vec<u64> },
    /// Start over from the full list; the log's head now.
    StartOver { head: String },
}

/// The sales changed after entry `seen` ("0-0": none seen), at most `count` entries.
pub async fn since(redis: &Redis, seen: &str, count: usize) -> Result<Since, CallError> {
    let mut cmd = eval(CHANGES, &[LOG]);
    cmd.arg(seen).arg(count);
    let reply: Vec<Value> = redis.cmd(cmd).await?;
    let text = |v: &Value| match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(n) => n.to_string(),
        _ => String::new(),
    };
    let int = |v: &Value| match v {
        Value::Int(n) => Some(*n),
        _ => None,
    };
    match reply.as_slice() {
        [status, last, rest @ ..] if int(status) == Some(1) => Ok(Since::Changed {
            last: text(last),
            sales: rest.iter().filter_map(int).map(|n| n as u64).collect(),
        }),
        [_, head, ..] => Ok(Since::StartOver { head: text(head) }),
        _ => Err(CallError::Redis(redis::RedisError::from((
            redis::ErrorKind::TypeError,
            "changes: unexpected reply",
        )))),
    }
}

/// The log's head ("0-0" when empty): where an edge that just read the full list goes on
/// from.
pub async fn head(redis: &Redis) -> Result<String, CallError> {
    let last: Value = redis
        .cmd(
            redis::cmd("XREVRANGE")
                .arg(LOG)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .clone(),
        )
        .await?;
    Ok(first_id(&last).unwrap_or_else(|| "0-0".to_string()))
}

fn first_id(v: &Value) -> Option<String> {
    let Value::Array(items) = v else { return None };
    let Value::Array(entry) = items.first()? else {
        return None;
    };
    match entry.first()? {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

/// The step of a stock level: the exact count up to 10, then steps of about 20% (a change of
/// step is worth telling the edges: their admission cap follows the units left).
pub fn step(left: i64) -> i64 {
    if left <= 10 {
        left
    } else {
        11 + ((left as f64 / 10.0).ln() / 1.2f64.ln()).floor() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::step;

    #[test]
    fn steps_are_exact_at_the_end_and_coarse_before() {
        assert_eq!(step(0), 0);
        assert_eq!(step(7), 7);
        assert!(step(11) > step(10));
        assert_eq!(step(1000), step(999));
        assert!(step(1000) > step(800));
        // From 1,000,000 units to 0: fewer than 80 steps, so fewer than 80 announcements.
        assert!(step(1_000_000) < 80);
    }
}
