//! Building responses and reading request bodies, with every failure a JSON 4xx.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use serde_json::Value;

use crate::error::ApiError;

pub type Resp = Response<Full<Bytes>>;

pub fn json(status: StatusCode, body: &Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
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
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if e.status() == StatusCode::SERVICE_UNAVAILABLE {
        h.insert("retry-after", HeaderValue::from_static("1"));
    }
    r
}

/// Reads a JSON body of at most `max` bytes. The content type is not checked: the body must
/// be JSON whatever the client called it (plain `curl -d` says form-urlencoded).
pub async fn read_json(req: Request<Incoming>, max: usize) -> Result<Value, ApiError> {
    let bytes = read_body(req, max).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad("bad_json", format!("body: invalid JSON: {e}")))
}

/// Reads a non-empty body of at most `max` bytes, as sent (signatures are over these bytes).
pub async fn read_body(req: Request<Incoming>, max: usize) -> Result<bytes::Bytes, ApiError> {
    let too_large = || {
        ApiError::BadRequest(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("body: larger than {max} bytes"),
        )
    };
    if let Some(len) = req.headers().get(CONTENT_LENGTH) {
        let len: usize = len
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ApiError::bad("bad_header", "content-length: not a number"))?;
        if len > max {
            return Err(too_large());
        }
    }
    let bytes = match Limited::new(req.into_body(), max).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Err(e) => {
            return Err(ApiError::bad(
                "bad_body",
                format!("body: could not be read: {e}"),
            ))
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad(
            "missing_body",
            "body: required (a JSON object)",
        ));
    }
    Ok(bytes)
}
