//! Captchas drawn ahead: drawing one costs about a millisecond of CPU (the PNG's rasterising,
//! ~880 a second per core in release), so the opening second's crowd is served from pictures
//! drawn while it gathered. The pool starts filling at the first captcha asked for (a minute
//! before a sale's start, when its early window opens) and refills what is taken, one picture
//! at a time on a blocking thread; once full it costs nothing. Each picture is handed out once.
//! An empty pool (or one of capacity 0) draws on demand, as before.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A drawn captcha: its answer and its picture as a `data:` URL.
pub type Drawn = (String, String);

pub struct Pool {
    ready: Mutex<Vec<Drawn>>,
    capacity: usize,
    filling: AtomicBool,
}

/// One captcha drawn now.
pub fn draw() -> Drawn {
    let (answer, png) = super::challenge();
    let url = format!(
        "data:image/png;base64,{}",
        crate::tokens::crypto::base64(&png)
    );
    (answer, url)
}

impl Pool {
    pub fn new(capacity: usize) -> Arc<Pool> {
        Arc::new(Pool {
            ready: Mutex::new(Vec::with_capacity(capacity)),
            capacity,
            filling: AtomicBool::new(false),
        })
    }

    /// Pictures ready now.
    pub fn len(&self) -> usize {
        self.ready
            .lock()
            .expect("the pool's lock is never poisoned: nothing panics while holding it")
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A captcha never handed out before: from the pool, else drawn now (off the request
    /// threads). Starts a refill when the pool is below its capacity.
    pub async fn take(self: &Arc<Self>) -> Result<Drawn, tokio::task::JoinError> {
        let ready = self
            .ready
            .lock()
            .expect("the pool's lock is never poisoned: nothing panics while holding it")
            .pop();
        self.refill();
        match ready {
            Some(drawn) => Ok(drawn),
            None => tokio::task::spawn_blocking(draw).await,
        }
    }

    /// Fills the pool in the background, one picture at a time, unless a fill runs already.
    fn refill(self: &Arc<Self>) {
        if self.capacity == 0 || self.filling.swap(true, Ordering::AcqRel) {
            return;
        }
        let pool = self.clone();
        tokio::spawn(async move {
            while pool.len() < pool.capacity {
                match tokio::task::spawn_blocking(draw).await {
                    Ok(drawn) => pool
                        .ready
                        .lock()
                        .expect(
                            "the pool's lock is never poisoned: nothing panics while holding it",
                        )
                        .push(drawn),
                    Err(_) => break,
                }
            }
            pool.filling.store(false, Ordering::Release);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pictures_are_drawn_ahead_and_each_handed_out_once() {
        let pool = Pool::new(8);
        assert!(pool.is_empty(), "nothing is drawn before the first ask");
        let first = pool.take().await.unwrap();
        for _ in 0..200 {
            if pool.len() == 8 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(pool.len(), 8, "the first ask fills the pool");
        let mut seen = std::collections::HashSet::from([first.1]);
        for _ in 0..8 {
            let (answer, url) = pool.take().await.unwrap();
            assert_eq!(answer.len(), super::super::LENGTH);
            assert!(url.starts_with("data:image/png;base64,"));
            assert!(seen.insert(url), "a picture is handed out once");
        }
    }

    #[tokio::test]
    async fn a_pool_of_none_draws_on_demand() {
        let pool = Pool::new(0);
        let (answer, _) = pool.take().await.unwrap();
        assert_eq!(answer.len(), super::super::LENGTH);
        assert!(pool.is_empty());
    }
}
