//! The storefront: the published sales that have not ended, soonest start first (so the live
//! ones, then the coming ones), as shoppers' home pages ask for them: `GET /api/sales`, then
//! `?after=<next_after>` for the next [`PAGE`]. One MariaDB query a second at most per page
//! and backend, whatever the crowd: a page is kept for [`FRESH`], and while one request
//! refreshes it the others wait for that refresh instead of querying too (the edge keeps
//! each page a second as well). The query reads the sales that have not ended (an index
//! range), never the ended ones: its cost follows the evening, not the history.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::Pool;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::buy::sale_rows;
use crate::buy::sales::Sale;
use crate::error::ApiError;

/// How long one answer is served.
pub const FRESH: Duration = Duration::from_secs(1);
/// Sales a page.
pub const PAGE: u64 = 100;

/// Where a page starts: after this sale in the list's order (start, then id).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct After {
    pub starts_ms: i64,
    pub id: u64,
}

impl After {
    /// `<starts_ms>_<id>`, as a page's `next_after` gives it.
    pub fn parse(text: &str) -> Result<After, ApiError> {
        let bad = || {
            ApiError::bad(
                "bad_parameter",
                format!("after: expected the next_after of the page before, got {text:?}"),
            )
        };
        let (starts, id) = text.split_once('_').ok_or_else(bad)?;
        Ok(After {
            starts_ms: starts.parse().map_err(|_| bad())?,
            id: id.parse().map_err(|_| bad())?,
        })
    }
}

/// A page as answered, and when.
type Kept = (Instant, Arc<Value>);

#[derive(Default)]
pub struct Storefront {
    kept: Mutex<HashMap<Option<After>, Kept>>,
}

impl Storefront {
    /// The page after `after` (the first page: None), at most [`FRESH`] old.
    pub async fn page(
        &self,
        db: &Pool,
        after: Option<After>,
        now_ms: i64,
    ) -> Result<Arc<Value>, mysql_async::Error> {
        let mut kept = self.kept.lock().await;
        if let Some((at, list)) = kept.get(&after) {
            if at.elapsed() < FRESH {
                return Ok(list.clone());
            }
        }
        let from = after.unwrap_or(After {
            starts_ms: i64::MIN,
            id: 0,
        });
        let sales = sale_rows::storefront(db, now_ms, (from.starts_ms, from.id), PAGE + 1).await?;
        let list = Arc::new(to_json(&sales, now_ms));
        kept.retain(|_, (at, _)| at.elapsed() < FRESH);
        kept.insert(after, (Instant::now(), list.clone()));
        Ok(list)
    }
}

/// What a shopper's list shows of each sale: no stock (the list is cached everywhere).
/// `sales` holds one more than a page when another page follows.
pub fn to_json(sales: &[Sale], now_ms: i64) -> Value {
    let more = sales.len() as u64 > PAGE;
    let items: Vec<Value> = sales
        .iter()
        .take(PAGE as usize)
        .map(|s| {
            json!({
                "id": s.id,
                "title": s.title,
                "price_cents": s.price_cents,
                "starts_at": crate::clock::format_rfc3339(s.starts_ms),
                "ends_at": crate::clock::format_rfc3339(s.ends_ms),
                "starts_ms": s.starts_ms,
                "ends_ms": s.ends_ms,
                "status": s.status(None, now_ms),
                "image_url": s.image_url,
                "url": format!("/sales/{}/", s.id),
            })
        })
        .collect();
    let next = sales
        .get(PAGE as usize - 1)
        .filter(|_| more)
        .map(|s| format!("{}_{}", s.starts_ms, s.id));
    json!({"now_ms": now_ms, "sales": items, "next_after": next})
}
