//! What happens to an order after it is written, and to Redis when it fails: payment (one
//! charge per order) and its [`refunds`], with the simulated [`provider`], the [`sweeper`] that returns
//! unpaid units, the [`reconcile`]r that keeps Redis and MariaDB in agreement, the
//! [`recovery`] that rebuilds a restarted Redis, and the [`topology`] watcher that finds a
//! failed-over Redis primary before it takes a buy.

pub mod payment;
pub mod provider;
pub mod reconcile;
pub mod recovery;
pub mod refunds;
pub mod sweeper;
pub mod topology;
