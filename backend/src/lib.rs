//! Flash-sale backend: the layer behind the nginx + Lua edge.
//!
//! # Layout
//!
//! The folders are the funnel's layers; one buy request flows down them once:
//!
//! - [`http`]: the hyper server (accept loop, in-flight cap, graceful shutdown), the route
//!   table ([`http::route`]) and the handlers by audience (shopper, orders, admin, internal).
//! - [`tokens`]: stateless HMAC tokens shared with the edge: session, signed purchase link,
//!   captcha.
//! - [`buy`]: the hot path: the sale and its cache, the waiting room, the reserver that
//!   batches buys, and [`buy::stock`], where one Redis script reserves a unit and enqueues
//!   its order atomically.
//! - [`writer`]: the order writer: Redis Stream consumer group -> batched MariaDB inserts,
//!   acknowledged only after commit.
//! - [`lifecycle`]: after the write and around failures: payment, the sweeper of unpaid
//!   orders, the reconciler, the recovery of a restarted Redis, the topology watcher that
//!   catches a Redis failover ([`lifecycle::topology`]).
//! - [`store`]: Redis (standalone or Cluster) and its breaker, key names, every Redis Lua
//!   script, MariaDB.
//!
//! Around them: [`config`] (every setting, read once; a bad value names its key), [`app`]
//! (the shared state, built once), [`service`] (runs the server, the writer and the
//! background duties until shutdown), [`metrics`] (one registry, passed down), [`error`]
//! (the one place that maps failures to an HTTP status and a JSON body), [`clock`] and
//! [`input`] (validated JSON fields).
#![forbid(unsafe_code)]

pub mod app;
pub mod buy;
pub mod clock;
pub mod config;
pub mod error;
pub mod http;
pub mod input;
pub mod lifecycle;
pub mod metrics;
pub mod service;
pub mod store;
pub mod tokens;
pub mod writer;
