//! Loopback routes: Prometheus metrics, health, and the sale states the edge pulls into its
//! shared dict. The edge has no location for `/internal/` and answers `/metrics` itself.

use hyper::StatusCode;
use serde_json::json;

use super::reply::{self, Resp};
use crate::app::App;
use crate::buy::sales::QueueMode;
use crate::buy::{queue, sales, stock};
use crate::clock::now_ms;
use crate::error::ApiError;

pub fn metrics(app: &App) -> Result<Resp, ApiError> {
    Ok(reply::text(
        StatusCode::OK,
        "text/plain; version=0.0.4",
        app.metrics.render(),
    ))
}

pub fn healthz() -> Result<Resp, ApiError> {
    Ok(reply::json(StatusCode::OK, &json!({"ok": true})))
}

/// The state the edge keeps in its shared dict, one line per live sale:
/// `<id> <starts_ms> <ends_ms> <sold_out 0|1> <stock_left>` then the waiting room's fields
/// ([`crate::buy::queue::QueueState::edge_fields`]; mode 0 and zeros for a sale without one). Plain
/// text: the edge parses it without a JSON library. For a live sale with a waiting room the
/// pull also moves its serving cursor one step (`queue::tick`: atomic and idempotent, so
/// several edges pulling is safe).
pub async fn sale_states(app: &App) -> Result<Resp, ApiError> {
    use std::fmt::Write;
    let now = now_ms();
    let list = app
        .db_call("listing sales", async {
            sales::ending_after(&app.db, now - sales::EDGE_GRACE_MS)
                .await
                .map_err(ApiError::mysql)
        })
        .await?;
    let mut out = String::with_capacity(list.len() * 48);
    for s in list {
        let left = stock::stock_left(&app.redis, s.id)
            .await
            .map_err(ApiError::redis)?;
        if let Some(n) = left {
            app.metrics
                .stock_left
                .with_label_values(&[&s.id.to_string()])
                .set(n);
        }
        let sold_out = matches!(left, Some(n) if n <= 0);
        let queue = if s.queue.mode != QueueMode::None && now < s.ends_ms {
            match queue::tick(&app.redis, &s, now).await {
                Ok(state) => {
                    if let Some(q) = &state {
                        app.metrics.observe_queue(s.id, q);
                    }
                    state
                }
                Err(e) => {
                    // This sale's line is left out (the edge keeps its last state for a while,
                    // then refuses purchase paths for a sale it does not know); the others go on.
                    app.metrics
                        .redis_errors
                        .with_label_values(&["queue_tick"])
                        .inc();
                    eprintln!("internal/sales: sale {}: queue step failed: {e}", s.id);
                    continue;
                }
            }
        } else {
            None
        };
        let _ = writeln!(
            out,
            "{} {} {} {} {} {}",
            s.id,
            s.starts_ms,
            s.ends_ms,
            u8::from(sold_out),
            left.unwrap_or(0).max(0),
            queue::QueueState::edge_fields(queue.as_ref(), &s)
        );
    }
    Ok(reply::text(StatusCode::OK, "text/plain", out))
}
