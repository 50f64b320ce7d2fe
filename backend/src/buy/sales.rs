//! A sale: what is on sale, when, under which rules, and how it looks to a shopper.
//! Validating an operator's input is [`crate::buy::new_sale`]'s job; MariaDB, the system of
//! record, is [`crate::buy::sale_rows`]'s.

use serde_json::{json, Value};

use crate::clock::format_rfc3339;
use crate::error::ApiError;

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
    /// Its revision: every change gives it the next number (see `sale_rows`).
    pub rev: u64,
    /// An operator paused it: buys, captchas and admissions are refused until resumed.
    pub paused: bool,
    /// Shown on its page (None: the page's default text).
    pub description: Option<String>,
    /// Its picture (None: the default picture).
    pub image_url: Option<String>,
    /// Shown in the storefront's list (published).
    pub listed: bool,
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

    /// What a sale gets when its operator does not say: the draw. Everyone who joins before
    /// the start is placed by a keyed shuffle, so a script that reads the captcha in 30 ms and
    /// fires at the exact millisecond gains nothing over a person who takes five seconds
    /// (docs/waiting-room.md, "The opening"). `none` (a race) and `fifo` must be asked for.
    pub const FOR_NEW_SALES: QueueMode = QueueMode::Random;

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

    /// Ok while the sale takes buys; else the answer a buy gets (425 before, 410 after, 503
    /// while paused).
    pub fn open_at(&self, now_ms: i64) -> Result<(), ApiError> {
        match self.phase(now_ms) {
            Phase::Upcoming => Err(ApiError::NotStarted),
            Phase::Ended => Err(ApiError::Ended),
            Phase::Active if self.paused => Err(ApiError::Paused),
            Phase::Active => Ok(()),
        }
    }

    /// The public view of a sale. `stock_left` is Redis' count (None when not loaded).
    pub fn to_json(&self, stock_left: Option<i64>, now_ms: i64) -> Value {
        let status = self.status(stock_left, now_ms);
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
            "paused": self.paused,
            "description": self.description,
            "image_url": self.image_url,
            "listed": self.listed,
        })
    }

    /// `ended`, `sold_out`, `paused`, `upcoming` or `active` (in that order of precedence).
    pub fn status(&self, stock_left: Option<i64>, now_ms: i64) -> &'static str {
        match (self.phase(now_ms), stock_left) {
            (Phase::Ended, _) => "ended",
            (_, Some(n)) if n <= 0 => "sold_out",
            _ if self.paused => "paused",
            (Phase::Upcoming, _) => "upcoming",
            (Phase::Active, _) => "active",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            rev: 1,
            paused: false,
            description: None,
            image_url: None,
            listed: true,
        };
        assert_eq!(s.phase(99), Phase::Upcoming);
        assert_eq!(s.phase(100), Phase::Active);
        assert_eq!(s.phase(200), Phase::Ended);
        assert_eq!(s.to_json(Some(0), 150)["status"], "sold_out");
        assert_eq!(s.to_json(Some(3), 250)["status"], "ended");
        let paused = Sale { paused: true, ..s };
        assert_eq!(paused.to_json(Some(3), 150)["status"], "paused");
        assert!(matches!(paused.open_at(150), Err(ApiError::Paused)));
    }
}
