//! The simulated payment provider: takes the money, gives it back, and tells us each time with
//! a signed notification, like a gateway's webhook.
//!
//! It runs in-process: after `delay` it delivers the notification over HTTP to the notify URL,
//! retrying with backoff until acknowledged (2xx). It counts what it did, so tests can check
//! that one order was charged once: [`Provider::charges`], [`Provider::refunds`]. A refund is
//! keyed by the payment id, as a real provider's idempotency key: asked twice, it gives the
//! money back once and confirms twice.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use crate::lifecycle::payment::{Event, Notification, Payment};

pub const SIGNATURE_HEADER: &str = "x-pay-signature";

#[derive(Clone)]
pub struct Provider {
    key: Vec<u8>,
    delay: Duration,
    client: Client<HttpConnector, Full<Bytes>>,
    ledger: Arc<Ledger>,
}

#[derive(Default)]
struct Ledger {
    charges: AtomicU64,
    refunds: AtomicU64,
    refunded: Mutex<HashSet<String>>,
}

impl Provider {
    pub fn new(key: Vec<u8>, delay: Duration) -> Provider {
        Provider {
            key,
            delay,
            client: Client::builder(TokioExecutor::new()).build_http(),
            ledger: Arc::default(),
        }
    }

    /// Charges this payment and notifies `url` of it.
    pub fn pay(&self, url: String, payment: &Payment) {
        self.ledger.charges.fetch_add(1, Ordering::Relaxed);
        self.notify(url, payment, Event::Succeeded);
    }

    /// Refunds this payment (once per payment id, however often asked) and notifies `url`.
    pub fn refund(&self, url: String, payment: &Payment) {
        let first = self
            .ledger
            .refunded
            .lock()
            .expect("the refund ledger is never poisoned: nothing panics while holding it")
            .insert(payment.payment_id.clone());
        if first {
            self.ledger.refunds.fetch_add(1, Ordering::Relaxed);
        }
        self.notify(url, payment, Event::Refunded);
    }

    /// Charges made so far.
    pub fn charges(&self) -> u64 {
        self.ledger.charges.load(Ordering::Relaxed)
    }

    /// Refunds made so far (distinct payments).
    pub fn refunds(&self) -> u64 {
        self.ledger.refunds.load(Ordering::Relaxed)
    }

    /// Delivers the notification after the delay, in the background; retries with backoff
    /// until acknowledged, for at most ten attempts.
    fn notify(&self, url: String, payment: &Payment, event: Event) {
        let n = Notification {
            payment_id: payment.payment_id.clone(),
            order_id: payment.order_id,
            amount_cents: payment.amount_cents,
            event,
        };
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(me.delay).await;
            let mut backoff = Duration::from_millis(100);
            for _ in 0..10 {
                if me.deliver(&url, &n).await {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            eprintln!(
                "payment provider: gave up notifying {url} of payment {} ({})",
                n.payment_id,
                event.as_str()
            );
        });
    }

    async fn deliver(&self, url: &str, n: &Notification) -> bool {
        let body = n.body();
        let sig = crate::tokens::crypto::sign_hex(&self.key, body.as_bytes());
        let Ok(req) = Request::builder()
            .method(Method::POST)
            .uri(url)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, sig)
            .body(Full::new(Bytes::from(body)))
        else {
            return false;
        };
        match tokio::time::timeout(Duration::from_secs(5), self.client.request(req)).await {
            Ok(Ok(resp)) => resp.status().is_success(),
            _ => false,
        }
    }
}
