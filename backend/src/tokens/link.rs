//! The hidden, signed purchase link: `/api/sales/{sale}/buy/{sig}`.
//!
//! ```text
//! sig = hex HMAC-SHA256(link_key, "l1.<user_id>.<sale_id>.<window>")
//! window = floor(now_s / link_window_s)
//! ```
//!
//! A link is bound to one user and one sale, and is valid in the window it was issued in and
//! the next one, so it cannot be shared, guessed, or kept for later. It is issued only once the
//! sale has started, so it cannot be fired early either. The key is not the session key.

use crate::tokens::crypto;

fn message(user_id: u64, sale_id: u64, window: i64) -> String {
    format!("l1.{user_id}.{sale_id}.{window}")
}

pub fn window_of(now_s: i64, window_s: u64) -> i64 {
    now_s.div_euclid(window_s.max(1) as i64)
}

pub fn sign(key: &[u8], user_id: u64, sale_id: u64, now_s: i64, window_s: u64) -> String {
    let msg = message(user_id, sale_id, window_of(now_s, window_s));
    crypto::sign_hex(key, msg.as_bytes())
}

/// True when `sig` was issued to this user for this sale in this window or the one before.
pub fn verify(
    key: &[u8],
    sig: &str,
    user_id: u64,
    sale_id: u64,
    now_s: i64,
    window_s: u64,
) -> bool {
    let w = window_of(now_s, window_s);
    [w, w - 1]
        .iter()
        .any(|&win| crypto::verify_hex(key, message(user_id, sale_id, win).as_bytes(), sig))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"link-key-for-tests-only";

    #[test]
    fn valid_in_its_window_and_the_next() {
        let sig = sign(KEY, 7, 3, 1_000, 60);
        assert!(verify(KEY, &sig, 7, 3, 1_000, 60));
        assert!(verify(KEY, &sig, 7, 3, 1_079, 60));
        assert!(
            !verify(KEY, &sig, 7, 3, 1_140, 60),
            "expired after two windows"
        );
        assert!(
            !verify(KEY, &sig, 7, 3, 900, 60),
            "not valid before it was issued"
        );
    }

    #[test]
    fn shared_vector_with_the_edge() {
        // edge/spec/tokens_spec.lua asserts the same signature.
        assert_eq!(
            sign(b"test-link-key-0123456789", 42, 7, 1_000, 60),
            "a334ea94af0afd5221b46339eb65f7f8ac7b712b39ccd824eead091253e84322"
        );
    }

    #[test]
    fn bound_to_user_sale_and_key() {
        let sig = sign(KEY, 7, 3, 1_000, 60);
        assert!(!verify(KEY, &sig, 8, 3, 1_000, 60), "another user's link");
        assert!(!verify(KEY, &sig, 7, 4, 1_000, 60), "another sale");
        assert!(!verify(b"another-link-key-here", &sig, 7, 3, 1_000, 60));
        assert!(!verify(KEY, "00", 7, 3, 1_000, 60));
    }
}
