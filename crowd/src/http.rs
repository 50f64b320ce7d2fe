//! A small HTTP/1.1 client over keep-alive connections; any failure is status 0.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    pub base: String,
}

impl Http {
    /// `from`: the local address to connect from (an untrusted one for spoofing cheaters).
    pub fn new(base: &str, pool: usize, from: Option<IpAddr>) -> Http {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_local_address(from);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(pool)
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Http {
            client,
            base: base.to_string(),
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, String)>,
    ) -> (u16, Bytes) {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body = match body {
            Some((ctype, b)) => {
                req = req.header("content-type", ctype);
                Bytes::from(b)
            }
            None => Bytes::new(),
        };
        let Ok(req) = req.body(Full::new(body)) else {
            return (0, Bytes::new());
        };
        let answer = async {
            let resp = self.client.request(req).await.ok()?;
            let status = resp.status().as_u16();
            let bytes = resp.into_body().collect().await.ok()?.to_bytes();
            Some((status, bytes))
        };
        match tokio::time::timeout(Duration::from_secs(30), answer).await {
            Ok(Some(r)) => r,
            _ => (0, Bytes::new()),
        }
    }

    pub async fn get_text(&self, path: &str) -> Option<String> {
        let (status, body) = self.send(Method::GET, path, &[], None).await;
        (status == 200).then(|| String::from_utf8_lossy(&body).into_owned())
    }
}
