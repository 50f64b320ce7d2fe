//! Reading fields out of a request's JSON object, each failure naming the field and the
//! problem (`"stock: expected an integer from 1 to 1000000, got -5"`).

use serde_json::{Map, Value};

use crate::error::ApiError;

pub struct Fields<'a> {
    obj: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    /// The body must be a JSON object whose keys are all in `allowed`.
    pub fn new(body: &'a Value, allowed: &[&str]) -> Result<Fields<'a>, ApiError> {
        let obj = body
            .as_object()
            .ok_or_else(|| ApiError::bad("bad_json", "body: expected a JSON object"))?;
        if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(ApiError::bad(
                "unknown_field",
                format!(
                    "{k}: unknown field (expected one of: {})",
                    allowed.join(", ")
                ),
            ));
        }
        Ok(Fields { obj })
    }

    /// Whether the field was given (and not null).
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        self.obj.get(name).filter(|v| !v.is_null())
    }

    fn missing(name: &str) -> ApiError {
        ApiError::bad("missing_field", format!("{name}: required"))
    }

    pub fn string(&self, name: &str, min: usize, max: usize) -> Result<String, ApiError> {
        let v = self.get(name).ok_or_else(|| Self::missing(name))?;
        let s = v.as_str().ok_or_else(|| {
            ApiError::bad(
                "bad_field",
                format!("{name}: expected a string, got {}", kind(v)),
            )
        })?;
        let len = s.chars().count();
        if len < min || len > max || s.trim().len() != s.len() {
            return Err(ApiError::unprocessable(
                "bad_field",
                format!("{name}: expected {min} to {max} characters without surrounding spaces"),
            ));
        }
        // NUL, line breaks, escapes and the like have no place in any field we keep or show.
        if let Some(c) = s.chars().find(|c| c.is_control()) {
            return Err(ApiError::unprocessable(
                "bad_field",
                format!(
                    "{name}: control characters are not allowed (found U+{:04X})",
                    c as u32
                ),
            ));
        }
        Ok(s.to_string())
    }

    /// An optional text of at most `max` characters: line breaks allowed, no other control
    /// characters; None when absent or empty.
    pub fn text(&self, name: &str, max: usize) -> Result<Option<String>, ApiError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        let s = v.as_str().ok_or_else(|| {
            ApiError::bad(
                "bad_field",
                format!("{name}: expected a string, got {}", kind(v)),
            )
        })?;
        if s.chars().count() > max {
            return Err(ApiError::unprocessable(
                "bad_field",
                format!("{name}: expected at most {max} characters"),
            ));
        }
        if let Some(c) = s.chars().find(|c| c.is_control() && *c != '\n') {
            return Err(ApiError::unprocessable(
                "bad_field",
                format!(
                    "{name}: control characters other than line breaks are not allowed (found U+{:04X})",
                    c as u32
                ),
            ));
        }
        let s = s.trim();
        Ok((!s.is_empty()).then(|| s.to_string()))
    }

    /// An integer in `min..=max`; `default` when absent.
    pub fn int(
        &self,
        name: &str,
        min: i64,
        max: i64,
        default: Option<i64>,
    ) -> Result<i64, ApiError> {
        let Some(v) = self.get(name) else {
            return default.ok_or_else(|| Self::missing(name));
        };
        let n = v.as_i64().ok_or_else(|| {
            ApiError::bad(
                "bad_field",
                format!("{name}: expected an integer, got {}", show(v)),
            )
        })?;
        if n < min || n > max {
            return Err(ApiError::unprocessable(
                "bad_field",
                format!("{name}: expected an integer from {min} to {max}, got {n}"),
            ));
        }
        Ok(n)
    }

    /// A boolean, or None when absent.
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(ApiError::bad(
                "bad_field",
                format!("{name}: expected true or false, got {}", show(v)),
            )),
        }
    }

    /// One of `choices` (a string); `default` when absent.
    pub fn choice(
        &self,
        name: &str,
        choices: &[&str],
        default: Option<&str>,
    ) -> Result<String, ApiError> {
        let Some(v) = self.get(name) else {
            return default
                .map(str::to_string)
                .ok_or_else(|| Self::missing(name));
        };
        match v.as_str() {
            Some(s) if choices.contains(&s) => Ok(s.to_string()),
            _ => Err(ApiError::unprocessable(
                "bad_field",
                format!(
                    "{name}: expected one of {}, got {}",
                    choices.join(", "),
                    show(v)
                ),
            )),
        }
    }

    /// A time: an RFC 3339 string or epoch milliseconds.
    pub fn time_ms(&self, name: &str) -> Result<i64, ApiError> {
        let v = self.get(name).ok_or_else(|| Self::missing(name))?;
        let ms = match v {
            Value::String(s) => crate::clock::parse_rfc3339(s),
            Value::Number(n) => n
                .as_i64()
                .filter(|ms| (0..=253_402_300_799_999).contains(ms)),
            _ => None,
        };
        ms.ok_or_else(|| {
            ApiError::bad(
                "bad_field",
                format!(
                    "{name}: expected an RFC 3339 time or epoch milliseconds, got {}",
                    show(v)
                ),
            )
        })
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn show(v: &Value) -> String {
    let text = v.to_string();
    if text.len() > 40 {
        kind(v).to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_name_the_field() {
        let body = json!({"stock": -5, "title": 7, "starts_at": "soon"});
        let f = Fields::new(&body, &["stock", "title", "starts_at", "absent"]).unwrap();
        assert!(f
            .int("stock", 1, 10, None)
            .unwrap_err()
            .message()
            .starts_with("stock:"));
        assert!(f
            .string("title", 1, 9)
            .unwrap_err()
            .message()
            .starts_with("title:"));
        assert!(f
            .time_ms("starts_at")
            .unwrap_err()
            .message()
            .starts_with("starts_at:"));
        assert_eq!(
            f.int("absent", 1, 10, None).unwrap_err().message(),
            "absent: required"
        );
        assert_eq!(f.int("absent", 1, 10, Some(3)).unwrap(), 3);
    }

    #[test]
    fn unknown_fields_and_non_objects_are_refused() {
        let err = Fields::new(&json!({"stok": 1}), &["stock"]).err().unwrap();
        assert!(err.message().starts_with("stok: unknown field"));
        assert!(Fields::new(&json!([1]), &["stock"]).is_err());
    }
}
