//! Flash-sale backend: the layer behind the nginx + Lua edge.
//!
//! # Layout
//!
//! One buy request flows down these modules once:
//!
//! - [`config`]: every setting, read once at start; a bad value names its key.
//! - [`app`]: the shared state (connections, caches, metrics), built once.
//! - [`service`]: runs it: HTTP, the writer and the background duties, until shutdown.
//! - [`http`]: the hyper server (accept loop, in-flight cap, graceful shutdown), the route
//!   table and the handlers by audience.
//! - [`session`], [`link`], [`captcha`]: stateless HMAC tokens: who the shopper is, the
//!   captcha challenge the edge checks, and the signed buy path.
//! - [`cache`]: moka caches of sale metadata and the local sold-out flag.
//! - [`queue`]: the waiting room: tickets, the serving cursor, the draw (the edge answers
//!   the polls).
//! - [`reserver`]: concurrent buys of one sale reserved in one script call (group commit).
//! - [`stock`]: the Redis scripts that reserve a unit and enqueue the order atomically.
//! - [`writer`]: the order writer: Redis Stream consumer group -> batched MariaDB inserts.
//! - [`orders`]: order ids and the status a shopper polls.
//! - [`payment`]: one charge per order, signed notifications, refunds claimed once, money.
//! - [`provider`]: the simulated payment provider (charges, refunds, signed webhooks).
//! - [`sweeper`]: closes unpaid orders at their deadline and returns their units once.
//! - [`reconcile`]: Redis stock + live orders = initial stock, checked, reported and repaired.
//! - [`recovery`]: a Redis that restarted is rebuilt from MariaDB before it takes buys.
//! - [`breaker`]: the circuit breaker in front of Redis.
//! - [`sales`]: creating sales (MariaDB first, then preheating Redis) and reading them back.
//! - [`db`], [`redis_conn`]: connections to MariaDB and to Redis (standalone or Cluster).
//! - [`metrics`]: one registry, created at start and passed down.
//! - [`error`]: the one place that maps failures to an HTTP status and a JSON body.
#![forbid(unsafe_code)]

pub mod app;
pub mod breaker;
pub mod cache;
pub mod captcha;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod db;
pub mod error;
pub mod http;
pub mod input;
pub mod keys;
pub mod link;
pub mod metrics;
pub mod orders;
pub mod payment;
pub mod provider;
pub mod queue;
pub mod reconcile;
pub mod recovery;
pub mod redis_conn;
pub mod reserver;
pub mod sales;
pub mod service;
pub mod session;
pub mod stock;
pub mod sweeper;
pub mod topology;
pub mod writer;
