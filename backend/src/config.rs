//! Configuration, built once at start from the environment and an optional `KEY=VALUE` file.
//!
//! Every key is `SECKILL_*`. The file named by `SECKILL_CONFIG` is read first and the
//! environment overrides it. A bad value is reported with its key and the value given, and
//! nothing starts. Tests build a `Config` from a lookup function instead of the process
//! environment, so they never mutate global state.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// Where orders' stock lives: one Redis server, or the seed nodes of a Redis Cluster.
#[derive(Clone, Debug, PartialEq)]
pub enum RedisTarget {
    Single(String),
    Cluster(Vec<String>),
}

impl RedisTarget {
    /// A Cluster from a comma-separated list of `host:port` (or URLs); `None` if empty.
    pub fn cluster(list: &str) -> Option<RedisTarget> {
        let nodes: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|n| {
                if n.contains("://") {
                    n.to_string()
                } else {
                    format!("redis://{n}")
                }
            })
            .collect();
        (!nodes.is_empty()).then_some(RedisTarget::Cluster(nodes))
    }

    /// What tools are given: a list (a comma in it) is a Cluster, else one server's URL.
    pub fn from_arg(arg: &str) -> RedisTarget {
        match arg
            .contains(',')
            .then(|| RedisTarget::cluster(arg))
            .flatten()
        {
            Some(cluster) => cluster,
            None => RedisTarget::Single(arg.to_string()),
        }
    }
}

/// The secrets the backend signs and checks with. Each is a file in the secrets directory.
#[derive(Clone)]
pub struct Secrets {
    /// Signs shopper session tokens (the edge checks the same tokens).
    pub session_key: Vec<u8>,
    /// Signs the hidden purchase links; distinct from the session key.
    pub link_key: Vec<u8>,
    /// Bearer token for `/admin/`.
    pub admin_token: String,
    /// Signs captcha tokens (the edge checks answers with it).
    pub captcha_key: Vec<u8>,
    /// Shared with the payment provider: signs its notifications.
    pub pay_key: Vec<u8>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secrets(..)")
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// Also serve HTTP on this Unix socket (the edge's hop when both share a host).
    pub listen_unix: Option<PathBuf>,
    pub redis: RedisTarget,
    pub mysql_url: String,
    pub mysql_pool_max: usize,
    pub secrets: Secrets,
    /// Bound on every Redis call; past it the request gets a fast 503.
    pub redis_timeout: Duration,
    /// Most buys per reservation script call; 1 turns batching off (`reserver`).
    pub reserve_batch_max: usize,
    /// Replicas a reservation must reach before its buy is answered `queued` (0: no wait).
    pub redis_wait_replicas: u32,
    /// How long to wait for them; past it the answer is 503, outcome unknown.
    pub redis_wait: Duration,
    /// Bound on every MariaDB call.
    pub mysql_timeout: Duration,
    /// Requests in flight beyond this are shed with 503 at once.
    pub max_inflight: usize,
    /// Largest request body accepted, in bytes.
    pub max_body: usize,
    /// Largest operator body (bytes): many sales created in one call.
    pub max_admin_body: usize,
    pub session_ttl: Duration,
    /// Length of one purchase-link window; a link is valid in its window and the next.
    pub link_window: Duration,
    /// How long a local "sold out" answer is trusted before Redis is asked again.
    pub sold_out_ttl: Duration,
    /// Run the order writer inside this process.
    pub writer_enabled: bool,
    pub writer_batch: usize,
    /// Entries pending this long on another consumer are taken over (that writer is dead).
    pub writer_claim_idle: Duration,
    /// How often the writer looks at the active set (sales whose lease ended, claims).
    pub writer_look: Duration,
    pub shutdown_grace: Duration,
    /// How long a captcha may be answered.
    pub captcha_ttl: Duration,
    /// Captchas drawn ahead of the crowd (see `tokens::captcha::pool`); 0: drawn on demand.
    pub captcha_pool: usize,
    /// Where the pool keeps its pictures (None: in memory, at most 4,096).
    pub captcha_pool_dir: Option<std::path::PathBuf>,
    /// Test-only: captcha responses include the answer. Never on in production.
    pub captcha_test_hook: bool,
    /// A stream entry MariaDB refuses this many times goes to the dead-letter stream.
    pub writer_max_failures: u32,
    /// The writer's fence across Redis failovers (`store::fence`). Off only to measure what
    /// it prevents (docs/partitions.md): never in production.
    pub writer_fence: bool,
    /// How often the sweeper closes unpaid orders past their deadline.
    pub sweep_interval: Duration,
    /// How often the reconciler compares Redis with MariaDB.
    pub reconcile_interval: Duration,
    /// Where the simulated payment provider sends its notifications; by default this
    /// backend's own `/api/payments/notify`.
    pub pay_notify_url: Option<String>,
    /// How long the simulated provider takes before it notifies.
    pub pay_delay: Duration,
}

/// A configuration error: which key, which value, what is wrong.
#[derive(Debug, PartialEq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads the process environment (and the `SECKILL_CONFIG` file if set).
    pub fn from_env() -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        let mut merged = match env.get("SECKILL_CONFIG") {
            Some(path) => read_file(Path::new(path))?,
            None => HashMap::new(),
        };
        merged.extend(env);
        Config::from_lookup(|k| merged.get(k).cloned())
    }

    /// Builds the configuration from any key lookup (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let r = Reader { get: &get };
        let cfg = Self::read(&r)?;
        cfg.check()?;
        Ok(cfg)
    }

    /// Every key, read and parsed.
    fn read(r: &Reader<'_>) -> Result<Config, ConfigError> {
        let redis = match r.opt("SECKILL_REDIS_CLUSTER") {
            Some(nodes) => RedisTarget::cluster(&nodes).ok_or_else(|| {
                ConfigError(
                    "SECKILL_REDIS_CLUSTER: expected a comma-separated list of host:port, got an empty list".into(),
                )
            })?,
            None => RedisTarget::Single(r.string("SECKILL_REDIS_URL", "redis://127.0.0.1:16379")),
        };
        let secrets_dir = PathBuf::from(r.string("SECKILL_SECRETS_DIR", "var/secrets"));
        let secrets = Secrets {
            session_key: r.secret("SECKILL_SESSION_KEY", &secrets_dir, "session.key")?,
            link_key: r.secret("SECKILL_LINK_KEY", &secrets_dir, "link.key")?,
            admin_token: String::from_utf8(r.secret(
                "SECKILL_ADMIN_TOKEN",
                &secrets_dir,
                "admin.token",
            )?)
            .map_err(|_| ConfigError("SECKILL_ADMIN_TOKEN: not valid UTF-8".into()))?,
            captcha_key: r.secret("SECKILL_CAPTCHA_KEY", &secrets_dir, "captcha.key")?,
            pay_key: r.secret("SECKILL_PAY_KEY", &secrets_dir, "pay.key")?,
        };
        let cfg = Config {
            listen: r.parse("SECKILL_LISTEN", "127.0.0.1:8081")?,
            listen_unix: r.opt("SECKILL_LISTEN_UNIX").map(PathBuf::from),
            redis,
            mysql_url: r.string(
                "SECKILL_MYSQL_URL",
                "mysql://seckill:seckill@127.0.0.1:13306/seckill",
            ),
            mysql_pool_max: r.parse("SECKILL_MYSQL_POOL_MAX", "16")?,
            secrets,
            redis_timeout: r.millis("SECKILL_REDIS_TIMEOUT_MS", "500")?,
            reserve_batch_max: r.parse("SECKILL_RESERVE_BATCH_MAX", "128")?,
            redis_wait_replicas: r.parse("SECKILL_REDIS_WAIT_REPLICAS", "0")?,
            redis_wait: r.millis("SECKILL_REDIS_WAIT_MS", "100")?,
            mysql_timeout: r.millis("SECKILL_MYSQL_TIMEOUT_MS", "5000")?,
            max_inflight: r.parse("SECKILL_MAX_INFLIGHT", "4096")?,
            max_body: r.parse("SECKILL_MAX_BODY", "16384")?,
            max_admin_body: r.parse("SECKILL_MAX_ADMIN_BODY", "8388608")?,
            session_ttl: r.secs("SECKILL_SESSION_TTL_S", "86400")?,
            link_window: r.secs("SECKILL_LINK_WINDOW_S", "60")?,
            sold_out_ttl: r.millis("SECKILL_SOLD_OUT_TTL_MS", "1000")?,
            writer_enabled: r.parse("SECKILL_WRITER", "true")?,
            writer_batch: r.parse("SECKILL_WRITER_BATCH", "500")?,
            writer_claim_idle: r.millis("SECKILL_WRITER_CLAIM_IDLE_MS", "30000")?,
            writer_look: r.millis("SECKILL_WRITER_LOOK_MS", "1000")?,
            shutdown_grace: r.secs("SECKILL_SHUTDOWN_GRACE_S", "10")?,
            captcha_ttl: r.secs("SECKILL_CAPTCHA_TTL_S", "120")?,
            captcha_pool: r.parse("SECKILL_CAPTCHA_POOL", "120000")?,
            captcha_pool_dir: r
                .opt("SECKILL_CAPTCHA_POOL_DIR")
                .map(std::path::PathBuf::from),
            captcha_test_hook: r.parse("SECKILL_CAPTCHA_TEST_HOOK", "false")?,
            writer_max_failures: r.parse("SECKILL_WRITER_MAX_FAILURES", "5")?,
            writer_fence: r.parse("SECKILL_WRITER_FENCE", "true")?,
            sweep_interval: r.millis("SECKILL_SWEEP_INTERVAL_MS", "1000")?,
            reconcile_interval: r.millis("SECKILL_RECONCILE_INTERVAL_MS", "5000")?,
            pay_notify_url: r.opt("SECKILL_PAY_NOTIFY_URL"),
            pay_delay: r.millis("SECKILL_PAY_DELAY_MS", "300")?,
        };
        Ok(cfg)
    }

    /// The rules between values: counts at least 1, a WAIT shorter than the Redis timeout.
    fn check(&self) -> Result<(), ConfigError> {
        let cfg = self;
        for (key, v) in [
            ("SECKILL_MAX_INFLIGHT", cfg.max_inflight),
            ("SECKILL_WRITER_BATCH", cfg.writer_batch),
            ("SECKILL_MYSQL_POOL_MAX", cfg.mysql_pool_max),
            ("SECKILL_MAX_BODY", cfg.max_body),
            ("SECKILL_MAX_ADMIN_BODY", cfg.max_admin_body),
            (
                "SECKILL_WRITER_MAX_FAILURES",
                cfg.writer_max_failures as usize,
            ),
        ] {
            if v == 0 {
                return Err(ConfigError(format!("{key}: must be at least 1, got 0")));
            }
        }
        if cfg.redis_wait_replicas > 0
            && (cfg.redis_wait.is_zero() || cfg.redis_wait >= cfg.redis_timeout)
        {
            return Err(ConfigError(format!(
                "SECKILL_REDIS_WAIT_MS: must be from 1 to less than SECKILL_REDIS_TIMEOUT_MS ({} ms), got {}",
                cfg.redis_timeout.as_millis(),
                cfg.redis_wait.as_millis()
            )));
        }
        if cfg.link_window.is_zero() {
            return Err(ConfigError(
                "SECKILL_LINK_WINDOW_S: must be at least 1, got 0".into(),
            ));
        }
        Ok(())
    }
}

/// Reads a `KEY=VALUE` file; `#` starts a comment line.
fn read_file(path: &Path) -> Result<HashMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(format!(
            "SECKILL_CONFIG: cannot read {}: {e}",
            path.display()
        ))
    })?;
    let mut out = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line.split_once('=').ok_or_else(|| {
            ConfigError(format!(
                "SECKILL_CONFIG: {} line {}: expected KEY=VALUE, got {line:?}",
                path.display(),
                n + 1
            ))
        })?;
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}

struct Reader<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
}

impl Reader<'_> {
    fn opt(&self, key: &str) -> Option<String> {
        (self.get)(key).filter(|v| !v.trim().is_empty())
    }

    fn string(&self, key: &str, default: &str) -> String {
        self.opt(key).unwrap_or_else(|| default.to_string())
    }

    fn parse<T: FromStr>(&self, key: &str, default: &str) -> Result<T, ConfigError> {
        let raw = self.string(key, default);
        raw.trim()
            .parse()
            .map_err(|_| ConfigError(format!("{key}: cannot parse {raw:?}")))
    }

    fn millis(&self, key: &str, default: &str) -> Result<Duration, ConfigError> {
        self.parse::<u64>(key, default).map(Duration::from_millis)
    }

    fn secs(&self, key: &str, default: &str) -> Result<Duration, ConfigError> {
        self.parse::<u64>(key, default).map(Duration::from_secs)
    }

    /// A secret from its variable, else from `dir/file`; at least 16 bytes.
    fn secret(&self, key: &str, dir: &Path, file: &str) -> Result<Vec<u8>, ConfigError> {
        let value = match self.opt(key) {
            Some(v) => v.into_bytes(),
            None => {
                let path = dir.join(file);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    ConfigError(format!(
                        "{key}: not set and cannot read {} ({e}); set SECKILL_SECRETS_DIR",
                        path.display()
                    ))
                })?;
                text.trim().as_bytes().to_vec()
            }
        };
        if value.len() < 16 {
            return Err(ConfigError(format!(
                "{key}: a secret must be at least 16 bytes, got {}",
                value.len()
            )));
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut map: HashMap<String, String> = [
            ("SECKILL_SESSION_KEY", "0123456789abcdef-session"),
            ("SECKILL_LINK_KEY", "0123456789abcdef-link"),
            ("SECKILL_ADMIN_TOKEN", "0123456789abcdef-admin"),
            ("SECKILL_CAPTCHA_KEY", "0123456789abcdef-captcha"),
            ("SECKILL_PAY_KEY", "0123456789abcdef-payments"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in pairs {
            map.insert(k.to_string(), v.to_string());
        }
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_follow_the_design_ports() {
        let c = config(&[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8081");
        assert_eq!(
            c.redis,
            RedisTarget::Single("redis://127.0.0.1:16379".into())
        );
        assert!(c.mysql_url.contains(":13306/"));
    }

    #[test]
    fn a_bad_value_names_its_key_and_value() {
        let err = config(&[("SECKILL_MAX_INFLIGHT", "lots")]).unwrap_err();
        assert_eq!(err.0, "SECKILL_MAX_INFLIGHT: cannot parse \"lots\"");
        let err = config(&[("SECKILL_LISTEN", "nowhere")]).unwrap_err();
        assert!(err.0.starts_with("SECKILL_LISTEN"), "{err}");
        let err = config(&[("SECKILL_WRITER_BATCH", "0")]).unwrap_err();
        assert!(err.0.starts_with("SECKILL_WRITER_BATCH"), "{err}");
    }

    #[test]
    fn short_secrets_are_refused() {
        let err = config(&[("SECKILL_LINK_KEY", "short")]).unwrap_err();
        assert!(err.0.starts_with("SECKILL_LINK_KEY"), "{err}");
    }

    #[test]
    fn cluster_nodes_are_listed() {
        let c = config(&[("SECKILL_REDIS_CLUSTER", "127.0.0.1:7000, 127.0.0.1:7001")]).unwrap();
        assert_eq!(
            c.redis,
            RedisTarget::Cluster(vec![
                "redis://127.0.0.1:7000".into(),
                "redis://127.0.0.1:7001".into()
            ])
        );
    }
}
