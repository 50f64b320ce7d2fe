//! Captcha challenges, checked statelessly by the edge.
//!
//! The backend draws a random code ([`raster`]: pixels only, a PNG; glyphs of [`font`]) and
//! returns it with a token:
//!
//! ```text
//! <user_id>.<sale_id>.<expires_s>.<nonce>.<answer_mac>.<token_mac>
//! answer_mac = hex HMAC-SHA256(captcha_key, "c1.<user_id>.<sale_id>.<expires_s>.<nonce>.<ANSWER>")
//! token_mac  = hex HMAC-SHA256(captcha_key, "c2.<user_id>.<sale_id>.<expires_s>.<nonce>.<answer_mac>")
//! ```
//!
//! The token carries no answer, only a MAC over it. The edge first checks `token_mac` (the
//! token is ours, unaltered, and lives no longer than we issue), only then spends the nonce in
//! a shared dict (single use, for the token's remaining life), and then recomputes
//! `answer_mac` with the shopper's answer (upper-cased).

pub mod font;
pub mod pool;
pub mod raster;
pub mod style;

use crate::tokens::crypto;

/// The characters of a code: none a shopper confuses with another (see [`font`]).
pub const ALPHABET: &[u8] = font::ALPHABET;
/// How many characters a code has: its length varies, so no solver knows where the glyphs
/// are or how many to read.
pub const LENGTHS: std::ops::RangeInclusive<usize> = 4..=6;
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
    let answer_mac = crypto::sign_hex(
        key,
        message(user_id, sale_id, expires_s, nonce, answer).as_bytes(),
    );
    let signed = format!("c2.{user_id}.{sale_id}.{expires_s}.{nonce}.{answer_mac}");
    let token_mac = crypto::sign_hex(key, signed.as_bytes());
    format!("{user_id}.{sale_id}.{expires_s}.{nonce}.{answer_mac}.{token_mac}")
}

/// The crowd's oracle (docs/captcha.md): a captcha asked for with header
/// `X-Captcha-Oracle: <this>` is answered with its answer too. Only who holds the captcha key
/// (the operator, whose crowd plays shoppers who read the picture right or wrong by a model)
/// can make it; to anyone else it is an unknown 256-bit value.
pub fn oracle(key: &[u8], user_id: u64, sale_id: u64) -> String {
    crypto::sign_hex(key, format!("oracle.{user_id}.{sale_id}").as_bytes())
}

pub fn oracle_ok(key: &[u8], user_id: u64, sale_id: u64, given: &str) -> bool {
    crypto::verify_hex(key, format!("oracle.{user_id}.{sale_id}").as_bytes(), given)
}

/// The drawing's version: raise it with any change to how a picture or its answer is made
/// (the alphabet, the lengths, the hand), so a pool drawn by an older build is discarded at
/// start instead of handed out with answers computed the new way.
pub const DRAWING: u32 = 2;

/// How this deployment draws its captchas. A picture's answer follows from its id (128
/// random bits, its file name in the pool) under a key derived from the captcha key: a
/// picture on disk carries no answer, and the pool needs no index of answers.
pub struct Painter {
    answers: ring::hmac::Key,
    /// The deployment's hand (from the same key).
    style: style::Style,
    /// Names the pool's directory: pictures drawn under another key are never handed out.
    fingerprint: String,
}

impl Painter {
    pub fn new(captcha_key: &[u8]) -> Painter {
        let derive = |label: &str| crypto::sign_hex(captcha_key, label.as_bytes());
        Painter {
            answers: ring::hmac::Key::new(
                ring::hmac::HMAC_SHA256,
                derive("captcha-answers").as_bytes(),
            ),
            fingerprint: derive(&format!("captcha-pool.v{DRAWING}"))[..12].to_string(),
            style: style::Style::from_key(captcha_key),
        }
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// A new picture's id: 32 hex digits from the OS source.
    pub fn new_id() -> String {
        crypto::random_hex(16)
    }

    /// The answer of picture `id`: its length and its characters from the keyed digest.
    pub fn answer_of(&self, id: &str) -> String {
        let d = ring::hmac::sign(&self.answers, id.as_bytes());
        let d = d.as_ref();
        let lengths = LENGTHS.end() - LENGTHS.start() + 1;
        let length = LENGTHS.start() + d[31] as usize % lengths;
        d.chunks(2)
            .take(length)
            .map(|c| {
                let n = u16::from_le_bytes([c[0], c[1]]) as usize;
                ALPHABET[n % ALPHABET.len()] as char
            })
            .collect()
    }

    /// Picture `id` as a PNG in the deployment's hand (the drawing's randomness from the OS
    /// source).
    pub fn draw(&self, id: &str) -> Vec<u8> {
        let answer = self.answer_of(id);
        raster::draw(&answer, &mut raster::Rng(&mut random_u32s()), &self.style)
    }
}

/// A fresh challenge in the public hand: (answer, PNG).
pub fn challenge() -> (String, Vec<u8>) {
    challenge_from(&mut random_u32s(), &style::Style::public())
}

/// A challenge in the hand `style`, drawn from the given random numbers (a seeded source
/// makes the same pictures again: `benchkit captcha-samples` for the checks).
pub fn challenge_from(next: &mut dyn FnMut() -> u32, style: &style::Style) -> (String, Vec<u8>) {
    let lengths = (LENGTHS.end() - LENGTHS.start() + 1) as u32;
    let length = LENGTHS.start() + (next() % lengths) as usize;
    let answer: String = (0..length)
        .map(|_| ALPHABET[next() as usize % ALPHABET.len()] as char)
        .collect();
    let png = raster::draw(&answer, &mut raster::Rng(next), style);
    (answer, png)
}

/// Uniform random u32s from the OS source, fetched 64 at a time.
fn random_u32s() -> impl FnMut() -> u32 {
    let mut buf: Vec<u8> = Vec::new();
    move || {
        if buf.len() < 4 {
            buf = crypto::random_bytes(256);
        }
        let tail = buf.split_off(buf.len() - 4);
        u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]])
    }
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
             33758fe6647841550caf2e88decde3a35576be711d0511f6951cfd950d94fdf3.\
             450ffd870cf0628f860fc68e40566951004251ee09c2c8de0d4a27f55af19042"
        );
    }

    #[test]
    fn the_oracle_opens_for_the_key_holder_only() {
        let key = b"test-captcha-key-0123456789";
        let o = oracle(key, 42, 7);
        assert!(oracle_ok(key, 42, 7, &o));
        assert!(!oracle_ok(key, 43, 7, &o), "another shopper's");
        assert!(!oracle_ok(key, 42, 8, &o), "another sale's");
        assert!(!oracle_ok(b"another key", 42, 7, &o));
        assert!(!oracle_ok(key, 42, 7, ""));
    }

    #[test]
    fn a_pictures_answer_follows_from_its_id_and_the_key() {
        let p = Painter::new(b"test-captcha-key-0123456789");
        let id = Painter::new_id();
        assert_eq!(id.len(), 32);
        let a = p.answer_of(&id);
        assert_eq!(a, p.answer_of(&id), "the same id, the same answer");
        assert!(LENGTHS.contains(&a.len()));
        assert!(a.bytes().all(|b| ALPHABET.contains(&b)));
        let other = Painter::new(b"another key");
        assert_ne!(p.fingerprint(), other.fingerprint());
        let differ = (0..50)
            .map(|_| Painter::new_id())
            .filter(|id| p.answer_of(id) != other.answer_of(id))
            .count();
        assert!(differ >= 49, "another key, other answers ({differ} of 50)");
    }

    #[test]
    fn a_challenge_is_a_code_of_the_alphabet_and_its_picture() {
        for _ in 0..20 {
            let (answer, png) = challenge();
            assert!(LENGTHS.contains(&answer.len()));
            assert!(answer.bytes().all(|b| ALPHABET.contains(&b)));
            assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        }
    }
}
