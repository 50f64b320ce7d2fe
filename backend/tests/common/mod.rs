//! Test harness: a real backend (HTTP server + writer) on 127.0.0.1:0 against the real Redis
//! and MariaDB that `scripts/test` started. Nothing here is a stand-in for either.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use mysql_async::prelude::Queryable;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use seckill::app::App;
use seckill::config::Config;

pub mod world;

pub const ADMIN: &str = "test-admin-token-0123456789";
pub const PAY_KEY: &str = "test-pay-key-0123456789";
pub const SESSION_KEY: &[u8] = b"test-session-key-0123456789";
pub const LINK_KEY: &[u8] = b"test-link-key-0123456789";

/// The user id inside a session token issued by a test backend.
pub fn user_of(token: &str) -> u64 {
    seckill::tokens::session::verify(SESSION_KEY, token, 0)
        .expect("a token the test backend issued")
}

/// `/api/sales/{sale}/buy/{sig}` signed now for the token's user (window 60 s, as configured).
pub fn signed_path(sale: u64, token: &str) -> String {
    let now_s = seckill::clock::now_ms() / 1000;
    let sig = seckill::tokens::link::sign(LINK_KEY, user_of(token), sale, now_s, 60);
    format!("/api/sales/{sale}/buy/{sig}")
}

/// The servers `scripts/test` started; a test run without them fails, it never skips.
pub fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| {
        panic!("{key} is not set: run the integration tests through scripts/test, which starts Redis and MariaDB")
    })
}

pub enum Target {
    Single,
    Cluster,
}

/// A backend running in this process, and a client for its HTTP API.
pub struct Backend {
    pub app: Arc<App>,
    pub api: Api,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// An HTTP client for one backend (in this process or another).
pub struct Api {
    pub base: String,
    pub client: Client<HttpConnector, Full<Bytes>>,
}

impl std::ops::Deref for Backend {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

pub fn config(target: &Target, extra: &[(&str, &str)]) -> Config {
    let mut pairs: Vec<(String, String)> = vec![
        ("SECKILL_LISTEN".into(), "127.0.0.1:0".into()),
        ("SECKILL_MYSQL_URL".into(), env("SECKILL_TEST_MYSQL_URL")),
        // A debug build draws ~70 captchas a second: a small pool keeps the tests' CPU for them.
        ("SECKILL_CAPTCHA_POOL".into(), "16".into()),
        (
            "SECKILL_SESSION_KEY".into(),
            "test-session-key-0123456789".into(),
        ),
        ("SECKILL_LINK_KEY".into(), "test-link-key-0123456789".into()),
        ("SECKILL_ADMIN_TOKEN".into(), ADMIN.into()),
        (
            "SECKILL_CAPTCHA_KEY".into(),
            "test-captcha-key-0123456789".into(),
        ),
        ("SECKILL_PAY_KEY".into(), PAY_KEY.into()),
        ("SECKILL_WRITER_CLAIM_IDLE_MS".into(), "1000".into()),
        ("SECKILL_REDIS_TIMEOUT_MS".into(), "2000".into()),
    ];
    match target {
        Target::Single => pairs.push(("SECKILL_REDIS_URL".into(), env("SECKILL_TEST_REDIS_URL"))),
        Target::Cluster => pairs.push((
            "SECKILL_REDIS_CLUSTER".into(),
            env("SECKILL_TEST_REDIS_CLUSTER"),
        )),
    }
    for (k, v) in extra {
        pairs.push((k.to_string(), v.to_string()));
    }
    Config::from_lookup(|k| {
        pairs
            .iter()
            .rev()
            .find(|(pk, _)| pk == k)
            .map(|(_, v)| v.clone())
    })
    .expect("the test configuration is valid")
}

impl Api {
    pub fn new(base: String) -> Api {
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(512)
            .build_http();
        Api { base, client }
    }

    /// Sends a request; returns the status and the JSON body (Null when not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<String>,
    ) -> (StatusCode, Value) {
        self.try_call(method, path, bearer, body)
            .await
            .expect("the backend answers")
    }

    /// Like [`Api::call`], but a backend that is gone (or silent for 10 s) is an `Err`.
    pub async fn try_call(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<String>,
    ) -> Result<(StatusCode, Value), String> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        if let Some(t) = bearer {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .unwrap();
        let answer = async {
            let resp = self.client.request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok((
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            ))
        };
        tokio::time::timeout(Duration::from_secs(10), answer)
            .await
            .map_err(|_| "no answer within 10 s".to_string())?
    }

    /// A GET whose body is text (`/metrics`).
    pub async fn get_text(&self, path: &str) -> String {
        let resp = self
            .client
            .get(format!("{}{}", self.base, path).parse().unwrap())
            .await
            .expect("the backend answers");
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Creates a sale that started a second ago and runs for ten minutes.
    pub async fn create_sale(&self, stock: u32, per_user_limit: u32) -> u64 {
        self.create_sale_starting(stock, per_user_limit, -1000)
            .await
    }

    /// Creates a sale starting `starts_in_ms` from now (negative: already started) that ends
    /// ten minutes after its start.
    pub async fn create_sale_starting(
        &self,
        stock: u32,
        per_user_limit: u32,
        starts_in_ms: i64,
    ) -> u64 {
        let starts = seckill::clock::now_ms() + starts_in_ms;
        self.create_sale_from(
            json!({"title": "Test phone", "price_cents": 9900, "stock": stock,
            "starts_at": starts, "ends_at": starts + 600_000, "per_user_limit": per_user_limit,
                   "queue": "none"}),
        )
        .await
    }

    /// `POST /admin/sales` with this body; the new sale's id.
    pub async fn create_sale_from(&self, body: Value) -> u64 {
        let (status, v) = self
            .call(
                Method::POST,
                "/admin/sales",
                Some(ADMIN),
                Some(body.to_string()),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v["id"].as_u64().unwrap()
    }

    pub async fn login(&self, name: &str) -> String {
        let (status, v) = self
            .call(
                Method::POST,
                "/api/login",
                None,
                Some(json!({"user": name}).to_string()),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v["token"].as_str().unwrap().to_string()
    }

    /// The signed purchase path for this shopper, as the edge hands it out after a correct
    /// captcha (the backend has no route that signs one: tests sign with the test key).
    pub async fn path(&self, sale: u64, token: &str) -> String {
        signed_path(sale, token)
    }

    pub async fn buy(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), None).await
    }

    /// Buys as a shopper does: a `503` (overloaded, dependency slow) means "outcome unknown,
    /// try again", so it retries those, with a pause, until a final answer. Also says whether
    /// a 503 came first (then a `409` means an earlier try did reserve).
    pub async fn buy_until_answered(&self, path: &str, token: &str) -> (StatusCode, Value, bool) {
        for i in 0..50 {
            let (status, v) = self.buy(path, token).await;
            if status != StatusCode::SERVICE_UNAVAILABLE {
                return (status, v, i > 0);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("still 503 after 50 tries");
    }
}

impl Backend {
    pub async fn start(target: Target, extra: &[(&str, &str)]) -> Backend {
        let cfg = config(&target, extra);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = App::connect(cfg)
            .await
            .expect("connects to the test Redis and MariaDB");
        let (tx, rx) = oneshot::channel::<()>();
        let run_app = app.clone();
        let task = tokio::spawn(async move {
            seckill::service::run(run_app, listener, async {
                let _ = rx.await;
            })
            .await
            .expect("the backend runs");
        });
        Backend {
            app,
            api: Api::new(base),
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(20), t).await;
        }
    }

    pub async fn sql_count(&self, sql: &str) -> i64 {
        let mut c = self.app.db.get_conn().await.unwrap();
        c.query_first::<i64, _>(sql).await.unwrap().unwrap_or(0)
    }

    /// Orders of the sale in MariaDB.
    pub async fn order_count(&self, sale: u64) -> i64 {
        self.sql_count(&format!(
            "SELECT COUNT(*) FROM orders WHERE sale_id = {sale}"
        ))
        .await
    }

    /// Entries of the sale's stream read by a writer and not yet acknowledged.
    pub async fn pending(&self, sale: u64) -> redis::Value {
        let stream = format!("{{sale:{sale}}}:orders");
        let summary: Vec<redis::Value> = self
            .app
            .redis
            .cmd(redis::cmd("XPENDING").arg(stream).arg("writers").clone())
            .await
            .unwrap();
        summary[0].clone()
    }

    /// Waits until the writer has put `n` orders of the sale into MariaDB (or 30 s pass).
    pub async fn wait_orders(&self, sale: u64, n: i64) -> i64 {
        let mut got = 0;
        for _ in 0..300 {
            got = self.order_count(sale).await;
            if got >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        got
    }

    pub async fn redis_int(&self, cmd: redis::Cmd) -> Option<i64> {
        self.app.redis.cmd(cmd).await.unwrap()
    }

    /// Units left in Redis for a sale.
    pub async fn stock_left(&self, sale: u64) -> Option<i64> {
        seckill::buy::stock::stock_left(&self.app.redis, sale)
            .await
            .unwrap()
    }

    /// The reconciler's view of a sale now.
    pub async fn check(&self, sale: u64) -> seckill::lifecycle::reconcile::SaleCheck {
        let s = seckill::buy::sale_rows::load(&self.app.db, sale)
            .await
            .unwrap()
            .expect("the sale exists");
        seckill::lifecycle::reconcile::check(&self.app.redis, &self.app.db, &s)
            .await
            .unwrap()
    }
}
