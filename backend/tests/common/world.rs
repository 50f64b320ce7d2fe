//! A world of its own for fault tests: a Redis, a MariaDB and a backend *process*, each
//! started from the Debian binaries (through `scripts/lib.sh`, as `scripts/up` does) in a
//! directory of its own, so a test can `kill -9` any of them and start it again.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mysql_async::Pool;
use seckill::config::RedisTarget;
use seckill::store::redis_conn::Redis;

use super::{Api, ADMIN, PAY_KEY};

pub const SESSION_KEY: &str = "test-session-key-0123456789";
const MYSQL_PASS: &str = "faults-password";

pub struct World {
    pub dir: PathBuf,
    pub redis_port: u16,
    pub mysql_port: u16,
    pub backend_port: u16,
    /// Extra `redis-server` arguments (persistence settings).
    redis_args: Vec<String>,
    /// Extra backend environment.
    backend_env: Vec<(String, String)>,
    backend: Option<Child>,
    pub api: Api,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs a function of `scripts/lib.sh` with arguments.
pub fn lib(func: &str, args: &[&str]) {
    let status = Command::new("bash")
        .arg("-c")
        .arg(format!(
            ". '{}/scripts/lib.sh' && {func} \"$@\"",
            repo().display()
        ))
        .arg("lib")
        .args(args)
        .stdout(Stdio::null())
        .status()
        .expect("bash runs");
    assert!(status.success(), "scripts/lib.sh {func} {args:?} failed");
}

fn pid_in(file: &Path) -> Option<i32> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

fn kill9(pid_file: &Path) {
    let Some(pid) = pid_in(pid_file) else { return };
    let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl World {
    /// Starts Redis (with `redis_args`) and MariaDB; the backend is started by the test.
    pub fn new(name: &str, redis_args: &[&str], backend_env: &[(&str, &str)]) -> World {
        let dir = std::env::temp_dir().join(format!(
            "seckill-faults-{name}-{}-{}",
            std::process::id(),
            seckill::tokens::crypto::random_hex(3)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let backend_port = free_port();
        let w = World {
            redis_port: free_port(),
            mysql_port: free_port(),
            backend_port,
            redis_args: redis_args.iter().map(|s| s.to_string()).collect(),
            backend_env: backend_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            backend: None,
            api: Api::new(format!("http://127.0.0.1:{backend_port}")),
            dir,
        };
        w.start_redis();
        w.start_mariadb();
        w
    }

    fn redis_dir(&self) -> PathBuf {
        self.dir.join("redis")
    }

    fn mysql_dir(&self) -> PathBuf {
        self.dir.join("mariadb")
    }

    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.redis_port)
    }

    pub fn mysql_url(&self) -> String {
        format!(
            "mysql://seckill:{MYSQL_PASS}@127.0.0.1:{}/seckill",
            self.mysql_port
        )
    }

    pub fn start_redis(&self) {
        let dir = self.redis_dir();
        let port = self.redis_port.to_string();
        let mut args = vec![dir.to_str().unwrap(), port.as_str()];
        args.extend(self.redis_args.iter().map(String::as_str));
        lib("start_redis", &args);
    }

    pub fn kill_redis(&self) {
        kill9(&self.redis_dir().join("redis.pid"));
    }

    pub fn start_mariadb(&self) {
        let dir = self.mysql_dir();
        let port = self.mysql_port.to_string();
        lib(
            "start_mariadb",
            &[
                dir.to_str().unwrap(),
                &port,
                "seckill",
                "seckill",
                MYSQL_PASS,
            ],
        );
    }

    pub fn kill_mariadb(&self) {
        kill9(&self.mysql_dir().join("mariadb.pid"));
    }

    /// Freezes MariaDB (SIGSTOP): connections hang instead of failing.
    pub fn freeze_mariadb(&self) {
        self.signal_mariadb("-STOP");
    }

    pub fn thaw_mariadb(&self) {
        self.signal_mariadb("-CONT");
    }

    fn signal_mariadb(&self, sig: &str) {
        let pid = pid_in(&self.mysql_dir().join("mariadb.pid")).expect("mariadb runs");
        let ok = Command::new("kill")
            .arg(sig)
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(ok.success());
        // `kill` returns when the signal is sent, not when every thread has stopped: a
        // query already running may still be answered (seen on a busy machine). Frozen means
        // every thread is in state T.
        if sig == "-STOP" {
            let stopped = || {
                std::fs::read_dir(format!("/proc/{pid}/task"))
                    .map(|tasks| {
                        tasks.flatten().all(|t| {
                            std::fs::read_to_string(t.path().join("stat")).is_ok_and(|s| {
                                s.rsplit(')')
                                    .next()
                                    .is_some_and(|r| r.trim_start().starts_with('T'))
                            })
                        })
                    })
                    .unwrap_or(false)
            };
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while !stopped() {
                assert!(std::time::Instant::now() < deadline, "mariadb did not stop");
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    }

    /// Runs SQL as MariaDB's root (over the socket).
    pub fn root_sql(&self, sql: &str) {
        let out = Command::new("mariadb")
            .args(["--no-defaults", "-uroot", "-S"])
            .arg(self.mysql_dir().join("mariadb.sock"))
            .arg("seckill")
            .arg("-e")
            .arg(sql)
            .output()
            .expect("mariadb client runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the backend binary and waits until it answers `/healthz`.
    pub async fn start_backend(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("backend.log"))
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_seckill"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SECKILL_LISTEN", format!("127.0.0.1:{}", self.backend_port))
            .env("SECKILL_REDIS_URL", self.redis_url())
            .env("SECKILL_MYSQL_URL", self.mysql_url())
            .env("SECKILL_SESSION_KEY", SESSION_KEY)
            .env("SECKILL_LINK_KEY", "test-link-key-0123456789")
            .env("SECKILL_CAPTCHA_KEY", "test-captcha-key-0123456789")
            .env("SECKILL_PAY_KEY", PAY_KEY)
            .env("SECKILL_ADMIN_TOKEN", ADMIN)
            .env("SECKILL_WRITER_CLAIM_IDLE_MS", "1000")
            .env("SECKILL_REDIS_TIMEOUT_MS", "300")
            .env("SECKILL_MYSQL_TIMEOUT_MS", "2000")
            .env("SECKILL_SWEEP_INTERVAL_MS", "200")
            .env("SECKILL_RECONCILE_INTERVAL_MS", "500")
            .envs(self.backend_env.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.backend = Some(cmd.spawn().expect("the backend binary starts"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((s, _)) = self
                .api
                .try_call(hyper::Method::GET, "/healthz", None, None)
                .await
            {
                if s.is_success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the backend did not come up; see {}",
                self.dir.join("backend.log").display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `kill -9` of the backend process (its writer dies with it).
    pub fn kill_backend(&mut self) {
        if let Some(mut child) = self.backend.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Handles for checking what Redis and MariaDB hold.
    pub async fn inspect(&self) -> (Redis, Pool) {
        let redis = Redis::connect(
            &RedisTarget::Single(self.redis_url()),
            Duration::from_secs(2),
        )
        .await
        .expect("the test reaches its Redis");
        let db = seckill::store::db::pool(&self.mysql_url(), 4).unwrap();
        (redis, db)
    }

    pub fn backend_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("backend.log")).unwrap_or_default()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(pid) = pid_in(&self.mysql_dir().join("mariadb.pid")) {
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(pid.to_string())
                .status();
        }
        self.kill_backend();
        self.kill_redis();
        kill9(&self.mysql_dir().join("mariadb.pid"));
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
