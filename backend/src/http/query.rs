//! Reading a query string (`?status=live&limit=50`): only known parameters, each at most once,
//! each failure a 400 naming the parameter.

use crate::error::ApiError;

pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// The parameters of `query` (None: no query string); any name not in `allowed` is
    /// refused.
    pub fn parse(query: Option<&str>, allowed: &[&str]) -> Result<Query, ApiError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for part in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let (k, v) = (decode(k)?, decode(v)?);
            if !allowed.contains(&k.as_str()) {
                return Err(ApiError::bad(
                    "unknown_parameter",
                    format!(
                        "{k}: unknown parameter (expected one of: {})",
                        allowed.join(", ")
                    ),
                ));
            }
            if pairs.iter().any(|(name, _)| *name == k) {
                return Err(ApiError::bad("bad_parameter", format!("{k}: given twice")));
            }
            pairs.push((k, v));
        }
        Ok(Query { pairs })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// An integer in `min..=max`, or `default` when absent.
    pub fn int(&self, name: &str, min: i64, max: i64, default: i64) -> Result<i64, ApiError> {
        let Some(v) = self.get(name) else {
            return Ok(default);
        };
        match v.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::bad(
                "bad_parameter",
                format!("{name}: expected an integer from {min} to {max}, got {v:?}"),
            )),
        }
    }

    /// One of `choices`, or None when absent.
    pub fn choice(
        &self,
        name: &str,
        choices: &[&'static str],
    ) -> Result<Option<&'static str>, ApiError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        choices
            .iter()
            .find(|c| **c == v)
            .copied()
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad(
                    "bad_parameter",
                    format!("{name}: expected one of {}, got {v:?}", choices.join(", ")),
                )
            })
    }

    /// A time (RFC 3339 or epoch ms), or None when absent.
    pub fn time_ms(&self, name: &str) -> Result<Option<i64>, ApiError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        let ms = crate::clock::parse_rfc3339(v).or_else(|| v.parse::<i64>().ok());
        ms.map(Some).ok_or_else(|| {
            ApiError::bad(
                "bad_parameter",
                format!("{name}: expected an RFC 3339 time or epoch milliseconds, got {v:?}"),
            )
        })
    }

    /// A text of at most `max` characters, or None when absent or empty.
    pub fn text(&self, name: &str, max: usize) -> Result<Option<String>, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(v) if v.chars().count() <= max && !v.chars().any(char::is_control) => {
                Ok(Some(v.to_string()))
            }
            Some(_) => Err(ApiError::bad(
                "bad_parameter",
                format!("{name}: expected at most {max} characters, no control characters"),
            )),
        }
    }
}

/// `%XX` and `+` decoded; malformed escapes or invalid UTF-8 are a 400.
fn decode(text: &str) -> Result<String, ApiError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| ApiError::bad("bad_parameter", "query: a malformed %-escape"))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ApiError::bad("bad_parameter", "query: not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_parameters_are_read_and_others_refused() {
        let q = Query::parse(Some("q=red+phone%21&limit=20"), &["q", "limit"]).unwrap();
        assert_eq!(q.get("q"), Some("red phone!"));
        assert_eq!(q.int("limit", 1, 100, 50).unwrap(), 20);
        assert_eq!(q.int("after", 0, 9, 3).unwrap(), 3);
        let e = Query::parse(Some("x=1"), &["q"]).err().unwrap();
        assert!(e.message().starts_with("x: unknown parameter"));
        assert!(Query::parse(Some("q=1&q=2"), &["q"]).is_err());
        assert!(Query::parse(Some("q=%zz"), &["q"]).is_err());
        let q = Query::parse(Some("limit=500"), &["limit"]).unwrap();
        assert!(q.int("limit", 1, 100, 50).is_err());
    }
}
