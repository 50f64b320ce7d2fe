//! Every Redis Lua script, in one place. The sources are the `.lua` files beside this module
//! (`store/scripts/`), compiled in with `include_str!`, so they can be read and linted as Lua
//! (`scripts/test` runs luacheck on them).
//!
//! Two kinds:
//! - **hot** scripts are called with `EVALSHA` and are never loaded on the fly: a Redis that
//!   answers `NOSCRIPT` has restarted or failed over and is not trusted until a recovery
//!   rebuilt it (`lifecycle::recovery`) and loaded them again ([`load_hot`]);
//! - **rare** scripts are sent whole with `EVAL` ([`eval`]), so they work on a Redis that lost
//!   its script cache (the repair that rebuilds it is one of them).
//!
//! Every script touches the keys of one sale only (one Cluster slot), or one key.

use std::sync::LazyLock;

use redis::{Cmd, Script, Value};

use super::redis_conn::{CallError, Redis};

/// Reserves one unit for one buyer and enqueues its order (see `buy::stock::reserve`).
pub const RESERVE: &str = include_str!("scripts/reserve.lua");
/// The same for a batch of buyers of one sale, in one call.
pub const RESERVE_MANY: &str = include_str!("scripts/reserve_many.lua");
/// Gives one order's unit back, once.
pub const RELEASE: &str = include_str!("scripts/release.lua");
/// Gives a shopper a ticket in a sale's waiting room.
pub const JOIN: &str = include_str!("scripts/join.lua");
/// Rebuilds a sale's stock, buyers and sequence from its ledger and MariaDB's facts.
pub const REPAIR: &str = include_str!("scripts/repair.lua");
/// Reads a sale's ledger atomically.
pub const LEDGER: &str = include_str!("scripts/ledger.lua");
/// Moves a waiting room's serving cursor one step.
pub const TICK: &str = include_str!("scripts/tick.lua");
/// Registers sales as busy in the active set (see `store::activity`).
pub const LEASE: &str = include_str!("scripts/lease.lua");
/// Removes sales seen drained from the active set, unless registered again since.
pub const RETIRE: &str = include_str!("scripts/retire.lua");
/// Reads the active set with its node's clock.
pub const ACTIVE_LIST: &str = include_str!("scripts/active.lua");
/// Sets a sale's stock before anything was reserved.
pub const RESTOCK: &str = include_str!("scripts/restock.lua");
/// Reads the change log after an id (see `store::changes`).
pub const CHANGES: &str = include_str!("scripts/changes.lua");

pub static RESERVE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RESERVE));
pub static RESERVE_MANY_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RESERVE_MANY));
pub static RELEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RELEASE));
pub static JOIN_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(JOIN));
pub static LEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(LEASE));
pub static RETIRE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RETIRE));

/// The scripts called by SHA; [`load_hot`] loads exactly these.
const HOT: &[&str] = &[RESERVE, RESERVE_MANY, RELEASE, JOIN, LEASE, RETIRE];

/// The hot scripts' sources (loaded on the primaries by a recovery).
pub fn hot_sources() -> &'static [&'static str] {
    HOT
}

/// The SHA1s of the hot scripts.
pub fn hot_hashes() -> Vec<String> {
    HOT.iter()
        .map(|src| Script::new(src).get_hash().to_string())
        .collect()
}

/// `EVALSHA` of a hot script with its keys; the caller appends the arguments.
pub fn evalsha(script: &Script, keys: &[&str]) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(keys.len()).arg(keys);
    cmd
}

/// `EVAL` of a rare script (sent in full: it works on a Redis that lost its script cache).
pub fn eval(src: &str, keys: &[&str]) -> Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(src).arg(keys.len()).arg(keys);
    cmd
}

/// Loads the hot scripts into Redis (on a Cluster, into every primary).
pub async fn load_hot(redis: &Redis) -> Result<(), CallError> {
    for src in HOT {
        let _: Value = redis
            .cmd(redis::cmd("SCRIPT").arg("LOAD").arg(*src).clone())
            .await?;
    }
    Ok(())
}
