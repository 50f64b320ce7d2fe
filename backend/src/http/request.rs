//! Reading a request: who the shopper is (session token), the admin token, and bounded bodies.
//! Every failure is an [`ApiError`] (a JSON 4xx naming what was wrong).

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, COOKIE};
use hyper::{Request, StatusCode};
use serde_json::Value;

use crate::app::App;
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::tokens::session;

/// The cookie the pages use; tools send `Authorization: Bearer <token>` instead.
pub const SESSION_COOKIE: &str = "sk_session";

/// The shopper's user id from `Authorization: Bearer` or the session cookie.
pub fn user_of(app: &App, req: &Request<Incoming>) -> Result<u64, ApiError> {
    let token = bearer(req).or_else(|| cookie(req, SESSION_COOKIE));
    let token = token.ok_or_else(|| ApiError::unauthorized("session: missing (log in first)"))?;
    session::verify(&app.cfg.secrets.session_key, token, now_ms() / 1000)
        .map_err(|e| ApiError::forbidden("bad_session", format!("session: {}", e.as_str())))
}

/// Refuses the request unless it carries the operator's bearer token.
pub fn require_admin(app: &App, req: &Request<Incoming>) -> Result<(), ApiError> {
    let given = bearer(req).ok_or_else(|| ApiError::unauthorized("admin token: missing"))?;
    if !crate::tokens::crypto::constant_time_eq(
        given.as_bytes(),
        app.cfg.secrets.admin_token.as_bytes(),
    ) {
        return Err(ApiError::forbidden("bad_admin_token", "admin token: wrong"));
    }
    Ok(())
}

fn bearer(req: &Request<Incoming>) -> Option<&str> {
    req.headers()
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn cookie<'r>(req: &'r Request<Incoming>, name: &str) -> Option<&'r str> {
    req.headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then_some(v)
        })
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
