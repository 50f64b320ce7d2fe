//! Local caches in front of MariaDB and Redis, so the hot path mostly touches neither.
//!
//! - Sale metadata is cached for minutes; an operator's change is forgotten at once here and
//!   within a second in every other backend ([`SaleCache::follow`], on every lifecycle
//!   pass, follows the sales' revisions). An unknown sale id is cached as "absent" for a second only, so it appears
//!   soon after it is created but probing random ids cannot hammer MariaDB.
//! - The sold-out flag: once Redis said "sold out", buys are refused locally for
//!   `sold_out_ttl`, then Redis is asked again (stock can come back when an unpaid order
//!   expires). This stops the Redis trips of the crowd that arrives after the last unit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use moka::Expiry;

use crate::buy::sales::Sale;

const SALE_TTL: Duration = Duration::from_secs(300);
const ABSENT_TTL: Duration = Duration::from_secs(1);

struct SaleExpiry;

impl Expiry<u64, Option<Arc<Sale>>> for SaleExpiry {
    fn expire_after_create(
        &self,
        _key: &u64,
        value: &Option<Arc<Sale>>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(if value.is_some() {
            SALE_TTL
        } else {
            ABSENT_TTL
        })
    }
}

/// An order's answer as its owner polls it, and whose it is.
#[derive(Clone)]
pub struct OrderView {
    pub owner: u64,
    pub body: serde_json::Value,
}

struct OrderExpiry;

impl Expiry<u64, OrderView> for OrderExpiry {
    /// A final state (paid, cancelled) changes no more: kept 10 s; any other a second.
    fn expire_after_create(&self, _key: &u64, v: &OrderView, _at: Instant) -> Option<Duration> {
        let settled = matches!(v.body["status"].as_str(), Some("paid" | "cancelled"));
        Some(if settled {
            Duration::from_secs(10)
        } else {
            Duration::from_secs(1)
        })
    }
}

/// Orders as their owners poll them: a winner polling every half second, or a script
/// polling in a loop, costs MariaDB at most one query a second per order and backend.
#[derive(Clone)]
pub struct OrderCache {
    orders: Cache<u64, OrderView>,
}

impl Default for OrderCache {
    fn default() -> OrderCache {
        OrderCache {
            orders: Cache::builder()
                .max_capacity(200_000)
                .expire_after(OrderExpiry)
                .build(),
        }
    }
}

impl OrderCache {
    /// The order's view, from the cache or from `load` (run once however many wait on it).
    pub async fn get<F, E>(&self, id: u64, load: F) -> Result<OrderView, Arc<E>>
    where
        F: std::future::Future<Output = Result<OrderView, E>>,
        E: Send + Sync + 'static,
    {
        self.orders.try_get_with(id, load).await
    }

    /// Forgets an order that changes now (its payment starts).
    pub async fn forget(&self, id: u64) {
        self.orders.invalidate(&id).await;
    }
}

#[derive(Clone)]
pub struct SaleCache {
    sales: Cache<u64, Option<Arc<Sale>>>,
    sold_out: Cache<u64, ()>,
}

impl SaleCache {
    pub fn new(sold_out_ttl: Duration) -> SaleCache {
        SaleCache {
            sales: Cache::builder()
                .max_capacity(100_000)
                .expire_after(SaleExpiry)
                .build(),
            sold_out: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(sold_out_ttl)
                .build(),
        }
    }

    /// The sale, from the cache or from `load` (run once however many callers wait on it).
    pub async fn sale<F, E>(&self, id: u64, load: F) -> Result<Option<Arc<Sale>>, Arc<E>>
    where
        F: std::future::Future<Output = Result<Option<Sale>, E>>,
        E: Send + Sync + 'static,
    {
        self.sales
            .try_get_with(id, async { load.await.map(|s| s.map(Arc::new)) })
            .await
    }

    pub fn is_cached(&self, id: u64) -> bool {
        self.sales.contains_key(&id)
    }

    /// Puts a sale just created, so the first buyers need no MariaDB trip.
    pub async fn put(&self, sale: Sale) {
        self.sales.insert(sale.id, Some(Arc::new(sale))).await;
    }

    /// The sales of `ids` that exist: from the cache, the others from MariaDB in one query
    /// (and cached).
    pub async fn sales(
        &self,
        ids: &[u64],
        db: &mysql_async::Pool,
    ) -> Result<Vec<Sale>, mysql_async::Error> {
        let mut out = Vec::with_capacity(ids.len());
        let mut missing = Vec::new();
        for id in ids {
            match self.sales.get(id).await {
                Some(Some(s)) => out.push((*s).clone()),
                Some(None) => {}
                None => missing.push(*id),
            }
        }
        for s in crate::buy::sale_rows::load_many(db, &missing).await? {
            self.put(s.clone()).await;
            out.push(s);
        }
        Ok(out)
    }

    /// Forgets the sales revised after `*rev` (an operator's change made through another
    /// backend) and moves `*rev` on: one indexed query, whatever the number of sales.
    pub async fn follow(
        &self,
        db: &mysql_async::Pool,
        rev: &mut u64,
    ) -> Result<usize, mysql_async::Error> {
        let revised = crate::buy::sale_rows::revised_since(db, *rev).await?;
        for (id, r) in &revised {
            self.sales.invalidate(id).await;
            self.sold_out.invalidate(id).await;
            *rev = (*rev).max(*r);
        }
        Ok(revised.len())
    }

    /// Forgets a sale that changed (the next request reads it again).
    pub async fn forget(&self, id: u64) {
        self.sales.invalidate(&id).await;
    }

    pub fn is_sold_out(&self, id: u64) -> bool {
        self.sold_out.contains_key(&id)
    }

    pub async fn mark_sold_out(&self, id: u64) {
        self.sold_out.insert(id, ()).await;
    }
}
