//! Failures. [`ApiError`] is the request path's: the one place that turns a failure into an
//! HTTP status and a JSON body. [`TaskError`] is the background duties' (recovery, sweeper,
//! reconciler): which dependency failed, logged once where the task handles it.
//! [`StartError`] is why the backend could not start (printed by `main`, exit status 1).
//!
//! Every answer that is not a success is `{"error": "<code>", "message": "<what was wrong>"}`.
//! `error` is a short stable code tools branch on; `message` names the bad input. Shopper
//! mistakes are 4xx; a dependency that is slow or down is a fast 503; nothing is a panic.

use hyper::StatusCode;

#[derive(Debug, Clone)]
pub enum ApiError {
    /// The request itself is wrong (400/404/411/413/415/422).
    BadRequest(StatusCode, &'static str, String),
    /// A known path asked with a method it does not have (405, with an `Allow` header).
    MethodNotAllowed {
        method: String,
        allowed: String,
    },
    /// Missing or invalid credentials, forged link (401/403).
    Forbidden(StatusCode, &'static str, String),
    /// The shopper already holds as many orders as the sale allows.
    AlreadyBought,
    SoldOut,
    NotStarted,
    Ended,
    /// The operator paused the sale (503: it may resume).
    Paused,
    /// In-flight cap reached: shed at once.
    Overloaded,
    /// MariaDB failed or timed out (the breaker in front of it counts these).
    Database(String),
    /// Redis or another dependency failed or timed out.
    Unavailable(&'static str, String),
}

impl ApiError {
    pub fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::BadRequest(StatusCode::BAD_REQUEST, code, message.into())
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::BadRequest(StatusCode::UNPROCESSABLE_ENTITY, code, message.into())
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::BadRequest(StatusCode::NOT_FOUND, "not_found", message.into())
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::Forbidden(StatusCode::UNAUTHORIZED, "unauthorized", message.into())
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Forbidden(StatusCode::FORBIDDEN, code, message.into())
    }

    pub fn redis(err: impl std::fmt::Display) -> ApiError {
        ApiError::Unavailable("redis_unavailable", format!("redis: {err}"))
    }

    pub fn mysql(err: impl std::fmt::Display) -> ApiError {
        ApiError::Database(format!("database: {err}"))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(s, ..) | ApiError::Forbidden(s, ..) => *s,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            // Paused: the sale's state refuses it for now (a conflict, not a failure of ours;
            // it may resume).
            ApiError::AlreadyBought | ApiError::Paused => StatusCode::CONFLICT,
            ApiError::SoldOut | ApiError::Ended => StatusCode::GONE,
            ApiError::NotStarted => StatusCode::TOO_EARLY,
            ApiError::Overloaded | ApiError::Database(_) | ApiError::Unavailable(..) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_, c, _) | ApiError::Forbidden(_, c, _) => c,
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::AlreadyBought => "already_bought",
            ApiError::SoldOut => "sold_out",
            ApiError::NotStarted => "not_started",
            ApiError::Ended => "ended",
            ApiError::Paused => "paused",
            ApiError::Overloaded => "overloaded",
            ApiError::Database(_) => "database_unavailable",
            ApiError::Unavailable(c, _) => c,
        }
    }

    pub fn message(&self) -> String {
        match self {
            ApiError::BadRequest(_, _, m) | ApiError::Forbidden(_, _, m) => m.clone(),
            ApiError::MethodNotAllowed { method, allowed } => {
                format!("{method} is not allowed on this path (use {allowed})")
            }
            ApiError::AlreadyBought => "you already hold an order for this sale".into(),
            ApiError::SoldOut => "sold out".into(),
            ApiError::NotStarted => "the sale has not started yet".into(),
            ApiError::Ended => "the sale has ended".into(),
            ApiError::Paused => "the sale is paused by the operator; it may resume soon".into(),
            ApiError::Overloaded => "too many requests in flight, try again".into(),
            // Dependency details go to the log, not to shoppers.
            ApiError::Database(_) | ApiError::Unavailable(..) => {
                "temporarily unavailable, try again".into()
            }
        }
    }

    /// `{"error", "message"}`; for a refused field also `"field"` (and `"index"`, when the
    /// body was a list), read from the message, which always names the field first
    /// (`"stock: ..."`, `"[3].stock: ..."`): a form can show the error next to its field.
    pub fn body(&self) -> String {
        let mut body = serde_json::json!({"error": self.code(), "message": self.message()});
        if let ApiError::BadRequest(_, _, m) = self {
            if let Some((index, field)) = field_of(m) {
                body["field"] = field.into();
                if let Some(i) = index {
                    body["index"] = i.into();
                }
            }
        }
        body.to_string()
    }
}

/// The field a message names first: `name: ...` or `[i].name: ...`.
fn field_of(message: &str) -> Option<(Option<usize>, &str)> {
    let (head, _) = message.split_once(": ")?;
    let (index, name) = match head.strip_prefix('[') {
        Some(rest) => {
            let (i, name) = rest.split_once("].")?;
            (Some(i.parse().ok()?), name)
        }
        None => (None, head),
    };
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    plain.then_some((index, name))
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Unavailable(c, detail) => write!(f, "{c}: {detail}"),
            ApiError::Database(detail) => write!(f, "database_unavailable: {detail}"),
            other => write!(f, "{}: {}", other.code(), other.message()),
        }
    }
}

/// Why the backend could not start: each names the setting or the dependency.
#[derive(Debug)]
pub enum StartError {
    /// A setting is missing or wrong (the message names its key and value).
    Config(crate::config::ConfigError),
    /// An address or socket could not be bound.
    Listen(String, std::io::Error),
    Redis(redis::RedisError),
    /// MariaDB: a bad URL, no connection, or a migration that failed.
    Database(String),
    /// The captcha pool's directory cannot be made or read.
    Captchas(std::path::PathBuf, std::io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Config(e) => write!(f, "config: {e}"),
            StartError::Listen(what, e) => write!(f, "cannot listen on {what}: {e}"),
            StartError::Redis(e) => write!(f, "redis: {e}"),
            StartError::Database(e) => write!(f, "database: {e}"),
            StartError::Captchas(dir, e) => {
                write!(f, "the captcha pool at {}: {e}", dir.display())
            }
        }
    }
}

impl std::error::Error for StartError {}

/// A background duty's failure: the dependency that failed, and how.
#[derive(Debug)]
pub enum TaskError {
    Redis(crate::store::redis_conn::CallError),
    Database(mysql_async::Error),
}

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TaskError::Redis(e) => write!(f, "redis: {e}"),
            TaskError::Database(e) => write!(f, "database: {e}"),
        }
    }
}

impl std::error::Error for TaskError {}

impl From<crate::store::redis_conn::CallError> for TaskError {
    fn from(e: crate::store::redis_conn::CallError) -> Self {
        TaskError::Redis(e)
    }
}

impl From<mysql_async::Error> for TaskError {
    fn from(e: mysql_async::Error) -> Self {
        TaskError::Database(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_field_is_named_in_the_body() {
        let e = ApiError::unprocessable("bad_field", "stock: expected an integer");
        let v: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(v["field"], "stock");
        assert!(v.get("index").is_none());
        let e = ApiError::unprocessable("bad_field", "[12].starts_at: is in the past");
        let v: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(
            (v["field"].as_str(), v["index"].as_u64()),
            (Some("starts_at"), Some(12))
        );
        let e = ApiError::not_found("no such endpoint: the path is not canonical");
        let v: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert!(v.get("field").is_none());
    }
}
