//! The backend's Prometheus metrics: one registry, created at start and passed down.
//! Names are part of the contract with the dashboards and alert rules in `ops/`.

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    pub registry: Registry,
    /// By route and status code.
    pub http_requests: IntCounterVec,
    /// By route.
    pub http_duration: HistogramVec,
    pub inflight: IntGauge,
    /// Reservation attempts by outcome: queued, sold_out, duplicate, not_started, ended,
    /// not_loaded, sold_out_local (answered from the local flag, no Redis trip), error.
    pub reservations: IntCounterVec,
    /// By cache (sale, sold_out) and result (hit, miss).
    pub cache: IntCounterVec,
    /// Redis call latency by operation.
    pub redis_duration: HistogramVec,
    /// Redis failures by operation.
    pub redis_errors: IntCounterVec,
    pub mysql_duration: HistogramVec,
    pub mysql_errors: IntCounterVec,
    pub orders_written: IntCounter,
    pub writer_batch: Histogram,
    /// Buys per reservation script call (see `reserver`).
    pub reserve_batch: Histogram,
    /// Entries reclaimed from dead writers.
    pub writer_reclaimed: IntCounter,
    pub writer_dead_letters: IntCounter,
    /// Entries in a sale's stream not yet acknowledged by a writer.
    pub stream_backlog: IntGaugeVec,
    /// Units left per live sale, as last seen by this backend.
    pub stock_left: IntGaugeVec,
    /// Initial stock - Redis stock left - live orders, per sale, at the last check (must be 0).
    pub stock_drift: IntGaugeVec,
    /// Repairs by kind: release (a cancelled order's unit given back), rebuild (Redis state
    /// rebuilt from its ledger and MariaDB).
    pub repairs: IntCounterVec,
    /// Recoveries after Redis forgot its scripts (restart, failover), by result.
    pub recoveries: IntCounterVec,
    /// Primaries found unverified (promoted or restarted) by the topology watcher and flushed.
    pub failovers_detected: IntCounter,
    /// Unpaid orders closed at their deadline.
    pub orders_expired: IntCounter,
    /// Units given back to Redis stock (expired or dead-lettered orders).
    pub units_returned: IntCounter,
    /// Payment notifications by result: paid, already_paid, refund_due, forged.
    pub payments: IntCounterVec,
    /// 1 while a dependency's circuit breaker is open.
    pub breaker_open: IntGaugeVec,
    /// Waiting-room joins: new tickets and joins again (the same ticket).
    pub queue_joins: IntCounterVec,
    /// Per queued sale: tickets waiting (joined, not yet admitted).
    pub queue_length: IntGaugeVec,
    /// Per queued sale: tickets admitted so far (the serving cursor).
    pub queue_admitted: IntGaugeVec,
    /// Per queued sale: admissions whose time ran out (admitted longer ago than an admission
    /// lasts, less the orders placed by then: an estimate of no-shows).
    pub queue_expired: IntGaugeVec,
    /// Per queued sale: admissions a second over the last ten seconds.
    pub queue_rate: GaugeVec,
}

fn latency_buckets() -> Vec<f64> {
    vec![
        0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
    ]
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let histogram_vec = |name: &str, help: &str, labels: &[&str]| {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(latency_buckets()),
                labels,
            )
            .expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
            h
        };
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let inflight = IntGauge::new("seckill_http_inflight", "Requests being served now")
            .expect("valid metric");
        registry
            .register(Box::new(inflight.clone()))
            .expect("unique metric");
        let writer_batch = Histogram::with_opts(
            HistogramOpts::new("seckill_writer_batch_size", "Orders per MariaDB batch").buckets(
                vec![1.0, 5.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0],
            ),
        )
        .expect("valid metric");
        registry
            .register(Box::new(writer_batch.clone()))
            .expect("unique metric");
        let reserve_batch = Histogram::with_opts(
            HistogramOpts::new(
                "seckill_reserve_batch_size",
                "Buys reserved per Redis script call",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
        )
        .expect("valid metric");
        registry
            .register(Box::new(reserve_batch.clone()))
            .expect("unique metric");
        let m = Metrics {
            http_requests: counter_vec(
                "seckill_http_requests_total",
                "HTTP requests by route and status",
                &["route", "status"],
            ),
            http_duration: histogram_vec(
                "seckill_http_request_duration_seconds",
                "HTTP request latency by route",
                &["route"],
            ),
            inflight,
            reservations: counter_vec(
                "seckill_reservations_total",
                "Buy attempts by outcome",
                &["outcome"],
            ),
            cache: counter_vec(
                "seckill_cache_requests_total",
                "Local cache lookups by cache and result",
                &["cache", "result"],
            ),
            redis_duration: histogram_vec(
                "seckill_redis_duration_seconds",
                "Redis call latency by operation",
                &["op"],
            ),
            redis_errors: counter_vec(
                "seckill_redis_errors_total",
                "Redis call failures by operation",
                &["op"],
            ),
            mysql_duration: histogram_vec(
                "seckill_mysql_duration_seconds",
                "MariaDB call latency by operation",
                &["op"],
            ),
            mysql_errors: counter_vec(
                "seckill_mysql_errors_total",
                "MariaDB call failures by operation",
                &["op"],
            ),
            orders_written: counter(
                "seckill_orders_written_total",
                "Orders inserted into MariaDB by the writer",
            ),
            writer_batch,
            reserve_batch,
            writer_reclaimed: counter(
                "seckill_writer_reclaimed_total",
                "Stream entries taken over from a dead writer",
            ),
            writer_dead_letters: counter(
                "seckill_writer_dead_letters_total",
                "Stream entries moved to the dead-letter stream",
            ),
            stream_backlog: gauge_vec(
                "seckill_stream_backlog",
                "Orders queued in a sale's stream and not yet acknowledged by a writer",
                &["sale"],
            ),
            stock_left: gauge_vec(
                "seckill_stock_left",
                "Units left in Redis per live sale",
                &["sale"],
            ),
            stock_drift: gauge_vec(
                "seckill_stock_drift",
                "Initial stock minus Redis stock left minus live orders, per sale (must be 0)",
                &["sale"],
            ),
            repairs: counter_vec(
                "seckill_repairs_total",
                "Repairs of Redis state by kind",
                &["kind"],
            ),
            recoveries: counter_vec(
                "seckill_recoveries_total",
                "Recoveries after Redis lost its scripts, by result",
                &["result"],
            ),
            failovers_detected: counter(
                "seckill_redis_failovers_detected_total",
                "Redis primaries found unverified (promoted or restarted) and rebuilt",
            ),
            orders_expired: counter(
                "seckill_orders_expired_total",
                "Unpaid orders closed at their deadline",
            ),
            units_returned: counter(
                "seckill_units_returned_total",
                "Units given back to Redis stock",
            ),
            payments: counter_vec(
                "seckill_payments_total",
                "Payment notifications by result",
                &["result"],
            ),
            breaker_open: gauge_vec(
                "seckill_breaker_open",
                "1 while the circuit breaker of a dependency is open",
                &["dep"],
            ),
            queue_joins: counter_vec(
                "seckill_queue_joins_total",
                "Waiting-room joins: new tickets, and joins again that got the same ticket",
                &["kind"],
            ),
            queue_length: gauge_vec(
                "seckill_queue_length",
                "Tickets waiting (joined, not yet admitted) per queued sale",
                &["sale"],
            ),
            queue_admitted: gauge_vec(
                "seckill_queue_admitted",
                "Tickets admitted so far (the serving cursor) per queued sale",
                &["sale"],
            ),
            queue_expired: gauge_vec(
                "seckill_queue_expired",
                "Admissions that ran out unused (estimate: admitted longer ago than an \
                 admission lasts, less the orders placed by then) per queued sale",
                &["sale"],
            ),
            queue_rate: {
                let g = GaugeVec::new(
                    Opts::new(
                        "seckill_queue_admission_rate",
                        "Admissions a second over the last ten seconds per queued sale",
                    ),
                    &["sale"],
                )
                .expect("valid metric");
                registry
                    .register(Box::new(g.clone()))
                    .expect("unique metric");
                g
            },
            registry,
        };
        // Series that alerts and dashboards use exist from the start, at 0: an absent
        // series would make `rate(...) > x` silently never fire.
        for op in ["reserve", "xreadgroup", "xack"] {
            m.redis_errors.with_label_values(&[op]);
        }
        m.mysql_errors.with_label_values(&["insert_orders"]);
        m.mysql_duration.with_label_values(&["insert_orders"]);
        m.redis_duration.with_label_values(&["reserve"]);
        m.breaker_open.with_label_values(&["redis"]);
        for kind in ["release", "rebuild"] {
            m.repairs.with_label_values(&[kind]);
        }
        for result in [
            "paid",
            "already_paid",
            "refund_due",
            "refunded",
            "already_refunded",
            "forged",
        ] {
            m.payments.with_label_values(&[result]);
        }
        for outcome in ["queued", "sold_out", "duplicate", "error"] {
            m.reservations.with_label_values(&[outcome]);
        }
        m.http_requests.with_label_values(&["buy", "200"]);
        m.http_duration.with_label_values(&["buy"]);
        m
    }

    /// Sets the waiting room's gauges of one sale.
    pub fn observe_queue(&self, sale_id: u64, q: &crate::buy::queue::QueueState) {
        let sale = sale_id.to_string();
        let gauge = |g: &IntGaugeVec, v: u64| g.with_label_values(&[&sale]).set(v as i64);
        gauge(&self.queue_length, q.joined.saturating_sub(q.cursor));
        gauge(&self.queue_admitted, q.cursor);
        gauge(&self.queue_expired, q.lapsed);
        self.queue_rate
            .with_label_values(&[&sale])
            .set(q.rate_milli.unwrap_or(0) as f64 / 1000.0);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(buf).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
