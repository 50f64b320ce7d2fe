//! The captcha's cost and samples: pictures drawn a second, and pictures with their answers
//! in a chosen hand (for the OCR and trained-solver checks, and for people's reading).

use std::time::Instant;

use crate::num;

/// Captchas drawn per second on one core, and the mean SVG size.
pub fn captcha_rate(n: &str) -> Result<(), String> {
    let n: u32 = num("N", n)?;
    let started = Instant::now();
    let mut bytes = 0;
    for _ in 0..n {
        bytes += seckill::tokens::captcha::challenge().1.len();
    }
    let rate = f64::from(n) / started.elapsed().as_secs_f64();
    println!("{} {}", rate.round(), bytes / n as usize);
    Ok(())
}

/// N captchas as the backend draws them, into DIR as `<i>.png` and `answers.txt` (`<i>
/// <answer>` a line): material for the checks and for a person's reading. With SEED, the same
/// N every time (a xorshift source instead of the OS's). HAND is whose hand they are drawn in:
/// `public` (default: the repository's, no key), `key:FILE` (the deployment whose captcha key
/// is in FILE, as its backend draws them), `random` (each picture in a hand of its own, from a
/// random key: what an attacker without the key can train on), or `seed:N` (the hand of a
/// key made from N).
pub fn captcha_samples(n: &str, dir: &str, seed: Option<&str>, hand: &str) -> Result<(), String> {
    use seckill::tokens::captcha::style::Style;
    let n: u32 = num("N", n)?;
    let mut state: u64 = match seed {
        Some(s) => num::<u64>("SEED", s)? | 1,
        None => {
            u64::from_le_bytes(
                seckill::tokens::crypto::random_bytes(8)
                    .try_into()
                    .expect("8 bytes"),
            ) | 1
        }
    };
    let mut seeded = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 16) as u32
    };
    let fixed = match hand.split_once(':') {
        None if hand == "public" => Some(Style::public()),
        None if hand == "random" => None,
        Some(("key", file)) => {
            let key = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
            Some(Style::from_key(key.trim().as_bytes()))
        }
        Some(("seed", n)) => Some(Style::from_key(format!("hand-{n}").as_bytes())),
        _ => {
            return Err(format!(
                "HAND: expected public, random, key:FILE or seed:N, got {hand:?}"
            ))
        }
    };
    std::fs::create_dir_all(dir).map_err(|e| format!("{dir}: {e}"))?;
    let mut answers = String::new();
    for i in 0..n {
        let style = match &fixed {
            Some(s) => s.clone(),
            None => Style::from_key(format!("hand-{}", seeded()).as_bytes()),
        };
        let (answer, png) = seckill::tokens::captcha::challenge_from(&mut seeded, &style);
        std::fs::write(format!("{dir}/{i}.png"), png).map_err(|e| format!("{dir}: {e}"))?;
        answers.push_str(&format!("{i} {answer}\n"));
    }
    std::fs::write(format!("{dir}/answers.txt"), answers).map_err(|e| format!("{dir}: {e}"))
}
