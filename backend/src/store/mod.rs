//! The stores and how they are reached: which sales are busy ([`activity`]), what changed ([`changes`]), Redis, standalone or Cluster ([`redis_conn`]) behind
//! its circuit [`breaker`], key names ([`keys`]), every Redis Lua script ([`scripts`], the
//! sources in `scripts/*.lua`), and MariaDB ([`db`]: pool, migrations, bounded calls), and the writer's fence across
//! Redis failovers ([`fence`]).

pub mod activity;
pub mod breaker;
pub mod changes;
pub mod db;
pub mod fence;
pub mod keys;
pub mod nodes;
pub mod redis_conn;
pub mod scripts;
