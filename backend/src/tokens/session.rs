//! Stateless shopper sessions.
//!
//! Token format (the edge checks the very same bytes in Lua):
//!
//! ```text
//! <user_id>.<expires_s>.<hex HMAC-SHA256(session_key, "s1.<user_id>.<expires_s>")>
//! ```
//!
//! `user_id` is a decimal u64, `expires_s` epoch seconds. No server state: a token is valid
//! until it expires, and changing the key logs everyone out.

use crate::tokens::crypto;

#[derive(Debug, PartialEq, Eq)]
pub enum SessionError {
    Malformed,
    BadSignature,
    Expired,
}

impl SessionError {
    pub fn as_str(&self) -> &'static str {
        match self {
            SessionError::Malformed => "malformed session token",
            SessionError::BadSignature => "session token signature does not verify",
            SessionError::Expired => "session token expired",
        }
    }
}

fn message(user_id: u64, expires_s: i64) -> String {
    format!("s1.{user_id}.{expires_s}")
}

pub fn issue(key: &[u8], user_id: u64, expires_s: i64) -> String {
    let msg = message(user_id, expires_s);
    let sig = crypto::sign_hex(key, msg.as_bytes());
    format!("{user_id}.{expires_s}.{sig}")
}

/// Returns the user id of a valid token.
pub fn verify(key: &[u8], token: &str, now_s: i64) -> Result<u64, SessionError> {
    let mut parts = token.splitn(3, '.');
    let (Some(user), Some(exp), Some(sig)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(SessionError::Malformed);
    };
    let user_id: u64 = parse_digits(user).ok_or(SessionError::Malformed)?;
    let expires_s: i64 = parse_digits(exp).ok_or(SessionError::Malformed)?;
    if !crypto::verify_hex(key, message(user_id, expires_s).as_bytes(), sig) {
        return Err(SessionError::BadSignature);
    }
    if expires_s <= now_s {
        return Err(SessionError::Expired);
    }
    Ok(user_id)
}

/// Parses plain decimal digits only (no sign, no spaces), so one token has one spelling.
fn parse_digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if s.len() > 1 && s.starts_with('0') {
        return None;
    }
    s.parse().ok()
}

/// Maps a login name to a stable user id (the first 8 bytes of its HMAC under the session key).
/// This stands in for the platform's account system, which is out of scope here.
pub fn user_id_for(key: &[u8], name: &str) -> u64 {
    let sig = crypto::sign_hex(key, format!("u1.{name}").as_bytes());
    // 13 hex digits (52 bits): fits an i64 and a JavaScript number exactly.
    u64::from_str_radix(&sig[..13], 16).expect("hex digits parse") + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"session-key-for-tests";

    #[test]
    fn a_fresh_token_verifies_to_its_user() {
        let t = issue(KEY, 42, 2_000);
        assert_eq!(verify(KEY, &t, 1_000), Ok(42));
    }

    #[test]
    fn tampered_tokens_are_refused() {
        let t = issue(KEY, 42, 2_000);
        let other_user = t.replacen("42.", "43.", 1);
        assert_eq!(
            verify(KEY, &other_user, 1_000),
            Err(SessionError::BadSignature)
        );
        let later = t.replacen(".2000.", ".9000.", 1);
        assert_eq!(verify(KEY, &later, 1_000), Err(SessionError::BadSignature));
        let mut flipped = t.clone();
        let last = flipped.pop().unwrap();
        flipped.push(if last == '0' { '1' } else { '0' });
        assert_eq!(
            verify(KEY, &flipped, 1_000),
            Err(SessionError::BadSignature)
        );
    }

    #[test]
    fn expired_tokens_are_refused() {
        let t = issue(KEY, 42, 2_000);
        assert_eq!(verify(KEY, &t, 2_000), Err(SessionError::Expired));
    }

    #[test]
    fn another_secret_does_not_verify() {
        let t = issue(b"another-secret-entirely", 42, 2_000);
        assert_eq!(verify(KEY, &t, 1_000), Err(SessionError::BadSignature));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for t in [
            "",
            "42",
            "42.2000",
            "x.2000.ab",
            "42.-5.ab",
            "042.2000.ab",
            "+42.2000.ab",
        ] {
            assert_eq!(verify(KEY, t, 1_000), Err(SessionError::Malformed), "{t:?}");
        }
    }

    #[test]
    fn shared_vector_with_the_edge() {
        // edge/spec/tokens_spec.lua asserts the same token.
        assert_eq!(
            issue(b"test-session-key-0123456789", 42, 2_000_000_000),
            "42.2000000000.9e8e9805aed3a99b352af6fa9cb4ba0760712a22b1be18ee89983a570138be87"
        );
    }

    #[test]
    fn user_ids_are_stable_and_distinct() {
        assert_eq!(user_id_for(KEY, "alice"), user_id_for(KEY, "alice"));
        assert_ne!(user_id_for(KEY, "alice"), user_id_for(KEY, "bob"));
        assert!(user_id_for(KEY, "alice") < (1u64 << 53));
    }
}
