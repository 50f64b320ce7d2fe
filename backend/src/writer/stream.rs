//! The writer's side of a sale's Redis Stream: read new entries or its own pending ones,
//! take over entries idle on a dead writer (`XAUTOCLAIM`), acknowledge after commit, move an
//! entry to the dead-letter stream, count a row's refusals, and measure the backlog. Replies
//! are parsed here into [`QueuedOrder`]s; nothing here touches MariaDB.

use std::time::{Duration, Instant};

use redis::Value;

use crate::metrics::Metrics;
use crate::store::keys::{SaleKeys, WRITER_GROUP};
use crate::store::redis_conn::{CallError, Redis};

/// A raw stream entry: its id and its field/value pairs.
pub type Entry = (String, Vec<(String, String)>);

/// One order as the reserve script put it into the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedOrder {
    pub entry_id: String,
    pub seq: u64,
    pub user_id: u64,
    pub slot: u8,
    pub queued_ms: i64,
}

/// One sale's stream, as one consumer of the writers' group sees it.
pub struct Stream<'a> {
    pub redis: &'a Redis,
    pub metrics: &'a Metrics,
    pub keys: SaleKeys,
    pub consumer: &'a str,
    /// Most entries per read or claim.
    pub batch: usize,
}

impl Stream<'_> {
    /// The sale's generation (`store::fence`), read just before entries are: the entries then
    /// come from the node that had this generation, or from a later one (a client's slot map
    /// only moves forward), never from an older one, so a batch is never labelled newer than
    /// the master it was read from.
    pub async fn generation(&self) -> Result<u64, CallError> {
        let gen: Option<u64> = self.redis.cmd(redis::Cmd::get(&self.keys.gen)).await?;
        Ok(gen.unwrap_or(0))
    }

    /// Entries after the group's cursor (`from = ">"`) or this consumer's own pending ones
    /// (`from = "0"`, after a failed write).
    pub async fn read(&self, from: &str) -> Result<Vec<Entry>, CallError> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(WRITER_GROUP)
            .arg(self.consumer)
            .arg("COUNT")
            .arg(self.batch)
            .arg("STREAMS")
            .arg(&self.keys.orders)
            .arg(from);
        let start = Instant::now();
        let reply: Value = self.redis.cmd(cmd).await.inspect_err(|_| {
            self.metrics
                .redis_errors
                .with_label_values(&["xreadgroup"])
                .inc();
        })?;
        self.metrics
            .redis_duration
            .with_label_values(&["xreadgroup"])
            .observe(start.elapsed().as_secs_f64());
        // [[stream, [entries]]] or nil
        Ok(match reply {
            Value::Array(streams) => streams
                .iter()
                .filter_map(|s| match s {
                    Value::Array(pair) if pair.len() == 2 => Some(entries_of(&pair[1])),
                    _ => None,
                })
                .flatten()
                .collect(),
            _ => Vec::new(),
        })
    }

    /// Takes over every entry idle for `idle` on other (dead) consumers and returns them; the
    /// caller writes them like any other.
    pub async fn reclaim(&self, idle: Duration) -> Result<Vec<Entry>, CallError> {
        let mut start = "0-0".to_string();
        let mut claimed = Vec::new();
        loop {
            let mut cmd = redis::cmd("XAUTOCLAIM");
            cmd.arg(&self.keys.orders)
                .arg(WRITER_GROUP)
                .arg(self.consumer)
                .arg(idle.as_millis() as u64)
                .arg(&start)
                .arg("COUNT")
                .arg(self.batch);
            let reply: Value = self.redis.cmd(cmd).await?;
            let (next, raw) = match &reply {
                Value::Array(parts) if parts.len() >= 2 => (text(&parts[0]), &parts[1]),
                other => {
                    return Err(CallError::Redis(redis::RedisError::from((
                        redis::ErrorKind::TypeError,
                        "unexpected XAUTOCLAIM reply",
                        format!("{other:?}"),
                    ))))
                }
            };
            claimed.extend(entries_of(raw));
            match next {
                Some(n) if n != "0-0" => start = n,
                _ => break,
            }
        }
        self.metrics.writer_reclaimed.inc_by(claimed.len() as u64);
        Ok(claimed)
    }

    /// Committed: now, and only now, acknowledge.
    pub async fn ack(&self, orders: &[QueuedOrder]) -> Result<(), CallError> {
        if orders.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("XACK");
        cmd.arg(&self.keys.orders).arg(WRITER_GROUP);
        for o in orders {
            cmd.arg(&o.entry_id);
        }
        self.redis.cmd::<()>(cmd).await.inspect_err(|_| {
            self.metrics.redis_errors.with_label_values(&["xack"]).inc();
        })
    }

    /// Moves entries to the sale's dead-letter stream (with their fields, and the error if
    /// any) and acknowledges them, so they block nothing.
    pub async fn dead_letter(&self, entries: &[Entry]) -> Result<(), CallError> {
        let dead = &self.keys.dead;
        for (id, fields) in entries {
            eprintln!(
                "writer: moving entry {id} of {} to {dead}",
                self.keys.orders
            );
            let mut pipe = redis::pipe();
            pipe.cmd("XADD").arg(dead).arg("*").arg("entry").arg(id);
            for (f, v) in fields {
                pipe.arg(f).arg(v);
            }
            pipe.ignore()
                .cmd("XACK")
                .arg(&self.keys.orders)
                .arg(WRITER_GROUP)
                .arg(id)
                .ignore();
            self.redis
                .call(|mut c| async move { pipe.query_async::<()>(&mut c).await })
                .await?;
            self.metrics.writer_dead_letters.inc();
        }
        Ok(())
    }

    /// Counts one more refusal of this entry by MariaDB (kept in Redis: survives restarts).
    pub async fn count_refusal(&self, entry_id: &str) -> Result<u32, CallError> {
        self.redis
            .cmd(
                redis::cmd("HINCRBY")
                    .arg(&self.keys.failures)
                    .arg(entry_id)
                    .arg(1)
                    .clone(),
            )
            .await
    }

    /// Forgets an entry's refusal count (it was dead-lettered).
    pub async fn forget_refusals(&self, entry_id: &str) {
        let _: Result<i64, _> = self
            .redis
            .cmd(
                redis::cmd("HDEL")
                    .arg(&self.keys.failures)
                    .arg(entry_id)
                    .clone(),
            )
            .await;
    }
}

/// `XINFO GROUPS` of a sale's stream: its reply gives the writers' backlog
/// ([`group_backlog`]).
pub fn backlog_cmd(keys: &SaleKeys) -> redis::Cmd {
    redis::cmd("XINFO").arg("GROUPS").arg(&keys.orders).clone()
}

/// Splits raw entries into orders and entries that cannot be parsed (poison).
pub fn parse(entries: Vec<Entry>) -> (Vec<QueuedOrder>, Vec<Entry>) {
    let mut orders = Vec::with_capacity(entries.len());
    let mut poison = Vec::new();
    for (id, fields) in entries {
        match parse_order(&id, &fields) {
            Some(o) => orders.push(o),
            None => poison.push((id, fields)),
        }
    }
    (orders, poison)
}

fn parse_order(id: &str, fields: &[(String, String)]) -> Option<QueuedOrder> {
    let get = |name: &str| {
        fields
            .iter()
            .find(|(f, _)| f == name)
            .map(|(_, v)| v.as_str())
    };
    let slot: u8 = get("slot")?.parse().ok()?;
    let seq: u64 = get("seq")?.parse().ok()?;
    if slot == 0
        || slot as i64 > crate::buy::sales::MAX_PER_USER
        || seq == 0
        || seq > u32::MAX as u64
    {
        return None;
    }
    Some(QueuedOrder {
        entry_id: id.to_string(),
        seq,
        user_id: get("user")?.parse().ok()?,
        slot,
        queued_ms: get("ts")?.parse().ok()?,
    })
}

/// Entries the writers' group has not acknowledged: read but pending, plus not yet read
/// (`lag`), from an `XINFO GROUPS` reply.
pub fn group_backlog(reply: &Value) -> Option<i64> {
    let Value::Array(groups) = reply else {
        return None;
    };
    groups.iter().find_map(|g| {
        let pairs: Vec<(String, &Value)> = match g {
            Value::Array(kv) => kv
                .chunks(2)
                .filter_map(|c| Some((text(c.first()?)?, c.get(1)?)))
                .collect(),
            Value::Map(kv) => kv.iter().filter_map(|(k, v)| Some((text(k)?, v))).collect(),
            _ => return None,
        };
        let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
        if get("name").and_then(text).as_deref() != Some(WRITER_GROUP) {
            return None;
        }
        let num = |v: Option<&Value>| match v {
            Some(Value::Int(n)) => *n,
            _ => 0,
        };
        Some(num(get("pending")) + num(get("lag")))
    })
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `[[id, [field, value, ...]], ...]` -> entries. Deleted entries (nil) are skipped.
fn entries_of(v: &Value) -> Vec<(String, Vec<(String, String)>)> {
    let Value::Array(items) = v else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let Value::Array(pair) = item else {
                return None;
            };
            let id = text(pair.first()?)?;
            let fields = match pair.get(1)? {
                Value::Array(kv) => kv
                    .chunks(2)
                    .filter_map(|c| Some((text(c.first()?)?, text(c.get(1)?)?)))
                    .collect(),
                _ => Vec::new(),
            };
            Some((id, fields))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn parses_what_the_reserve_script_writes() {
        let o = parse_order(
            "1-0",
            &f(&[("seq", "3"), ("user", "9"), ("slot", "1"), ("ts", "5")]),
        )
        .unwrap();
        assert_eq!((o.seq, o.user_id, o.slot, o.queued_ms), (3, 9, 1, 5));
    }

    #[test]
    fn malformed_entries_are_poison() {
        assert!(parse_order(
            "1-0",
            &f(&[("seq", "3"), ("user", "9"), ("slot", "0"), ("ts", "5")])
        )
        .is_none());
        assert!(parse_order(
            "1-0",
            &f(&[("seq", "x"), ("user", "9"), ("slot", "1"), ("ts", "5")])
        )
        .is_none());
        assert!(parse_order("1-0", &f(&[("user", "9"), ("slot", "1"), ("ts", "5")])).is_none());
    }

    #[test]
    fn backlog_is_pending_plus_lag_of_the_writers_group() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let group = |name: &str, pending: i64, lag: Value| {
            Value::Array(vec![
                bulk("name"),
                bulk(name),
                bulk("pending"),
                Value::Int(pending),
                bulk("lag"),
                lag,
            ])
        };
        let reply = Value::Array(vec![
            group("others", 100, Value::Int(100)),
            group(WRITER_GROUP, 3, Value::Int(4)),
        ]);
        assert_eq!(group_backlog(&reply), Some(7));
        let unknown_lag = Value::Array(vec![group(WRITER_GROUP, 2, Value::Nil)]);
        assert_eq!(group_backlog(&unknown_lag), Some(2));
    }

    #[test]
    fn reads_stream_replies() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let reply = Value::Array(vec![
            Value::Array(vec![
                bulk("1-0"),
                Value::Array(vec![bulk("seq"), bulk("1")]),
            ]),
            Value::Nil,
        ]);
        assert_eq!(
            entries_of(&reply),
            vec![("1-0".to_string(), f(&[("seq", "1")]))]
        );
    }
}
