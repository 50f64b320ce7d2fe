//! How the crowd's people and bots behave at the captcha (`--real-captcha`): how long they
//! take to read a picture, whether they read it right, how long after zero they press the
//! button, how soon they try again. Each shopper draws from its own seeded source, so a run
//! is repeatable.
//!
//! People, by default, from what people were measured doing (docs/captcha.md: 2–10 s at
//! phone size, mean 4.1 s): reading time lognormal with median 5 s (σ 0.45: 90% between
//! 2.4 and 10.5 s), 8% wrong answers (then a new picture), a reaction of ~0.6 s after the
//! countdown ends. Bots, from the solver trained on our own generator's pictures (issue 32):
//! 30 ms a picture, 94% right, no reaction time, a retry at once.

use std::time::Duration;

use crate::args::Args;

#[derive(Clone, Copy, Debug)]
pub struct Model {
    pub bot: bool,
    read_median_ms: f64,
    read_sigma: f64,
    accuracy: f64,
    react_median_ms: f64,
}

impl Model {
    pub fn human(a: &Args) -> Model {
        Model {
            bot: false,
            read_median_ms: a.read_median_ms,
            read_sigma: a.read_sigma,
            accuracy: a.human_accuracy,
            react_median_ms: a.react_median_ms,
        }
    }

    pub fn bot(a: &Args) -> Model {
        Model {
            bot: true,
            read_median_ms: a.bot_read_ms,
            read_sigma: 0.0,
            accuracy: a.bot_accuracy,
            react_median_ms: 0.0,
        }
    }

    /// How long this reading of a picture takes.
    pub fn read_time(&self, rng: &mut Rng) -> Duration {
        Duration::from_secs_f64(lognormal(rng, self.read_median_ms, self.read_sigma) / 1000.0)
    }

    /// Whether this reading is right.
    pub fn reads_right(&self, rng: &mut Rng) -> bool {
        rng.unit() < self.accuracy
    }

    /// From zero to the press of the button, for a shopper who was ready before it.
    pub fn reaction(&self, rng: &mut Rng) -> Duration {
        Duration::from_secs_f64(lognormal(rng, self.react_median_ms, 0.5) / 1000.0)
    }

    /// The pause before trying again after "busy" (429/503): the page's back-off for people
    /// (0.7 s, then 0.5 s more each time); a bot's is short but respects the per-second
    /// limits (a bot that hammers them is refused every time and lets its turn lapse).
    pub fn retry_after(&self, attempt: u32) -> Duration {
        if self.bot {
            Duration::from_millis(250 * (u64::from(attempt) + 1))
        } else {
            Duration::from_millis(700 + 500 * u64::from(attempt))
        }
    }
}

/// A lognormal draw with this median (ms) and σ (0: always the median).
fn lognormal(rng: &mut Rng, median: f64, sigma: f64) -> f64 {
    median * (sigma * rng.normal()).exp()
}

/// A wrong reading of `answer`: one character taken for another of the alphabet.
pub fn misread(answer: &str, rng: &mut Rng) -> String {
    let alphabet = seckill::tokens::captcha::ALPHABET;
    let mut chars: Vec<u8> = answer.bytes().collect();
    if chars.is_empty() {
        return "X".into();
    }
    let i = (rng.next() as usize) % chars.len();
    let mut c = alphabet[(rng.next() as usize) % alphabet.len()];
    if c == chars[i] {
        c = alphabet[(alphabet.iter().position(|&x| x == c).unwrap_or(0) + 1) % alphabet.len()];
    }
    chars[i] = c;
    String::from_utf8_lossy(&chars).into_owned()
}

/// SplitMix64: small, fast, seeded per shopper.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u = self.unit().max(1e-12);
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_read_in_seconds_and_bots_in_milliseconds() {
        let a = Args::default();
        let (human, bot) = (Model::human(&a), Model::bot(&a));
        let mut rng = Rng::new(7);
        let mut reads: Vec<f64> = (0..10_000)
            .map(|_| human.read_time(&mut rng).as_secs_f64())
            .collect();
        reads.sort_by(f64::total_cmp);
        let (p05, p50, p95) = (reads[500], reads[5000], reads[9500]);
        assert!((4.7..5.3).contains(&p50), "median {p50}");
        assert!(p05 > 2.0 && p95 < 11.5, "5%: {p05}, 95%: {p95}");
        assert_eq!(bot.read_time(&mut rng), Duration::from_millis(30));
        let right = (0..10_000).filter(|_| human.reads_right(&mut rng)).count();
        assert!((9_000..9_400).contains(&right), "{right} of 10,000 right");
    }

    #[test]
    fn a_misreading_differs_in_one_character_of_the_alphabet() {
        let mut rng = Rng::new(3);
        for _ in 0..1000 {
            let wrong = misread("K4P3C", &mut rng);
            assert_ne!(wrong, "K4P3C");
            let diff = wrong.bytes().zip("K4P3C".bytes()).filter(|(a, b)| a != b);
            assert_eq!(diff.count(), 1);
            assert!(wrong
                .bytes()
                .all(|b| seckill::tokens::captcha::ALPHABET.contains(&b)));
        }
    }
}
