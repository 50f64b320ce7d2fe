//! Captchas drawn ahead, off the opening's critical path (issue 32). Drawing one costs about
//! a millisecond of CPU (the PNG's rasterising), so a crowd's pictures are drawn in idle time
//! before it gathers and handed out from the pool, each once.
//!
//! - **On disk** (`SECKILL_CAPTCHA_POOL_DIR`): one file a picture, `<dir>/<fingerprint>/<id>.png`,
//!   written under a temporary name and renamed (a crash leaves no half picture). The answer
//!   is not stored: it follows from the id under the captcha key ([`Painter`]); the
//!   fingerprint names that key, so pictures drawn under an old key are removed at start.
//!   The pool survives a restart (the directory is listed once at start). Taking a picture
//!   reads its file and removes it before the answer goes out: a picture is handed out once,
//!   also across restarts (a crash between the two leaves the file for the next start, never
//!   sent). Filling starts at once.
//! - **In memory** (no directory): at most [`MEMORY_MAX`] pictures, filling from the first
//!   one asked for (as before the pool went to disk).
//!
//! Filling runs on a thread of its own at the lowest CPU priority (nice 19: under load it
//! gets ~1.5% of what a normal thread gets), and only in a quiet moment (no picture taken for
//! [`QUIET_MS`]) unless the pool runs low (under a quarter full): an opening's takes never
//! compete with refills. A full pool sleeps until a picture is taken (no timer). An empty
//! pool draws on demand, off the request threads, counted apart
//! (`seckill_captcha_drawn_total{how="on_demand"}`).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use prometheus::{Counter, IntCounter, IntGauge};

use super::Painter;

/// A drawn captcha: its answer and its picture as a `data:` URL.
pub type Drawn = (String, String);

/// An in-memory pool holds at most this many pictures (~10 KB each).
pub const MEMORY_MAX: usize = 4096;
/// Refills wait until no picture has been taken for this long (unless the pool runs low).
pub const QUIET_MS: i64 = 1000;

/// What the pool counts, for `/metrics`.
#[derive(Clone)]
pub struct Counters {
    pub ahead: IntCounter,
    pub on_demand: IntCounter,
    pub cpu_ahead: Counter,
    pub cpu_on_demand: Counter,
    pub ready: IntGauge,
    pub capacity: IntGauge,
}

impl Counters {
    /// Counters registered nowhere (tests, tools).
    pub fn detached() -> Counters {
        let c = |n: &str| IntCounter::new(n, n).expect("a valid metric name");
        let f = |n: &str| Counter::new(n, n).expect("a valid metric name");
        Counters {
            ahead: c("ahead"),
            on_demand: c("on_demand"),
            cpu_ahead: f("cpu_ahead"),
            cpu_on_demand: f("cpu_on_demand"),
            ready: IntGauge::new("ready", "ready").expect("a valid metric name"),
            capacity: IntGauge::new("capacity", "capacity").expect("a valid metric name"),
        }
    }
}

enum Ready {
    /// A picture's id; its file is `<dir>/<id>.png`.
    Disk(String),
    /// A picture's id and its `data:` URL.
    Memory(String, String),
}

/// The pool: pictures ready, and the drawer that fills it (a thread that ends with the pool).
pub struct Pool {
    inner: Arc<Inner>,
}

/// What the pool and its drawer thread share.
struct Inner {
    painter: Arc<Painter>,
    ready: Mutex<VecDeque<Ready>>,
    /// Wakes the drawer: a picture was taken, or the pool is closing.
    taken: Condvar,
    dir: Option<PathBuf>,
    capacity: usize,
    last_take_ms: AtomicI64,
    drawer_started: AtomicBool,
    closed: AtomicBool,
    counters: Counters,
}

const LOCK: &str = "the pool's lock is never poisoned: nothing panics while holding it";

impl Pool {
    /// A pool of `capacity` pictures (0: each drawn on demand) in `dir` (None: in memory).
    pub fn new(
        painter: Painter,
        capacity: usize,
        dir: Option<&Path>,
        counters: Counters,
    ) -> std::io::Result<Arc<Pool>> {
        let dir = match dir {
            Some(base) => Some(prepare(base, painter.fingerprint())?),
            None => None,
        };
        let ready: VecDeque<Ready> = match &dir {
            Some(d) => listed(d)?.into_iter().map(Ready::Disk).collect(),
            None => VecDeque::new(),
        };
        counters.ready.set(ready.len() as i64);
        let capacity = if dir.is_some() {
            capacity
        } else {
            capacity.min(MEMORY_MAX)
        };
        counters.capacity.set(capacity as i64);
        let pool = Pool {
            inner: Arc::new(Inner {
                painter: Arc::new(painter),
                ready: Mutex::new(ready),
                taken: Condvar::new(),
                dir,
                capacity,
                last_take_ms: AtomicI64::new(0),
                drawer_started: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                counters,
            }),
        };
        if pool.inner.dir.is_some() {
            pool.start_drawer();
        }
        Ok(Arc::new(pool))
    }

    /// Pictures ready now.
    pub fn len(&self) -> usize {
        self.inner.ready.lock().expect(LOCK).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A captcha never handed out before: from the pool, else drawn now (off the request
    /// threads). Reading a picture's file is a small read from the page cache, done here.
    pub async fn take(&self) -> Result<Drawn, tokio::task::JoinError> {
        let inner = &self.inner;
        inner
            .last_take_ms
            .store(crate::clock::now_ms(), Ordering::Relaxed);
        self.start_drawer();
        loop {
            let (next, left) = {
                let mut q = inner.ready.lock().expect(LOCK);
                (q.pop_front(), q.len())
            };
            inner.taken.notify_one();
            inner.counters.ready.set(left as i64);
            match next {
                Some(Ready::Memory(id, url)) => return Ok((inner.painter.answer_of(&id), url)),
                Some(Ready::Disk(id)) => {
                    if let Some(png) = inner.dir.as_ref().and_then(|d| take_file(d, &id)) {
                        return Ok((inner.painter.answer_of(&id), data_url(&png)));
                    }
                }
                None => break,
            }
        }
        let (painter, counters) = (inner.painter.clone(), inner.counters.clone());
        tokio::task::spawn_blocking(move || {
            let id = Painter::new_id();
            let (png, cpu) = timed(|| painter.draw(&id));
            counters.on_demand.inc();
            counters.cpu_on_demand.inc_by(cpu);
            (painter.answer_of(&id), data_url(&png))
        })
        .await
    }

    /// The drawer thread, once: it fills the pool when it is below capacity and quiet (or
    /// low), sleeps while it is full, and ends when the pool is dropped.
    fn start_drawer(&self) {
        let inner = self.inner.clone();
        if inner.capacity == 0 || inner.drawer_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("captcha-drawer".into())
            .spawn(move || {
                // Linux: the nice value is per thread; this one yields to every other.
                let _ = rustix::process::nice(19);
                while inner.wait_for_need() {
                    inner.draw_one();
                }
            });
        if let Err(e) = spawned {
            eprintln!(
                "seckill: captchas: the drawer thread did not start ({e}); drawing on demand"
            );
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.taken.notify_all();
    }
}

impl Inner {
    /// Returns true when a picture should be drawn (below capacity, and quiet or low), false
    /// when the pool is closed.
    fn wait_for_need(&self) -> bool {
        let mut ready = self.ready.lock().expect(LOCK);
        loop {
            if self.closed.load(Ordering::Acquire) {
                return false;
            }
            let len = ready.len();
            let quiet_for = crate::clock::now_ms() - self.last_take_ms.load(Ordering::Relaxed);
            if len < self.capacity && (quiet_for >= QUIET_MS || len < self.capacity / 4) {
                return true;
            }
            let wait = if len >= self.capacity {
                Duration::from_secs(3600)
            } else {
                Duration::from_millis((QUIET_MS - quiet_for).clamp(1, QUIET_MS) as u64)
            };
            ready = self.taken.wait_timeout(ready, wait).expect(LOCK).0;
        }
    }

    fn draw_one(&self) {
        let id = Painter::new_id();
        let (png, cpu) = timed(|| self.painter.draw(&id));
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let ready = match &self.dir {
            Some(dir) => match put_file(dir, &id, &png) {
                Ok(()) => Ready::Disk(id),
                Err(e) => {
                    eprintln!(
                        "seckill: captchas: writing a picture to {}: {e}",
                        dir.display()
                    );
                    std::thread::sleep(Duration::from_secs(1));
                    return;
                }
            },
            None => Ready::Memory(id, data_url(&png)),
        };
        self.counters.ahead.inc();
        self.counters.cpu_ahead.inc_by(cpu);
        let mut q = self.ready.lock().expect(LOCK);
        q.push_back(ready);
        self.counters.ready.set(q.len() as i64);
    }
}

/// What `f` returns and the CPU seconds this thread spent on it.
fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let cpu = || {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
    };
    let start = cpu();
    let out = f();
    (out, (cpu() - start).max(0.0))
}

fn data_url(png: &[u8]) -> String {
    format!(
        "data:image/png;base64,{}",
        crate::tokens::crypto::base64(png)
    )
}

/// `<base>/<fingerprint>`, created; pictures of other keys and half-written files removed.
fn prepare(base: &Path, fingerprint: &str) -> std::io::Result<PathBuf> {
    let dir = base.join(fingerprint);
    std::fs::create_dir_all(&dir)?;
    for entry in std::fs::read_dir(base)?.flatten() {
        let name = entry.file_name();
        if entry.path().is_dir() && name != fingerprint {
            std::fs::remove_dir_all(entry.path())?;
        }
    }
    for entry in std::fs::read_dir(&dir)?.flatten() {
        if entry.path().extension().is_some_and(|e| e == "tmp") {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(dir)
}

/// The ids of the pictures in `dir`.
fn listed(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(dir)?.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "png") {
            if let Some(id) = path.file_stem().and_then(|s| s.to_str()) {
                ids.push(id.to_string());
            }
        }
    }
    Ok(ids)
}

fn put_file(dir: &Path, id: &str, png: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{id}.tmp"));
    std::fs::write(&tmp, png)?;
    std::fs::rename(&tmp, dir.join(format!("{id}.png")))
}

/// The picture's bytes, its file removed first-come: None if it is gone or unreadable.
fn take_file(dir: &Path, id: &str) -> Option<Vec<u8>> {
    let path = dir.join(format!("{id}.png"));
    let png = std::fs::read(&path).ok()?;
    std::fs::remove_file(&path).ok()?;
    Some(png)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"test-captcha-key-0123456789";

    async fn until(what: &str, f: impl Fn() -> bool) {
        for _ in 0..500 {
            if f() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{what}: not within 10 s");
    }

    fn tmp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("seckill-pool-{name}-{}", Painter::new_id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[tokio::test]
    async fn an_in_memory_pool_fills_from_the_first_ask_and_hands_each_out_once() {
        let pool = Pool::new(Painter::new(KEY), 8, None, Counters::detached()).unwrap();
        assert!(pool.is_empty(), "nothing is drawn before the first ask");
        let first = pool.take().await.unwrap();
        until("the first ask fills the pool", || pool.len() == 8).await;
        let mut seen = std::collections::HashSet::from([first.1]);
        for _ in 0..8 {
            let (answer, url) = pool.take().await.unwrap();
            assert!(super::super::LENGTHS.contains(&answer.len()));
            assert!(url.starts_with("data:image/png;base64,"));
            assert!(seen.insert(url), "a picture is handed out once");
        }
    }

    #[tokio::test]
    async fn a_pool_on_disk_fills_before_any_ask_and_survives_a_restart() {
        let base = tmp_dir("disk");
        std::fs::create_dir_all(base.join("old-key-pictures")).unwrap();
        let counters = Counters::detached();
        let pool = Pool::new(Painter::new(KEY), 6, Some(&base), counters.clone()).unwrap();
        until("filled with nobody asking", || pool.len() == 6).await;
        assert!(
            !base.join("old-key-pictures").exists(),
            "another key's pictures go"
        );
        assert_eq!(counters.ahead.get(), 6);
        assert!(
            counters.cpu_ahead.get() > 0.0,
            "the drawing's CPU is counted"
        );
        let (a1, u1) = pool.take().await.unwrap();
        drop(pool);
        // A restart: the five left are found again, each still handed out once, each with
        // the answer it was drawn with.
        let again = Pool::new(Painter::new(KEY), 0, Some(&base), Counters::detached()).unwrap();
        assert_eq!(again.len(), 5);
        let mut seen = std::collections::HashSet::from([u1]);
        for _ in 0..5 {
            let (answer, url) = again.take().await.unwrap();
            assert!(
                seen.insert(url),
                "a picture is handed out once, across the restart"
            );
            assert!(
                super::super::LENGTHS.contains(&answer.len()),
                "{a1} {answer}"
            );
        }
        assert!(again.is_empty());
        let files = std::fs::read_dir(base.join(Painter::new(KEY).fingerprint()))
            .unwrap()
            .count();
        assert_eq!(files, 0, "every picture handed out is gone from disk");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[tokio::test]
    async fn an_empty_pool_still_serves_pictures_drawn_on_demand_and_counts_them() {
        let counters = Counters::detached();
        let pool = Pool::new(Painter::new(KEY), 0, None, counters.clone()).unwrap();
        let (answer, url) = pool.take().await.unwrap();
        assert!(super::super::LENGTHS.contains(&answer.len()));
        assert!(url.starts_with("data:image/png;base64,"));
        assert!(pool.is_empty());
        assert_eq!(counters.on_demand.get(), 1);
        assert!(counters.cpu_on_demand.get() > 0.0);
    }

    #[test]
    fn the_answer_handed_out_is_the_one_drawn() {
        // The picture of id X shows answer_of(X): what the pool hands out with it.
        let p = Painter::new(KEY);
        let id = Painter::new_id();
        let png = p.draw(&id);
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert!(super::super::LENGTHS.contains(&p.answer_of(&id).len()));
    }
}
