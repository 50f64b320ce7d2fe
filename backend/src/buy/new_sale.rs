//! An operator's sale, validated: one (`POST /admin/sales` with an object) or many at once
//! (with an array: all or nothing, a refusal naming the index and the field,
//! `"[3].stock: ..."`). Every refusal names the field and what was wrong.
//!
//! Times: RFC 3339 or epoch ms. A start more than [`PAST_GRACE_MS`] in the past is refused
//! (`starts_at: is in the past`) unless the operator asks for `"starts_at": "now"`: a typo
//! in a date must not put a sale live at once.

use serde_json::Value;

use crate::buy::sales::{
    QueueMode, QueueRules, Sale, DEFAULT_PAY_WINDOW_S, MAX_PER_USER, MAX_STOCK,
};
use crate::error::ApiError;
use crate::input::Fields;

/// Most sales one call may create.
pub const MAX_BATCH: usize = 10_000;
/// How far in the past a start may be and still count as "now" (clocks disagree a little).
pub const PAST_GRACE_MS: i64 = 5_000;

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
    pub description: Option<String>,
    pub image_url: Option<String>,
    /// Shown in the storefront's list at once (default), or once published.
    pub listed: bool,
}

const FIELDS: &[&str] = &[
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
    "description",
    "image_url",
    "listed",
];

impl NewSale {
    pub fn from_json(body: &Value, now_ms: i64) -> Result<NewSale, ApiError> {
        let f = Fields::new(body, FIELDS)?;
        let sale = NewSale {
            title: f.string("title", 1, 200)?,
            price_cents: f.int("price_cents", 0, 100_000_000_000, None)? as u64,
            stock: f.int("stock", 1, MAX_STOCK, None)? as u32,
            per_user_limit: f.int("per_user_limit", 1, MAX_PER_USER, Some(1))? as u32,
            starts_ms: start(&f, now_ms)?,
            ends_ms: f.time_ms("ends_at")?,
            pay_window_s: f.int("pay_window_s", 1, 86_400, Some(DEFAULT_PAY_WINDOW_S))? as u32,
            queue: queue_rules(&f)?,
            description: optional(&f, "description", 2000)?,
            image_url: image_url(&f)?,
            listed: f.boolean("listed")?.unwrap_or(true),
        };
        window(sale.starts_ms, sale.ends_ms, now_ms)?;
        Ok(sale)
    }

    /// An object (one sale) or an array of them (all valid, or the first refusal with its
    /// index).
    pub fn list_from_json(body: &Value, now_ms: i64) -> Result<Vec<NewSale>, ApiError> {
        let Some(items) = body.as_array() else {
            return Ok(vec![NewSale::from_json(body, now_ms)?]);
        };
        if items.is_empty() || items.len() > MAX_BATCH {
            return Err(ApiError::unprocessable(
                "bad_field",
                format!("body: expected 1 to {MAX_BATCH} sales, got {}", items.len()),
            ));
        }
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                NewSale::from_json(item, now_ms).map_err(|e| match e {
                    ApiError::BadRequest(status, code, m) => {
                        ApiError::BadRequest(status, code, format!("[{i}].{m}"))
                    }
                    other => other,
                })
            })
            .collect()
    }
}

/// An operator's change to a sale (`PATCH /admin/sales/{id}`), applied to the sale as it is
/// now. Before the start every field may change; once started only what a shopper cannot be
/// wronged by: the title, description and picture, and the end (to a time still ahead; to
/// end at once there is `POST .../end`). An ended sale does not change.
pub fn change(body: &Value, sale: &Sale, now_ms: i64) -> Result<Sale, ApiError> {
    let f = Fields::new(body, FIELDS)?;
    let started = sale.starts_ms <= now_ms;
    if sale.ends_ms <= now_ms {
        return Err(conflict(
            "sale: it has ended; an ended sale does not change",
        ));
    }
    if started {
        for field in FIELDS.iter().filter(|f| !AFTER_START.contains(f)) {
            if f.has(field) {
                return Err(conflict(format!(
                    "{field}: cannot change once the sale has started (only {} can)",
                    AFTER_START.join(", ")
                )));
            }
        }
    }
    let mut new = sale.clone();
    if f.has("title") {
        new.title = f.string("title", 1, 200)?;
    }
    if f.has("description") {
        new.description = optional(&f, "description", 2000)?;
    }
    if f.has("image_url") {
        new.image_url = image_url(&f)?;
    }
    if f.has("ends_at") {
        new.ends_ms = f.time_ms("ends_at")?;
    }
    if let Some(listed) = f.boolean("listed")? {
        new.listed = listed;
    }
    if !started {
        let d = |v: u32| Some(i64::from(v));
        new.price_cents = f.int(
            "price_cents",
            0,
            100_000_000_000,
            Some(sale.price_cents as i64),
        )? as u64;
        new.stock = f.int("stock", 1, MAX_STOCK, d(sale.stock))? as u32;
        new.per_user_limit =
            f.int("per_user_limit", 1, MAX_PER_USER, d(sale.per_user_limit))? as u32;
        new.pay_window_s = f.int("pay_window_s", 1, 86_400, d(sale.pay_window_s))? as u32;
        if f.has("starts_at") {
            new.starts_ms = start(&f, now_ms)?;
        }
        if ["queue", "queue_grace_s", "admit_multiple", "admit_ttl_s"]
            .iter()
            .any(|q| f.has(q))
        {
            new.queue = queue_rules_over(&f, sale.queue)?;
        }
    }
    window(new.starts_ms, new.ends_ms, now_ms)?;
    Ok(new)
}

/// What may change once a sale has started.
const AFTER_START: &[&str] = &["title", "description", "image_url", "ends_at", "listed"];

fn conflict(message: impl Into<String>) -> ApiError {
    ApiError::BadRequest(hyper::StatusCode::CONFLICT, "sale_started", message.into())
}

/// The waiting room's rules, each field given replacing the current one.
fn queue_rules_over(f: &Fields, current: QueueRules) -> Result<QueueRules, ApiError> {
    let mode = f.choice("queue", &QueueMode::NAMES, Some(current.mode.as_str()))?;
    let rules = QueueRules {
        mode: QueueMode::parse(&mode).unwrap_or(QueueMode::None),
        grace_s: f.int("queue_grace_s", 0, 3600, Some(current.grace_s.into()))? as u32,
        admit_multiple: f.int("admit_multiple", 1, 10, Some(current.admit_multiple.into()))? as u32,
        admit_ttl_s: f.int("admit_ttl_s", 10, 3600, Some(current.admit_ttl_s.into()))? as u32,
    };
    if rules.grace_s > 0 && rules.mode != QueueMode::Random {
        return Err(ApiError::unprocessable(
            "bad_field",
            "queue_grace_s: only a \"random\" queue has a draw to close",
        ));
    }
    Ok(rules)
}

/// `starts_at`: a time, or "now"; not in the past beyond the grace.
fn start(f: &Fields, now_ms: i64) -> Result<i64, ApiError> {
    if f.choice("starts_at", &["now"], Some("")).ok().as_deref() == Some("now") {
        return Ok(now_ms);
    }
    let starts = f.time_ms("starts_at")?;
    if starts < now_ms - PAST_GRACE_MS {
        return Err(ApiError::unprocessable(
            "bad_field",
            "starts_at: is in the past (send \"now\" to start the sale at once)",
        ));
    }
    Ok(starts)
}

/// The window must be a window, and not over.
pub fn window(starts_ms: i64, ends_ms: i64, now_ms: i64) -> Result<(), ApiError> {
    if ends_ms <= starts_ms {
        return Err(ApiError::unprocessable(
            "bad_field",
            "ends_at: must be after starts_at",
        ));
    }
    if ends_ms <= now_ms {
        return Err(ApiError::unprocessable(
            "bad_field",
            "ends_at: is in the past",
        ));
    }
    Ok(())
}

/// An optional text of at most `max` characters (line breaks allowed in a description).
fn optional(f: &Fields, name: &str, max: usize) -> Result<Option<String>, ApiError> {
    f.text(name, max)
}

/// A picture: a path on this site (`/assets/...`) or an `https://` URL.
fn image_url(f: &Fields) -> Result<Option<String>, ApiError> {
    let Some(url) = f.text("image_url", 500)? else {
        return Ok(None);
    };
    let site_path = url.starts_with('/') && !url.starts_with("//");
    let https = url.starts_with("https://") && url.len() > "https://".len();
    let plain = url
        .bytes()
        .all(|b| b.is_ascii_graphic() && !b"\"'<>\\`".contains(&b));
    if !(site_path || https) || !plain {
        return Err(ApiError::unprocessable(
            "bad_field",
            "image_url: expected a path on this site (/assets/...) or an https:// URL, without quotes, spaces or angle brackets",
        ));
    }
    Ok(Some(url))
}

/// The waiting room's rules.
pub fn queue_rules(f: &Fields) -> Result<QueueRules, ApiError> {
    let d = QueueRules::default();
    let mode = f.choice(
        "queue",
        &QueueMode::NAMES,
        Some(QueueMode::FOR_NEW_SALES.as_str()),
    )?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body() -> Value {
        json!({"title": "Phone", "price_cents": 9900, "stock": 100,
               "starts_at": "2030-01-01T10:00:00Z", "ends_at": 1_893_495_600_000i64})
    }

    #[test]
    fn a_valid_sale_takes_defaults() {
        let s = NewSale::from_json(&body(), 0).unwrap();
        assert_eq!(s.per_user_limit, 1);
        assert_eq!(s.pay_window_s, 900);
        // The draw unless the operator asks for a race or a line: speed buys nothing.
        let drawn = QueueRules {
            mode: QueueMode::Random,
            ..QueueRules::default()
        };
        assert_eq!(s.queue, drawn);
        assert_eq!(s.starts_ms, 1_893_492_000_000);
        assert_eq!((s.description, s.image_url), (None, None));
    }

    #[test]
    fn the_window_must_be_sane() {
        let mut b = body();
        b["ends_at"] = json!("2029-01-01T00:00:00Z");
        let err = NewSale::from_json(&b, 0).unwrap_err();
        assert_eq!(err.message(), "ends_at: must be after starts_at");
        b["starts_at"] = json!(0);
        let err = NewSale::from_json(&b, 1_900_000_000_000).unwrap_err();
        assert!(err.message().starts_with("starts_at: is in the past"));
    }

    #[test]
    fn a_start_in_the_past_needs_now() {
        let now = 1_800_000_000_000i64;
        let mut b = body();
        b["starts_at"] = json!(now - 3_600_000);
        let err = NewSale::from_json(&b, now).unwrap_err();
        assert_eq!(err.status(), hyper::StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            err.message().starts_with("starts_at: is in the past"),
            "{}",
            err.message()
        );
        b["starts_at"] = json!(now - 1000);
        assert_eq!(NewSale::from_json(&b, now).unwrap().starts_ms, now - 1000);
        b["starts_at"] = json!("now");
        assert_eq!(NewSale::from_json(&b, now).unwrap().starts_ms, now);
    }

    #[test]
    fn a_list_is_all_or_nothing_and_names_the_index() {
        let mut bad = body();
        bad["stock"] = json!(0);
        let err = NewSale::list_from_json(&json!([body(), body(), bad]), 0).unwrap_err();
        assert!(err.message().starts_with("[2].stock:"), "{}", err.message());
        let ok = NewSale::list_from_json(&json!([body(), body()]), 0).unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(NewSale::list_from_json(&body(), 0).unwrap().len(), 1);
        assert!(NewSale::list_from_json(&json!([]), 0).is_err());
    }

    #[test]
    fn a_started_sale_changes_only_what_wrongs_nobody() {
        let now = 1_800_000_000_000i64;
        let mut b = body();
        b["starts_at"] = json!(now + 60_000);
        b["ends_at"] = json!(now + 3_600_000);
        let new = NewSale::from_json(&b, now).unwrap();
        let sale = Sale {
            id: 1,
            title: new.title,
            price_cents: new.price_cents,
            stock: new.stock,
            per_user_limit: 1,
            starts_ms: new.starts_ms,
            ends_ms: new.ends_ms,
            pay_window_s: 900,
            queue: QueueRules::default(),
            rev: 1,
            paused: false,
            description: None,
            image_url: None,
            listed: true,
        };
        let before = change(&json!({"stock": 7, "title": "New"}), &sale, now).unwrap();
        assert_eq!((before.stock, before.title.as_str()), (7, "New"));
        let later = now + 120_000;
        let e = change(&json!({"stock": 7}), &sale, later).unwrap_err();
        assert_eq!(e.status(), hyper::StatusCode::CONFLICT);
        assert!(
            e.message().starts_with("stock: cannot change once"),
            "{}",
            e.message()
        );
        let ok = change(
            &json!({"ends_at": later + 1000, "description": "Hi"}),
            &sale,
            later,
        )
        .unwrap();
        assert_eq!(ok.description.as_deref(), Some("Hi"));
        let e = change(&json!({"ends_at": later - 1000}), &sale, later).unwrap_err();
        assert!(
            e.message().starts_with("ends_at: is in the past"),
            "{}",
            e.message()
        );
        let e = change(&json!({"title": "x"}), &sale, now + 7_200_000).unwrap_err();
        assert!(e.message().contains("has ended"));
    }

    #[test]
    fn pictures_stay_on_this_site_or_https() {
        for (url, ok) in [
            ("/assets/phone.svg", true),
            ("https://img.example/p.png", true),
            ("//evil.example/p.png", false),
            ("javascript:alert(1)", false),
            ("/a\"onerror=x", false),
            ("http://plain.example/p.png", false),
        ] {
            let mut b = body();
            b["image_url"] = json!(url);
            assert_eq!(NewSale::from_json(&b, 0).is_ok(), ok, "{url}");
        }
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
}
