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
    /// The sale's waiting room: None (a race at the start), "fifo" or "random".
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
}

pub const USAGE: &str = "usage: crowd --users N --stock S [--concurrency C] [--rate R] [--duration SECS]
             [--per-user-limit L] [--retry FRACTION] [--cheaters FRACTION] [--start-in MS]
             [--edge URL] [--admin URL] [--backend URL[,URL...]] [--edge-metrics URL[,URL...]] [--var DIR | --secrets DIR --redis-url URL --mysql-url URL]
             [--report FILE] [--history FILE] [--quiet]
             [--queue fifo|random [--arrive-before SECS] [--bots FRACTION]]
             [--sales N | --sale-ids ID,ID,...|FIRST-LAST] [--zipf S]";

impl Args {
    pub fn parse(argv: &[String]) -> Result<Args, String> {
        let mut a = Args::default();
        let mut var: Option<PathBuf> = None;
        let mut it = argv.iter();
        while let Some(flag) = it.next() {
            if flag == "--quiet" {
                a.quiet = true;
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
            }
        }
        a.check()?;
        // scripts/up writes the stack's addresses to var/seckill.env.
        let var = var.unwrap_or_else(|| PathBuf::from("var"));
        if a.redis_url.is_empty() || a.mysql_url.is_empty() {
            a.read_stack_env(&var)?;
        }
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
                "fifo" | "random" => a.queue = Some(value.to_string()),
                "none" => a.queue = None,
                _ => {
                    return Err(format!(
                        "--queue: expected fifo, random or none, got {value:?}"
                    ))
                }
            },
            "--arrive-before" => a.arrive_before = Duration::from_secs_f64(num("seconds")?),
            "--bots" => a.bots = num("a fraction from 0 to 1")?.min(1.0),
            "--sales" => a.sales = num("a number of sales")? as usize,
            "--sale-ids" => a.sale_ids = sale_ids(value)?,
            "--zipf" => a.zipf = num("an exponent (0: uniform)")?,
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
        if !(1..=30).contains(&self.per_user_limit) {
            return Err(format!(
                "--per-user-limit: expected 1..30, got {}",
                self.per_user_limit
            ));
        }
        Ok(())
    }

    /// The Redis and MariaDB addresses and the secrets of the stack scripts/up started.
    fn read_stack_env(&mut self, var: &std::path::Path) -> Result<(), String> {
        let path = var.join("seckill.env");
        let env = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "{}: {e} (run scripts/up first, or pass --redis-url and --mysql-url)",
                path.display()
            )
        })?;
        for line in env.lines() {
            if let Some((k, v)) = line.split_once('=') {
                match k.trim() {
                    "SECKILL_REDIS_URL" | "SECKILL_REDIS_CLUSTER" if self.redis_url.is_empty() => {
                        self.redis_url = v.trim().into()
                    }
                    "SECKILL_MYSQL_URL" if self.mysql_url.is_empty() => {
                        self.mysql_url = v.trim().into()
                    }
                    "SECKILL_SECRETS_DIR" => self.secrets = PathBuf::from(v.trim()),
                    _ => {}
                }
            }
        }
        Ok(())
    }
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
