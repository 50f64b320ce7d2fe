//! Building responses: JSON answers and the one JSON error shape. Every JSON answer says
//! `Cache-Control: no-store` and `X-Content-Type-Options: nosniff`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderMap, HeaderValue, CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use hyper::{Response, StatusCode};
use serde_json::Value;

use crate::error::ApiError;

pub type Resp = Response<Full<Bytes>>;

pub fn json(status: StatusCode, body: &Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    json_headers(r.headers_mut());
    r
}

/// A JSON answer any cache may keep for `max_age` seconds (a list everyone sees alike).
pub fn shared_json(body: &Value, max_age: u64) -> Resp {
    let mut r = json(StatusCode::OK, body);
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
        r.headers_mut().insert(CACHE_CONTROL, v);
    }
    r
}

fn json_headers(h: &mut HeaderMap) {
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
}

pub fn text(status: StatusCode, content_type: &'static str, body: String) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

pub fn error(e: &ApiError) -> Resp {
    if let ApiError::Unavailable(..) = e {
        eprintln!("seckill: {e}");
    }
    let mut r = Response::new(Full::new(Bytes::from(e.body())));
    *r.status_mut() = e.status();
    let h = r.headers_mut();
    json_headers(h);
    if e.status() == StatusCode::SERVICE_UNAVAILABLE {
        h.insert("retry-after", HeaderValue::from_static("1"));
    }
    if let ApiError::MethodNotAllowed { allowed, .. } = e {
        if let Ok(v) = HeaderValue::from_str(allowed) {
            h.insert(hyper::header::ALLOW, v);
        }
    }
    r
}
