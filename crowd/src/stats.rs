//! What the crowd saw, counted while it runs: answers by status code, request latencies.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub struct Stats {
    /// Answers by HTTP status (index = status; 0 = no answer).
    by_status: Vec<AtomicU64>,
    /// Buys answered `queued`.
    pub queued: AtomicU64,
    /// Cheating attempts, and those the system let through (must stay 0).
    pub cheats: AtomicU64,
    pub cheats_passed: AtomicU64,
    /// Buys sent from an untrusted address with a spoofed `X-Forwarded-For`, and how many of
    /// them the edge rate-limited (by the real address).
    pub spoofed: AtomicU64,
    pub spoofed_limited: AtomicU64,
    /// Shoppers done.
    pub shoppers_done: AtomicU64,
    /// (ms since the start when the answer came, latency in µs) of every request.
    timeline: Mutex<Vec<(u32, u32)>>,
    /// The sale's start, once it is reached.
    pub started: OnceLock<Instant>,
    /// Order ids answered `queued`.
    pub order_ids: Mutex<Vec<u64>>,
    /// Latencies (µs) by kind of request: buys, queue joins, queue polls.
    buys: Mutex<Vec<u32>>,
    joins: Mutex<Vec<u32>>,
    polls: Mutex<Vec<u32>>,
    /// Every buy and its answer, one JSON line each, when the history is kept (`--history`).
    pub keep_history: bool,
    history: Mutex<Vec<String>>,
    /// `--real-captcha`: how long each picture took to arrive (µs), every picture's
    /// fingerprint, pictures that came a second time (must stay 0), wrong answers given.
    captchas: Mutex<Vec<u32>>,
    pictures: Mutex<std::collections::HashSet<u64>>,
    pub pictures_repeated: AtomicU64,
    pub wrong_answers: AtomicU64,
    /// When the last buy was answered `queued` (Unix ms; 0: none yet).
    pub last_order_ms: std::sync::atomic::AtomicI64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}

impl Stats {
    pub fn new() -> Stats {
        Stats {
            by_status: (0..600).map(|_| AtomicU64::new(0)).collect(),
            queued: AtomicU64::new(0),
            cheats: AtomicU64::new(0),
            cheats_passed: AtomicU64::new(0),
            spoofed: AtomicU64::new(0),
            spoofed_limited: AtomicU64::new(0),
            shoppers_done: AtomicU64::new(0),
            timeline: Mutex::new(Vec::new()),
            started: OnceLock::new(),
            order_ids: Mutex::new(Vec::new()),
            buys: Mutex::new(Vec::new()),
            joins: Mutex::new(Vec::new()),
            polls: Mutex::new(Vec::new()),
            keep_history: false,
            history: Mutex::new(Vec::new()),
            captchas: Mutex::new(Vec::new()),
            pictures: Mutex::new(std::collections::HashSet::new()),
            pictures_repeated: AtomicU64::new(0),
            wrong_answers: AtomicU64::new(0),
            last_order_ms: std::sync::atomic::AtomicI64::new(0),
        }
    }

    /// A picture arrived after `took`: counted, and checked against every earlier one.
    pub fn picture(&self, took: Duration, image: &str) {
        self.captchas.lock().unwrap().push(micros(took));
        let digest = ring::digest::digest(&ring::digest::SHA256, image.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest.as_ref()[..8]);
        if !self
            .pictures
            .lock()
            .unwrap()
            .insert(u64::from_le_bytes(first))
        {
            self.pictures_repeated.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Pictures fetched, and the p50 and p99 (ms) of their arrival.
    pub fn pictures(&self) -> (usize, f64, f64) {
        let mut v = self.captchas.lock().unwrap().clone();
        v.sort_unstable();
        (v.len(), quantile_ms(&v, 0.5), quantile_ms(&v, 0.99))
    }

    /// A buy sent at `sent_ms` (Unix ms) and what came of it (status 0: no answer), for the
    /// history: `{"user","sale","sent_ms","answered_ms","status","error","order_id"}`.
    pub fn buy_answered(&self, user: u64, sale: u64, sent_ms: i64, status: u16, body: &[u8]) {
        if !self.keep_history {
            return;
        }
        let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let line = serde_json::json!({
            "user": user, "sale": sale, "sent_ms": sent_ms,
            "answered_ms": seckill::clock::now_ms(), "status": status,
            "error": v["error"], "order_id": v["order_id"],
        });
        self.history.lock().unwrap().push(line.to_string());
    }

    /// The history, one JSON line per buy.
    pub fn history(&self) -> String {
        let mut out = self.history.lock().unwrap().join("\n");
        out.push('\n');
        out
    }

    pub fn buy_latency(&self, took: Duration) {
        self.buys.lock().unwrap().push(micros(took));
    }

    pub fn join_latency(&self, took: Duration) {
        self.joins.lock().unwrap().push(micros(took));
    }

    pub fn poll_latency(&self, took: Duration) {
        self.polls.lock().unwrap().push(micros(took));
    }

    /// The p99 (ms) of buys, joins and polls.
    pub fn p99_by_kind(&self) -> (f64, f64, f64) {
        let p99 = |m: &Mutex<Vec<u32>>| {
            let mut v = m.lock().unwrap().clone();
            v.sort_unstable();
            quantile_ms(&v, 0.99)
        };
        (p99(&self.buys), p99(&self.joins), p99(&self.polls))
    }

    /// One request's answer (`status` 0: none) after `took`.
    pub fn record(&self, status: u16, took: Duration) {
        self.by_status[usize::from(status).min(599)].fetch_add(1, Ordering::Relaxed);
        let us = took.as_micros().min(u32::MAX as u128) as u32;
        let at = self
            .started
            .get()
            .map_or(0, |t| t.elapsed().as_millis().min(u32::MAX as u128) as u32);
        self.timeline.lock().unwrap().push((at, us));
    }

    /// Per `bucket_ms` of the run: (bucket start ms, requests answered, p50 ms, p99 ms).
    pub fn over_time(&self, bucket_ms: u32) -> Vec<(u32, usize, f64, f64)> {
        let mut by: std::collections::BTreeMap<u32, Vec<u32>> = Default::default();
        for (at, us) in self.timeline.lock().unwrap().iter() {
            by.entry(at / bucket_ms * bucket_ms).or_default().push(*us);
        }
        by.into_iter()
            .map(|(t, mut v)| {
                v.sort_unstable();
                (t, v.len(), quantile_ms(&v, 0.5), quantile_ms(&v, 0.99))
            })
            .collect()
    }

    pub fn requests(&self) -> u64 {
        self.by_status
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    pub fn count(&self, status: u16) -> u64 {
        self.by_status[usize::from(status)].load(Ordering::Relaxed)
    }

    /// (status, count) for every status seen.
    pub fn statuses(&self) -> Vec<(u16, u64)> {
        self.by_status
            .iter()
            .enumerate()
            .map(|(s, c)| (s as u16, c.load(Ordering::Relaxed)))
            .filter(|(_, c)| *c > 0)
            .collect()
    }

    /// Latencies in microseconds, sorted.
    pub fn sorted_latencies(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .timeline
            .lock()
            .unwrap()
            .iter()
            .map(|(_, us)| *us)
            .collect();
        v.sort_unstable();
        v
    }
}

fn micros(d: Duration) -> u32 {
    d.as_micros().min(u32::MAX as u128) as u32
}

/// The `q` quantile (0..=1) of sorted values, in milliseconds.
pub fn quantile_ms(sorted_us: &[u32], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let i = ((sorted_us.len() as f64 - 1.0) * q).round() as usize;
    f64::from(sorted_us[i.min(sorted_us.len() - 1)]) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeline_buckets_answers_by_when_they_came() {
        let s = Stats::new();
        s.record(200, Duration::from_millis(4));
        s.record(200, Duration::from_millis(8));
        let rows = s.over_time(250);
        assert_eq!(rows.len(), 1, "no start set: everything at 0 ms");
        assert_eq!((rows[0].0, rows[0].1), (0, 2));
        assert_eq!(rows[0].3, 8.0);
    }

    #[test]
    fn quantiles_of_a_known_set() {
        let v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(quantile_ms(&v, 0.5), 51.0);
        assert_eq!(quantile_ms(&v, 0.99), 99.0);
        assert_eq!(quantile_ms(&v, 1.0), 100.0);
        assert_eq!(quantile_ms(&[], 0.5), 0.0);
    }
}
