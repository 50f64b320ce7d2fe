//! Redis key names. Every key of one sale carries the hash tag `{sale:ID}`, so all of them
//! live in one Cluster slot and every script touches one slot only.

/// The consumer group the order writers share.
pub const WRITER_GROUP: &str = "writers";

pub struct SaleKeys {
    /// Units left (integer, never below 0).
    pub stock: String,
    /// user id -> bit mask of the order slots the user holds (`per_user_limit` bits).
    pub buyers: String,
    /// Order sequence: the last order number handed out in this sale.
    pub seq: String,
    /// order seq -> `user:slot` for every order this sale ever reserved. Never trimmed while
    /// the sale lives: with `returned` it is Redis's own ledger of live units, which lets the
    /// reconciler and the repair script count live orders atomically.
    pub reserved: String,
    /// The order stream the writer consumes.
    pub orders: String,
    /// Order seqs whose unit was given back (makes the return idempotent).
    pub returned: String,
    /// Stream entries the writer gave up on (unparseable, or refused by MariaDB `K` times),
    /// kept for an operator.
    pub dead: String,
    /// stream entry id -> how many times MariaDB refused to insert it.
    pub failures: String,
    /// The sale's generation: raised by every rebuild from MariaDB (`store::fence`); the
    /// writer inserts only entries read under the current one.
    pub gen: String,
    /// Waiting room: user id -> ticket number (arrival order at the edge, from 1).
    pub queue_tickets: String,
    /// Waiting room: the last ticket number handed out (how many joined).
    pub queue_seq: String,
    /// Waiting room: the serving cursor and its controls (a hash, see `queue.rs`).
    pub queue_state: String,
    /// Waiting room: "t_ms cursor" samples, newest first, at most one a second.
    pub queue_log: String,
    /// Waiting room: positions whose shopper ordered (a sorted set, score = position).
    pub queue_bought: String,
}

impl SaleKeys {
    pub fn new(sale_id: u64) -> SaleKeys {
        let tag = format!("{{sale:{sale_id}}}");
        SaleKeys {
            stock: format!("{tag}:stock"),
            buyers: format!("{tag}:buyers"),
            seq: format!("{tag}:seq"),
            reserved: format!("{tag}:reserved"),
            orders: format!("{tag}:orders"),
            returned: format!("{tag}:returned"),
            dead: format!("{tag}:dead"),
            failures: format!("{tag}:failures"),
            gen: format!("{tag}:gen"),
            queue_tickets: format!("{tag}:q:tickets"),
            queue_seq: format!("{tag}:q:seq"),
            queue_state: format!("{tag}:q:state"),
            queue_log: format!("{tag}:q:log"),
            queue_bought: format!("{tag}:q:bought"),
        }
    }
}

/// The Cluster slot of a key: CRC16 (XMODEM) of its hash tag (`{...}`, when not empty) or of
/// the whole key, modulo 16384.
pub fn key_slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let len = rest.iter().position(|&b| b == b'}')?;
        (len > 0).then(|| &rest[..len])
    });
    crc16(tagged.unwrap_or(key)) % 16384
}

fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    #[test]
    fn all_keys_share_the_hash_tag() {
        let k = super::SaleKeys::new(42);
        for key in [
            &k.stock,
            &k.buyers,
            &k.seq,
            &k.reserved,
            &k.orders,
            &k.returned,
            &k.dead,
            &k.failures,
            &k.gen,
            &k.queue_tickets,
            &k.queue_seq,
            &k.queue_state,
            &k.queue_log,
            &k.queue_bought,
        ] {
            assert!(key.starts_with("{sale:42}:"), "{key}");
        }
    }
}

#[cfg(test)]
mod slot_tests {
    use super::key_slot;

    #[test]
    fn slots_match_redis_cluster_keyslot() {
        // CLUSTER KEYSLOT answers: foo 12182, 123456789 12739; a tag decides for its key.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"123456789"), 12739);
        assert_eq!(key_slot(b"{foo}:bar"), 12182);
        assert_eq!(key_slot(b"{}foo"), key_slot(b"{}foo"));
        assert_ne!(key_slot(b"{}foo"), key_slot(b"foo"));
        assert_eq!(key_slot(b"{sale:7}:stock"), key_slot(b"sale:7"));
    }
}
