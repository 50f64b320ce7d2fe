//! The shoppers' requests the benchmarks replay: one step of a crowd, a line each
//! (`step-lines`, for `bench/steps.lua`), every line from its own shopper and address, with
//! fresh single-use material (proof-of-work solutions, captcha tokens).

use std::io::Write as _;

use crate::{num, secret};

/// N requests of one shopper step, a line each ("METHOD PATH TOKEN ADDRESS BODY"), every one
/// from its own shopper and address, single-use material fresh in each: what a crowd sends.
pub fn step_lines(kind: &str, dir: &str, sale: &str, n: &str, out: &str) -> Result<(), String> {
    use seckill::tokens::{captcha, crypto, session};
    let (sale, n): (u64, usize) = (num("SALE", sale)?, num("N", n)?);
    let session_key = secret(dir, "session.key")?;
    let captcha_key = secret(dir, "captcha.key")?;
    // The edge's proof-of-work key (edge/lua/seckill/config.lua) and its default difficulty.
    let pow_key = crypto::sign_hex(&captcha_key, b"seckill proof-of-work key v1");
    let bits = 12;
    let now_s = seckill::clock::now_ms() / 1000;
    let mut f =
        std::io::BufWriter::new(std::fs::File::create(out).map_err(|e| format!("{out}: {e}"))?);
    for i in 0..n {
        let name = format!("steps-{sale}-{i}");
        let user = session::user_id_for(&session_key, &name);
        let token = session::issue(&session_key, user, now_s + 3600);
        let ip = format!("10.{}.{}.{}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);
        let line = match kind {
            "login" => format!("POST /api/login - {ip} {{\"user\":\"{name}\"}}"),
            "pow" => format!("POST /api/sales/{sale}/pow {token} {ip} -"),
            "join" => format!("POST /api/sales/{sale}/queue {token} {ip} -"),
            "mine" => format!("GET /api/sales/{sale}/mine {token} {ip} -"),
            "picture" => {
                let (exp, nonce) = (now_s + 110, crypto::random_hex(8));
                let signed = format!("p1.{user}.{sale}.{exp}.{bits}.{nonce}");
                let mac = crypto::sign_hex(pow_key.as_bytes(), signed.as_bytes());
                let challenge = format!("{user}.{sale}.{exp}.{bits}.{nonce}.{mac}");
                let x = solve_pow(&challenge, bits);
                format!("POST /api/sales/{sale}/captcha?pow={challenge}&pow_solution={x} {token} {ip} -")
            }
            "answer" => {
                let t = captcha::token(
                    &captcha_key,
                    user,
                    sale,
                    now_s + 110,
                    &captcha::nonce(),
                    "CDEH",
                );
                format!("POST /api/sales/{sale}/path {token} {ip} captcha_token={t}&answer=CDEH")
            }
            _ => {
                return Err(format!(
                    "KIND: expected login, pow, picture or answer, got {kind:?}"
                ))
            }
        };
        writeln!(f, "{line}").map_err(|e| e.to_string())?;
    }
    f.flush().map_err(|e| e.to_string())
}

/// The smallest decimal x with `bits` leading zero bits in SHA-256("<challenge>.<x>").
fn solve_pow(challenge: &str, bits: u32) -> u64 {
    (0u64..)
        .find(|x| {
            let d =
                ring::digest::digest(&ring::digest::SHA256, format!("{challenge}.{x}").as_bytes());
            let lead = d.as_ref().iter().position(|b| *b != 0).unwrap_or(32);
            let zeros = lead as u32 * 8 + d.as_ref().get(lead).map_or(0, |b| b.leading_zeros());
            zeros >= bits
        })
        .expect("some x has the zero bits asked for")
}
