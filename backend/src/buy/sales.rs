//! Sales: validating a new sale, writing it to MariaDB (the system of record) and then
//! preheating its stock into Redis, and reading sales back.

use mysql_async::prelude::Queryable;
use mysql_async::{Pool, Row};
use serde_json::{json, Value};

use crate::clock::format_rfc3339;
use crate::error::ApiError;
use crate::input::Fields;

pub const MAX_STOCK: i64 = 10_000_000;
/// Slots are bits of one Redis integer, so a buyer may hold at most this many orders.
pub const MAX_PER_USER: i64 = 30;
pub const DEFAULT_PAY_WINDOW_S: i64 = 900;
/// How long after its end a sale is still looked after: its stream drained by the writer,
/// checked by the reconciler, rebuilt by recovery.
pub const RETENTION_MS: i64 = 24 * 3600 * 1000;
/// How long after its end the edge keeps a sale's state, to answer "ended" itself: longer
/// than any purchase link or captcha issued before the end can be presented (two link
/// windows, a captcha's lifetime), with room to spare.
pub const EDGE_GRACE_MS: i64 = 3_600_000;

#[derive(Clone, Debug, PartialEq)]
pub struct Sale {
    pub id: u64,
    pub title: String,
    pub price_cents: u64,
    pub stock: u32,
    pub per_user_limit: u32,
    pub starts_ms: i64,
    pub ends_ms: i64,
    pub pay_window_s: u32,
    pub queue: QueueRules,
}

/// How shoppers get their turn (see [`crate::buy::queue`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueMode {
    /// No waiting room: a race at the start, as without one.
    None,
    /// First come, first served by arrival at the edge.
    Fifo,
    /// Those who joined before the draw are shuffled; later arrivals queue behind them.
    Random,
}

impl QueueMode {
    pub const NAMES: [&'static str; 3] = ["none", "fifo", "random"];

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    pub fn parse(text: &str) -> Option<QueueMode> {
        match text {
            "none" => Some(QueueMode::None),
            "fifo" => Some(QueueMode::Fifo),
            "random" => Some(QueueMode::Random),
            _ => None,
        }
    }
}

/// The waiting room's rules for one sale, fixed at creation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueRules {
    pub mode: QueueMode,
    /// `random`: joins up to this long after the start still enter the draw.
    pub grace_s: u32,
    /// Admissions outstanding per unit left (1: every admitted shopper has a unit waiting).
    pub admit_multiple: u32,
    /// How long an admission lasts; a no-show's place then goes to the next ticket.
    pub admit_ttl_s: u32,
}

impl Default for QueueRules {
    fn default() -> QueueRules {
        QueueRules {
            mode: QueueMode::None,
            grace_s: 0,
            admit_multiple: 1,
            admit_ttl_s: 120,
        }
    }
}

impl QueueRules {
    fn from_fields(f: &Fields) -> Result<QueueRules, ApiError> {
        let d = QueueRules::default();
        let mode = f.choice("queue", &QueueMode::NAMES, Some(d.mode.as_str()))?;
        let rules = QueueRules {
            mode: QueueMode::parse(&mode).unwrap_or(QueueMode::None),
            grace_s: f.int("queue_grace_s", 0, 3600, Some(0))? as u32,
            admit_multiple: f.int("admit_multiple", 1, 10, Some(d.admit_multiple.into()))? as u32,
            admit_ttl_s: f.int("admit_ttl_s", 10, 3600, Some(d.admit_ttl_s.into()))? as u32,
        };
        if rules.grace_s > 0 && rules.mode != QueueMode::Random {
            return Err(ApiError::unprocessable(
                "bad_field",
                "queue_grace_s: only a \"random\" queue has a draw to close",
            ));
        }
        Ok(rules)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Upcoming,
    Active,
    Ended,
}

impl Sale {
    pub fn phase(&self, now_ms: i64) -> Phase {
        if now_ms < self.starts_ms {
            Phase::Upcoming
        } else if now_ms < self.ends_ms {
            Phase::Active
        } else {
            Phase::Ended
        }
    }

    /// Ok while the sale takes buys; else the answer a buy gets (425 before, 410 after).
    pub fn open_at(&self, now_ms: i64) -> Result<(), ApiError> {
        match self.phase(now_ms) {
            Phase::Upcoming => Err(ApiError::NotStarted),
            Phase::Ended => Err(ApiError::Ended),
            Phase::Active => Ok(()),
        }
    }

    /// The public view of a sale. `stock_left` is Redis' count (None when not loaded).
    pub fn to_json(&self, stock_left: Option<i64>, now_ms: i64) -> Value {
        let status = match (self.phase(now_ms), stock_left) {
            (Phase::Ended, _) => "ended",
            (_, Some(n)) if n <= 0 => "sold_out",
            (Phase::Upcoming, _) => "upcoming",
            (Phase::Active, _) => "active",
        };
        json!({
            "id": self.id,
            "title": self.title,
            "price_cents": self.price_cents,
            "stock": self.stock,
            "stock_left": stock_left,
            "per_user_limit": self.per_user_limit,
            "pay_window_s": self.pay_window_s,
            "starts_at": format_rfc3339(self.starts_ms),
            "ends_at": format_rfc3339(self.ends_ms),
            "starts_ms": self.starts_ms,
            "ends_ms": self.ends_ms,
            "status": status,
            "now_ms": now_ms,
            "queue": self.queue.mode.as_str(),
            "queue_grace_s": self.queue.grace_s,
            "admit_multiple": self.queue.admit_multiple,
            "admit_ttl_s": self.queue.admit_ttl_s,
        })
    }
}

/// A sale as an operator asks for it, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct NewSale {
    pub title: String,
    pub price_cents: u64,
    pub stock: u32,
    pub per_user_limit: u32,
    pub starts_ms: i64,
    pub ends_ms: i64,
    pub pay_window_s: u32,
    pub queue: QueueRules,
}

impl NewSale {
    pub fn from_json(body: &Value, now_ms: i64) -> Result<NewSale, ApiError> {
        let f = Fields::new(
            body,
            &[
                "title",
                "price_cents",
                "stock",
                "starts_at",
                "ends_at",
                "per_user_limit",
                "pay_window_s",
                "queue",
                "queue_grace_s",
                "admit_multiple",
                "admit_ttl_s",
            ],
        )?;
        let sale = NewSale {
            title: f.string("title", 1, 200)?,
            price_cents: f.int("price_cents", 0, 100_000_000_000, None)? as u64,
            stock: f.int("stock", 1, MAX_STOCK, None)? as u32,
            per_user_limit: f.int("per_user_limit", 1, MAX_PER_USER, Some(1))? as u32,
            starts_ms: f.time_ms("starts_at")?,
            ends_ms: f.time_ms("ends_at")?,
            pay_window_s: f.int("pay_window_s", 1, 86_400, Some(DEFAULT_PAY_WINDOW_S))? as u32,
            queue: QueueRules::from_fields(&f)?,
        };
        if sale.ends_ms <= sale.starts_ms {
            return Err(ApiError::unprocessable(
                "bad_field",
                "ends_at: must be after starts_at",
            ));
        }
        if sale.ends_ms <= now_ms {
            return Err(ApiError::unprocessable(
                "bad_field",
                "ends_at: is in the past",
            ));
        }
        Ok(sale)
    }
}

const COLUMNS: &str = "id, title, price_cents, stock, per_user_limit, starts_ms, ends_ms, \
                       pay_window_s, queue, queue_grace_s, admit_multiple, admit_ttl_s";

fn from_row(row: Row) -> Result<Sale, mysql_async::FromRowError> {
    type Columns = (
        u64,
        String,
        u64,
        u32,
        u32,
        i64,
        i64,
        u32,
        String,
        u32,
        u32,
        u32,
    );
    let (
        id,
        title,
        price_cents,
        stock,
        per_user_limit,
        starts_ms,
        ends_ms,
        pay_window_s,
        mode,
        grace_s,
        admit_multiple,
        admit_ttl_s,
    ): Columns = mysql_async::from_row_opt(row)?;
    Ok(Sale {
        id,
        title,
        price_cents,
        stock,
        per_user_limit,
        starts_ms,
        ends_ms,
        pay_window_s,
        queue: QueueRules {
            mode: QueueMode::parse(&mode).unwrap_or(QueueMode::None),
            grace_s,
            admit_multiple,
            admit_ttl_s,
        },
    })
}

pub async fn insert(db: &Pool, new: &NewSale, now_ms: i64) -> Result<Sale, mysql_async::Error> {
    let mut conn = db.get_conn().await?;
    conn.exec_drop(
        "INSERT INTO sales (title, price_cents, stock, per_user_limit, starts_ms, ends_ms,
                            pay_window_s, created_ms, queue, queue_grace_s, admit_multiple,
                            admit_ttl_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            &new.title,
            new.price_cents,
            new.stock,
            new.per_user_limit,
            new.starts_ms,
            new.ends_ms,
            new.pay_window_s,
            now_ms,
            new.queue.mode.as_str(),
            new.queue.grace_s,
            new.queue.admit_multiple,
            new.queue.admit_ttl_s,
        ),
    )
    .await?;
    let id = conn
        .last_insert_id()
        .ok_or_else(|| mysql_async::Error::Other("INSERT INTO sales returned no id".into()))?;
    Ok(Sale {
        id,
        title: new.title.clone(),
        price_cents: new.price_cents,
        stock: new.stock,
        per_user_limit: new.per_user_limit,
        starts_ms: new.starts_ms,
        ends_ms: new.ends_ms,
        pay_window_s: new.pay_window_s,
        queue: new.queue,
    })
}

pub async fn load(db: &Pool, id: u64) -> Result<Option<Sale>, mysql_async::Error> {
    let mut conn = db.get_conn().await?;
    let row: Option<Row> = conn
        .exec_first(format!("SELECT {COLUMNS} FROM sales WHERE id = ?"), (id,))
        .await?;
    row.map(from_row)
        .transpose()
        .map_err(|e| mysql_async::Error::Other(format!("sales row: {e}").into()))
}

/// Sales that ended after `since_ms`: the ones whose streams may still hold orders.
pub async fn ending_after(db: &Pool, since_ms: i64) -> Result<Vec<Sale>, mysql_async::Error> {
    let mut conn = db.get_conn().await?;
    let rows: Vec<Row> = conn
        .exec(
            format!("SELECT {COLUMNS} FROM sales WHERE ends_ms > ? ORDER BY id"),
            (since_ms,),
        )
        .await?;
    rows.into_iter()
        .map(|r| {
            from_row(r).map_err(|e| mysql_async::Error::Other(format!("sales row: {e}").into()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> Value {
        json!({"title": "Phone", "price_cents": 9900, "stock": 100,
               "starts_at": "2030-01-01T10:00:00Z", "ends_at": 1_893_495_600_000i64})
    }

    #[test]
    fn a_valid_sale_takes_defaults() {
        let s = NewSale::from_json(&body(), 0).unwrap();
        assert_eq!(s.per_user_limit, 1);
        assert_eq!(s.pay_window_s, 900);
        assert_eq!(s.queue, QueueRules::default());
        assert_eq!(s.starts_ms, 1_893_492_000_000);
    }

    #[test]
    fn the_window_must_be_sane() {
        let mut b = body();
        b["ends_at"] = json!("2029-01-01T00:00:00Z");
        let err = NewSale::from_json(&b, 0).unwrap_err();
        assert_eq!(err.message(), "ends_at: must be after starts_at");
        b["starts_at"] = json!(0);
        let err = NewSale::from_json(&b, 1_900_000_000_000).unwrap_err();
        assert_eq!(err.message(), "ends_at: is in the past");
    }

    #[test]
    fn queue_rules_are_checked() {
        let mut b = body();
        b["queue"] = json!("random");
        b["queue_grace_s"] = json!(30);
        let s = NewSale::from_json(&b, 0).unwrap();
        assert_eq!(s.queue.mode, QueueMode::Random);
        assert_eq!(s.queue.grace_s, 30);
        b["queue"] = json!("fifo");
        let err = NewSale::from_json(&b, 0).unwrap_err();
        assert!(
            err.message().starts_with("queue_grace_s:"),
            "{}",
            err.message()
        );
        b["queue"] = json!("lottery");
        let err = NewSale::from_json(&b, 0).unwrap_err();
        assert!(
            err.message().starts_with("queue: expected one of"),
            "{}",
            err.message()
        );
        b["queue"] = json!("fifo");
        b["queue_grace_s"] = json!(0);
        b["admit_multiple"] = json!(11);
        assert!(NewSale::from_json(&b, 0).is_err());
    }

    #[test]
    fn phases_follow_the_window() {
        let s = Sale {
            id: 1,
            title: "t".into(),
            price_cents: 1,
            stock: 1,
            per_user_limit: 1,
            starts_ms: 100,
            ends_ms: 200,
            pay_window_s: 1,
            queue: QueueRules::default(),
        };
        assert_eq!(s.phase(99), Phase::Upcoming);
        assert_eq!(s.phase(100), Phase::Active);
        assert_eq!(s.phase(200), Phase::Ended);
        assert_eq!(s.to_json(Some(0), 150)["status"], "sold_out");
        assert_eq!(s.to_json(Some(3), 250)["status"], "ended");
    }
}
