//! Captcha challenges, checked statelessly by the edge.
//!
//! The backend draws a random code as an SVG (glyph paths are not needed: rotated, shifted
//! text over noise lines is enough to stop naive bots; a real deployment swaps in a stronger
//! challenge behind the same token) and returns it with a token:
//!
//! ```text
//! <user_id>.<sale_id>.<expires_s>.<nonce>.<hex HMAC-SHA256(captcha_key,
//!     "c1.<user_id>.<sale_id>.<expires_s>.<nonce>.<ANSWER>")>
//! ```
//!
//! The token carries no answer, only an HMAC over it: the edge recomputes the HMAC with the
//! shopper's answer (upper-cased) and marks the nonce used in a shared dict (single use).

use crate::crypto;

/// No 0/O, 1/I: a shopper can read every code.
const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
pub const LENGTH: usize = 5;
/// Captchas are handed out from this long before the start, so shoppers solve them at zero.
pub const EARLY_MS: i64 = 60_000;

fn message(user_id: u64, sale_id: u64, expires_s: i64, nonce: &str, answer: &str) -> String {
    format!("c1.{user_id}.{sale_id}.{expires_s}.{nonce}.{answer}")
}

pub fn token(
    key: &[u8],
    user_id: u64,
    sale_id: u64,
    expires_s: i64,
    nonce: &str,
    answer: &str,
) -> String {
    let sig = crypto::sign_hex(
        key,
        message(user_id, sale_id, expires_s, nonce, answer).as_bytes(),
    );
    format!("{user_id}.{sale_id}.{expires_s}.{nonce}.{sig}")
}

/// A fresh challenge: (answer, svg).
pub fn challenge() -> (String, String) {
    let rnd = crypto::random_bytes(LENGTH + 24);
    let answer: String = rnd[..LENGTH]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    let mut svg = String::from(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="160" height="60" viewBox="0 0 160 60"><rect width="160" height="60" fill="#f4f1ea"/>"##,
    );
    let noise = &rnd[LENGTH..];
    for i in 0..6 {
        let (a, b, c, d) = (
            noise[i * 4],
            noise[i * 4 + 1],
            noise[i * 4 + 2],
            noise[i * 4 + 3],
        );
        svg.push_str(&format!(
            r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#8a7f6a" stroke-width="1.5"/>"##,
            a % 160,
            b % 60,
            c % 160,
            d % 60
        ));
    }
    for (i, ch) in answer.chars().enumerate() {
        let wobble = noise[i] as i32;
        let x = 18 + i as i32 * 28 + (wobble % 7) - 3;
        let y = 40 + (wobble % 9) - 4;
        let rot = (wobble % 41) - 20;
        svg.push_str(&format!(
            r##"<text x="{x}" y="{y}" font-family="monospace" font-size="30" font-weight="bold" fill="#2b2b2b" transform="rotate({rot} {x} {y})">{ch}</text>"##
        ));
    }
    svg.push_str("</svg>");
    (answer, svg)
}

pub fn nonce() -> String {
    crypto::random_hex(8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_vector_with_the_edge() {
        // edge/spec/captcha_spec.lua checks this token with the answer "K7P2Q".
        assert_eq!(
            token(
                b"test-captcha-key-0123456789",
                42,
                7,
                2_000_000_000,
                "00ff00ff00ff00ff",
                "K7P2Q"
            ),
            "42.7.2000000000.00ff00ff00ff00ff.\
             33758fe6647841550caf2e88decde3a35576be711d0511f6951cfd950d94fdf3"
        );
    }

    #[test]
    fn challenges_draw_their_answer() {
        let (answer, svg) = challenge();
        assert_eq!(answer.len(), LENGTH);
        assert!(answer.bytes().all(|b| ALPHABET.contains(&b)));
        for ch in answer.chars() {
            assert!(svg.contains(&format!(">{ch}</text>")));
        }
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }
}
