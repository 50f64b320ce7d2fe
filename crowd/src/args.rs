//! Command-line options. Every option has a default; a bad one names itself.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Args {
    pub users: usize,
    pub stock: u32,
    pub per_user_limit: u32,
    /// Closed loop: this many shoppers in flight. Open loop (`rate`): the most in flight.
    pub concurrency: usize,
    /// Open loop: shoppers arriving per second (0: closed loop, everyone at once).
    pub rate: f64,
    /// Longest sale phase; shoppers not started by then are counted as not arrived.
    pub duration: Duration,
    /// Share of shoppers who retry a 429 or 503 (up to three times).
    pub retry: f64,
    /// Share of shoppers who also cheat: replay another's link, reuse a spent captcha,
    /// forge a link, spoof `X-Forwarded-For` from an untrusted address.
    pub cheaters: f64,
    /// The sale starts this long after it is created (shoppers get ready meanwhile).
    pub start_in: Duration,
    pub edge: String,
    /// Where the operator's routes are (the sale is created there): the edge unless given
    /// (a CDN POP in front of the edges does not serve /admin/).
    pub admin: String,
    /// The backend(s) whose `/metrics` are read (a comma-separated list on a fleet).
    pub backend: String,
    /// The edge(s) whose `/metrics` are read: the edge unless given (a CDN POP in front of
    /// the edges does not serve /metrics; a fleet lists each edge).
    pub edge_metrics: String,
    pub secrets: PathBuf,
    pub redis_url: String,
    pub mysql_url: String,
    pub report: Option<PathBuf>,
    /// Every buy and its answer (or its lack of one), a JSON line each (the partition checker).
    pub history: Option<PathBuf>,
    pub quiet: bool,
    /// The sale's waiting room: None (a race at the start), "fifo", "random", or "default"
    /// (the server's default for a new sale: the field is left out, the crowd plays what the
    /// sale got).
    pub queue: Option<String>,
    /// Queue runs: shoppers arrive (join) spread over this long before the start.
    pub arrive_before: Duration,
    /// Queue runs: share of shoppers who are bots (poll and retry 10x faster).
    pub bots: f64,
    /// An evening: this many sales are created (each of `stock` units) and the shoppers
    /// spread over them (1: the one sale of a plain run).
    pub sales: usize,
    /// An evening on sales that exist already (their ids; `--sales` is then their count).
    pub sale_ids: Vec<u64>,
    /// The popularity of the evening's sales: shopper picks the sale of rank k with a
    /// probability proportional to 1 / k^zipf (0: uniform; 1: a few hot sales, a long tail).
    pub zipf: f64,
    /// Every shopper does what the sale page does (`opening.rs`): signs in, solves the proof
    /// of work, fetches its own picture through the edge, reads it in a person's (or a bot's)
    /// time, answers, and only then buys. Without it, captcha answers are minted.
    pub real_captcha: bool,
    /// People (`people.rs`): reading time lognormal with this median (ms) and σ; the share
    /// of right readings; the median reaction after zero (ms) of one who was ready.
    pub read_median_ms: f64,
    pub read_sigma: f64,
    pub human_accuracy: f64,
    pub react_median_ms: f64,
    /// Bots: a picture read in this long, this share right.
    pub bot_read_ms: f64,
    pub bot_accuracy: f64,
}

pub const USAGE: &str = "usage: crowd --users N --stock S [--concurrency C] [--rate R] [--duration SECS]
             [--per-user-limit L] [--retry FRACTION] [--cheaters FRACTION] [--start-in MS]
             [--edge URL] [--admin URL] [--backend URL[,URL...]] [--edge-metrics URL[,URL...]] [--var DIR | --secrets DIR --redis-url URL --mysql-url URL]
             [--report FILE] [--history FILE] [--quiet]
             [--queue fifo|random|none|default [--arrive-before SECS] [--bots FRACTION]]
             [--sales N | --sale-ids ID,ID,...|FIRST-LAST] [--zipf S]
             [--real-captcha [--read-median-ms MS] [--read-sigma S] [--human-accuracy F]
               [--react-median-ms MS] [--bot-read-ms MS] [--bot-accuracy F]]
defaults: --users 5000 --stock 200 --per-user-limit 1 --concurrency 256 --rate 0 (closed loop)
  --duration 60 --retry 0.3 --cheaters 0.01 --start-in 3000 --arrive-before 5 --bots 0
  --queue none (a race) --sales 1 --zipf 1; --real-captcha: --read-median-ms 5000
  --read-sigma 0.45 --human-accuracy 0.92 --react-median-ms 600 --bot-read-ms 30
  --bot-accuracy 0.94. The stack's addresses: var/stack.env (scripts/up), else --edge
  http://127.0.0.1:8080 --backend http://127.0.0.1:8081 --secrets var/secrets.";

impl Args {
    pub fn parse(argv: &[String]) -> Result<Args, String> {
        let mut a = Args::default();
        let mut var: Option<PathBuf> = None;
        let mut given: Vec<&str> = Vec::new();
        let mut it = argv.iter();
        while let Some(flag) = it.next() {
            if flag == "--quiet" {
                a.quiet = true;
                continue;
            }
            if flag == "--real-captcha" {
                a.real_captcha = true;
                continue;
            }
            if flag == "--help" || flag == "-h" {
                return Err(USAGE.into());
            }
            let value = it
                .next()
                .ok_or_else(|| format!("{flag}: needs a value\n{USAGE}"))?;
            if flag == "--var" {
                var = Some(PathBuf::from(value));
            } else {
                a.set(flag, value)?;
                given.push(flag);
            }
        }
        a.check()?;
        let var = var
            .or_else(|| std::env::var_os("SECKILL_VAR").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("var"));
        a.follow_the_stack(&var, &given)?;
        if a.admin.is_empty() {
            a.admin = a.edge.clone();
        }
        if a.edge_metrics.is_empty() {
            a.edge_metrics = a.edge.clone();
        }
        if a.report.is_none() {
            a.report = Some(var.join("crowd"));
        }
        Ok(a)
    }

    /// One option and its value.
    fn set(&mut self, flag: &str, value: &str) -> Result<(), String> {
        let a = self;
        let num = |what: &str| -> Result<f64, String> {
            value
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| format!("{flag}: expected {what}, got {value:?}"))
        };
        match flag {
            "--users" => a.users = num("a number of shoppers")? as usize,
            "--stock" => a.stock = num("a number of units")? as u32,
            "--per-user-limit" => a.per_user_limit = num("1..30")? as u32,
            "--concurrency" => a.concurrency = num("a number of requests in flight")? as usize,
            "--rate" => a.rate = num("shoppers per second")?,
            "--duration" => a.duration = Duration::from_secs_f64(num("seconds")?),
            "--retry" => a.retry = num("a fraction from 0 to 1")?.min(1.0),
            "--cheaters" => a.cheaters = num("a fraction from 0 to 1")?.min(1.0),
            "--start-in" => a.start_in = Duration::from_millis(num("milliseconds")? as u64),
            "--edge" => a.edge = value.trim_end_matches('/').to_string(),
            "--backend" => a.backend = value.to_string(),
            "--edge-metrics" => a.edge_metrics = value.to_string(),
            "--admin" => a.admin = value.trim_end_matches('/').to_string(),
            "--secrets" => a.secrets = PathBuf::from(value),
            "--redis-url" => a.redis_url = value.to_string(),
            "--mysql-url" => a.mysql_url = value.to_string(),
            "--report" => a.report = Some(PathBuf::from(value)),
            "--history" => a.history = Some(PathBuf::from(value)),
            "--queue" => match value {
                "fifo" | "random" | "default" => a.queue = Some(value.to_string()),
                "none" => a.queue = None,
                _ => {
                    return Err(format!(
                        "--queue: expected fifo, random, none or default, got {value:?}"
                    ))
                }
            },
            "--arrive-before" => a.arrive_before = Duration::from_secs_f64(num("seconds")?),
            "--bots" => a.bots = num("a fraction from 0 to 1")?.min(1.0),
            "--sales" => a.sales = num("a number of sales")? as usize,
            "--sale-ids" => a.sale_ids = sale_ids(value)?,
            "--zipf" => a.zipf = num("an exponent (0: uniform)")?,
            "--read-median-ms" => a.read_median_ms = num("milliseconds")?,
            "--read-sigma" => a.read_sigma = num("a lognormal sigma")?,
            "--human-accuracy" => a.human_accuracy = num("a fraction from 0 to 1")?.min(1.0),
            "--react-median-ms" => a.react_median_ms = num("milliseconds")?,
            "--bot-read-ms" => a.bot_read_ms = num("milliseconds")?,
            "--bot-accuracy" => a.bot_accuracy = num("a fraction from 0 to 1")?.min(1.0),
            other => return Err(format!("{other}: unknown option\n{USAGE}")),
        }
        Ok(())
    }

    /// The options together make sense.
    fn check(&mut self) -> Result<(), String> {
        if self.users == 0 || self.stock == 0 || self.concurrency == 0 || self.sales == 0 {
            return Err("--users, --stock, --concurrency and --sales must be at least 1".into());
        }
        if !self.sale_ids.is_empty() {
            self.sales = self.sale_ids.len();
        }
        if self.sales > 1 && self.queue.is_some() {
            return Err("--queue plays one sale: not with --sales or --sale-ids".into());
        }
        if self.sales > 1 && self.real_captcha {
            return Err("--real-captcha plays one sale: not with --sales or --sale-ids".into());
        }
        if !(1..=30).contains(&self.per_user_limit) {
            return Err(format!(
                "--per-user-limit: expected 1..30, got {}",
                self.per_user_limit
            ));
        }
        Ok(())
    }

    /// The stack's addresses, for each not given as a flag: the environment (`EDGE`,
    /// `BACKEND`, `REDIS_URL`, `MYSQL_URL`, `SECRETS`, as every scripts/* tool takes them),
    /// else the stack's file (`VAR/stack.env`, written by scripts/up), else the backend's
    /// (`VAR/seckill.env` of an older stack), else the defaults.
    fn follow_the_stack(&mut self, var: &std::path::Path, given: &[&str]) -> Result<(), String> {
        let stack = stack_file(var);
        for (flag, key) in STACK_FLAGS {
            if given.contains(&flag) {
                continue;
            }
            let v = std::env::var(key)
                .ok()
                .filter(|v| !v.is_empty())
                .or_else(|| stack.get(key).cloned());
            if let Some(v) = v {
                self.set(flag, &v)?;
            }
        }
        if self.redis_url.is_empty() || self.mysql_url.is_empty() {
            return Err(format!(
                "no stack at {} (run scripts/up first, or pass --redis-url and --mysql-url)",
                var.display()
            ));
        }
        Ok(())
    }
}

/// Each flag that names a part of the stack, and its key in `stack.env` and the environment.
const STACK_FLAGS: [(&str, &str); 5] = [
    ("--edge", "EDGE"),
    ("--backend", "BACKEND"),
    ("--redis-url", "REDIS_URL"),
    ("--mysql-url", "MYSQL_URL"),
    ("--secrets", "SECRETS"),
];

/// `VAR/stack.env`'s keys, with the backend's own file (`VAR/seckill.env`) filling the
/// Redis, MariaDB and secrets keys an older stack's lacks. Empty when neither exists.
fn stack_file(var: &std::path::Path) -> std::collections::HashMap<String, String> {
    let read = |name: &str| std::fs::read_to_string(var.join(name)).unwrap_or_default();
    let mut keys = std::collections::HashMap::new();
    for line in read("seckill.env").lines() {
        if let Some((k, v)) = line.split_once('=') {
            let key = match k.trim() {
                "SECKILL_REDIS_URL" | "SECKILL_REDIS_CLUSTER" => "REDIS_URL",
                "SECKILL_MYSQL_URL" => "MYSQL_URL",
                "SECKILL_SECRETS_DIR" => "SECRETS",
                _ => continue,
            };
            keys.insert(key.to_string(), v.trim().to_string());
        }
    }
    for line in read("stack.env").lines() {
        if let Some((k, v)) = line.split_once('=') {
            if !v.trim().is_empty() {
                keys.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
    }
    keys
}

impl Default for Args {
    fn default() -> Args {
        Args {
            users: 5000,
            stock: 200,
            per_user_limit: 1,
            concurrency: 256,
            rate: 0.0,
            duration: Duration::from_secs(60),
            retry: 0.3,
            cheaters: 0.01,
            start_in: Duration::from_millis(3000),
            edge: "http://127.0.0.1:8080".into(),
            admin: String::new(),
            backend: "http://127.0.0.1:8081".into(),
            edge_metrics: String::new(),
            secrets: PathBuf::from("var/secrets"),
            redis_url: String::new(),
            mysql_url: String::new(),
            report: None,
            history: None,
            quiet: false,
            queue: None,
            arrive_before: Duration::from_secs(5),
            bots: 0.0,
            sales: 1,
            sale_ids: Vec::new(),
            zipf: 1.0,
            real_captcha: false,
            read_median_ms: 5000.0,
            read_sigma: 0.45,
            human_accuracy: 0.92,
            react_median_ms: 600.0,
            bot_read_ms: 30.0,
            bot_accuracy: 0.94,
        }
    }
}

/// `1,2,3` or `FIRST-LAST` (inclusive), or both mixed: `1-100,250`.
fn sale_ids(text: &str) -> Result<Vec<u64>, String> {
    let bad = || format!("--sale-ids: expected ID,ID,... or FIRST-LAST, got {text:?}");
    let mut ids = Vec::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u64, u64) =
                    (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                if a == 0 || b < a || b - a > 1_000_000 {
                    return Err(bad());
                }
                ids.extend(a..=b);
            }
            None => ids.push(part.parse().ok().filter(|n| *n > 0).ok_or_else(bad)?),
        }
    }
    if ids.is_empty() {
        return Err(bad());
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Args, String> {
        let mut v: Vec<String> = s.split_whitespace().map(String::from).collect();
        v.extend(["--redis-url", "redis://x", "--mysql-url", "mysql://y"].map(String::from));
        Args::parse(&v)
    }

    #[test]
    fn reads_the_contract_options() {
        let a = args("--users 100000 --stock 1000 --concurrency 512 --rate 20000").unwrap();
        assert_eq!(
            (a.users, a.stock, a.concurrency, a.rate),
            (100_000, 1000, 512, 20_000.0)
        );
        let a = args("--queue random --arrive-before 8 --bots 0.1").unwrap();
        assert_eq!(a.queue.as_deref(), Some("random"));
        assert_eq!((a.arrive_before.as_secs(), a.bots), (8, 0.1));
        assert!(args("--queue lottery").unwrap_err().starts_with("--queue"));
        let a = args("--real-captcha --bots 0.1 --bot-read-ms 20 --read-median-ms 4000").unwrap();
        assert!(a.real_captcha);
        assert_eq!(
            (a.bot_read_ms, a.read_median_ms, a.bot_accuracy),
            (20.0, 4000.0, 0.94)
        );
        assert!(args("--real-captcha --sales 3").is_err());
    }

    #[test]
    fn bad_options_name_themselves() {
        assert!(args("--users lots").unwrap_err().starts_with("--users"));
        assert!(args("--stock").unwrap_err().starts_with("--stock"));
        assert!(args("--frobnicate 1")
            .unwrap_err()
            .starts_with("--frobnicate"));
        assert!(args("--stock 0").is_err());
        assert!(args("--sale-ids 5-2")
            .unwrap_err()
            .starts_with("--sale-ids"));
        assert!(args("--sales 3 --queue fifo").is_err());
    }

    #[test]
    fn an_evening_is_many_sales() {
        let a = args("--sales 10000 --users 200000 --zipf 1.2").unwrap();
        assert_eq!((a.sales, a.zipf), (10_000, 1.2));
        let a = args("--sale-ids 3-5,9").unwrap();
        assert_eq!((a.sale_ids.clone(), a.sales), (vec![3, 4, 5, 9], 4));
    }
}
