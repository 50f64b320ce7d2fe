//! The backend's Prometheus metrics: one registry, created at start and passed down.
//! Names are part of the contract with the dashboards and alert rules in `ops/`.

use prometheus::{
    CounterVec, Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter,
    IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
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
    pub writer_fenced: IntCounter,
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
    /// Payments whose money is owed back, not yet confirmed refunded (at the last look).
    pub refunds_due: IntGauge,
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
    /// Sales retired from the active set by this backend's writer.
    pub sales_retired: IntCounter,
    /// Sales in the active set at the last look.
    pub active_sales: IntGauge,
    /// Captchas drawn, by how: ahead (the pool's drawer, in idle time) or on_demand (the
    /// pool was empty when a shopper asked); and the CPU seconds their drawing took.
    pub captcha_drawn: IntCounterVec,
    pub captcha_draw_cpu: CounterVec,
    /// Pictures in the pool, ready to hand out, and how many it holds when full.
    pub captcha_pool_ready: IntGauge,
    pub captcha_pool_capacity: IntGauge,
    /// Sales with per-sale series now (see [`Metrics::keep_sales`]).
    per_sale: std::sync::Mutex<std::collections::HashSet<u64>>,
}

fn latency_buckets() -> Vec<f64> {
    vec![
        0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
    ]
}

/// Creates metrics and registers each once (a name registered twice is a programming error).
struct Registrar<'a>(&'a Registry);

impl Registrar<'_> {
    fn add<M: prometheus::core::Collector + Clone + 'static>(&self, m: M) -> M {
        self.0
            .register(Box::new(m.clone()))
            .expect("each metric name is registered once");
        m
    }
    fn counter(&self, name: &str, help: &str) -> IntCounter {
        self.add(IntCounter::new(name, help).expect("valid metric"))
    }
    fn counters(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.add(IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
    }
    fn gauges(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.add(IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"))
    }
    fn float_gauges(&self, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
        self.add(GaugeVec::new(Opts::new(name, help), labels).expect("valid metric"))
    }
    fn latencies(&self, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
        let opts = HistogramOpts::new(name, help).buckets(latency_buckets());
        self.add(HistogramVec::new(opts, labels).expect("valid metric"))
    }
    fn histogram(&self, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
        let opts = HistogramOpts::new(name, help).buckets(buckets);
        self.add(Histogram::with_opts(opts).expect("valid metric"))
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let r = Registrar(&registry);
        let sale = &["sale"];
        let m = Metrics {
            http_requests: r.counters("seckill_http_requests_total", "HTTP requests by route and status", &["route", "status"]),
            http_duration: r.latencies("seckill_http_request_duration_seconds", "HTTP request latency by route", &["route"]),
            inflight: r.add(IntGauge::new("seckill_http_inflight", "Requests being served now").expect("valid metric")),
            reservations: r.counters("seckill_reservations_total", "Buy attempts by outcome", &["outcome"]),
            cache: r.counters("seckill_cache_requests_total", "Local cache lookups by cache and result", &["cache", "result"]),
            redis_duration: r.latencies("seckill_redis_duration_seconds", "Redis call latency by operation", &["op"]),
            redis_errors: r.counters("seckill_redis_errors_total", "Redis call failures by operation", &["op"]),
            mysql_duration: r.latencies("seckill_mysql_duration_seconds", "MariaDB call latency by operation", &["op"]),
            mysql_errors: r.counters("seckill_mysql_errors_total", "MariaDB call failures by operation", &["op"]),
            orders_written: r.counter("seckill_orders_written_total", "Orders inserted into MariaDB by the writer"),
            writer_batch: r.histogram("seckill_writer_batch_size", "Orders per MariaDB batch", vec![1.0, 5.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0]),
            reserve_batch: r.histogram("seckill_reserve_batch_size", "Buys reserved per Redis script call", vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
            writer_reclaimed: r.counter("seckill_writer_reclaimed_total", "Stream entries taken over from a dead writer"),
            writer_fenced: r.counter("seckill_writer_fenced_total", "Batches refused by the fence: read before their sale was rebuilt after a Redis failover (docs/partitions.md)"),
            writer_dead_letters: r.counter("seckill_writer_dead_letters_total", "Stream entries moved to the dead-letter stream"),
            sales_retired: r.counter("seckill_sales_retired_total", "Sales retired from the active set by this writer (quiet and drained)"),
            active_sales: r.add(IntGauge::new("seckill_active_sales", "Sales in the active set (busy: selling, units coming back, a line moving, orders not yet written) at this backend's last look").expect("valid metric")),
            stream_backlog: r.gauges("seckill_stream_backlog", "Orders queued in a busy sale's stream and not yet acknowledged by a writer", sale),
            stock_left: r.gauges("seckill_stock_left", "Units left in Redis per busy sale", sale),
            stock_drift: r.gauges("seckill_stock_drift", "Initial stock minus Redis stock left minus live orders, per busy sale (must be 0)", sale),
            repairs: r.counters("seckill_repairs_total", "Repairs of Redis state by kind", &["kind"]),
            recoveries: r.counters("seckill_recoveries_total", "Recoveries after Redis lost its scripts, by result", &["result"]),
            failovers_detected: r.counter("seckill_redis_failovers_detected_total", "Redis primaries found unverified (promoted or restarted) and rebuilt"),
            orders_expired: r.counter("seckill_orders_expired_total", "Unpaid orders closed at their deadline"),
            units_returned: r.counter("seckill_units_returned_total", "Units given back to Redis stock"),
            refunds_due: r.add(IntGauge::new("seckill_refunds_due", "Payments whose money is owed back and not yet confirmed refunded, at the lifecycle loop's last look").expect("valid metric")),
            payments: r.counters("seckill_payments_total", "Payment notifications by result", &["result"]),
            breaker_open: r.gauges("seckill_breaker_open", "1 while the circuit breaker of a dependency is open", &["dep"]),
            queue_joins: r.counters("seckill_queue_joins_total", "Waiting-room joins: new tickets, and joins again that got the same ticket", &["kind"]),
            queue_length: r.gauges("seckill_queue_length", "Tickets waiting (joined, not yet admitted) per queued sale", sale),
            queue_admitted: r.gauges("seckill_queue_admitted", "Tickets admitted so far (the serving cursor) per queued sale", sale),
            queue_expired: r.gauges("seckill_queue_expired", "Admissions that ran out unused (estimate: admitted longer ago than an admission lasts, less the orders placed by then) per queued sale", sale),
            queue_rate: r.float_gauges("seckill_queue_admission_rate", "Admissions a second over the last ten seconds per queued sale", sale),
            captcha_drawn: r.counters("seckill_captcha_drawn_total", "Captcha pictures drawn, by how: ahead (the pool's drawer, in idle time) or on_demand (the pool was empty)", &["how"]),
            captcha_draw_cpu: r.add(CounterVec::new(Opts::new("seckill_captcha_draw_cpu_seconds_total", "CPU seconds spent drawing captcha pictures, by how"), &["how"]).expect("valid metric")),
            captcha_pool_ready: r.add(IntGauge::new("seckill_captcha_pool_ready", "Captcha pictures drawn ahead and ready to hand out").expect("valid metric")),
            captcha_pool_capacity: r.add(IntGauge::new("seckill_captcha_pool_capacity", "Captcha pictures the pool holds when full (SECKILL_CAPTCHA_POOL; in memory at most 4,096)").expect("valid metric")),
            per_sale: std::sync::Mutex::new(std::collections::HashSet::new()),
            registry,
        };
        m.start_at_zero();
        m
    }

    /// Series that alerts and dashboards use exist from the start, at 0: an absent series
    /// would make `rate(...) > x` silently never fire.
    fn start_at_zero(&self) {
        for op in ["reserve", "xreadgroup", "xack"] {
            self.redis_errors.with_label_values(&[op]);
        }
        self.mysql_errors.with_label_values(&["insert_orders"]);
        self.mysql_duration.with_label_values(&["insert_orders"]);
        self.redis_duration.with_label_values(&["reserve"]);
        self.breaker_open.with_label_values(&["redis"]);
        for kind in ["release", "rebuild"] {
            self.repairs.with_label_values(&[kind]);
        }
        for result in [
            "paid",
            "already_paid",
            "refund_due",
            "refunded",
            "already_refunded",
            "forged",
        ] {
            self.payments.with_label_values(&[result]);
        }
        for outcome in ["queued", "sold_out", "duplicate", "error"] {
            self.reservations.with_label_values(&[outcome]);
        }
        self.http_requests.with_label_values(&["buy", "200"]);
        self.http_duration.with_label_values(&["buy"]);
    }

    /// The captcha pool's counters, these series.
    pub fn captcha_counters(&self) -> crate::tokens::captcha::pool::Counters {
        crate::tokens::captcha::pool::Counters {
            ahead: self.captcha_drawn.with_label_values(&["ahead"]),
            on_demand: self.captcha_drawn.with_label_values(&["on_demand"]),
            cpu_ahead: self.captcha_draw_cpu.with_label_values(&["ahead"]),
            cpu_on_demand: self.captcha_draw_cpu.with_label_values(&["on_demand"]),
            ready: self.captcha_pool_ready.clone(),
            capacity: self.captcha_pool_capacity.clone(),
        }
    }

    /// The gauge of one sale (its series is remembered, to be removed by [`Metrics::keep_sales`]).
    pub fn sale_gauge(&self, vec: &IntGaugeVec, sale_id: u64) -> IntGauge {
        self.per_sale
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sale_id);
        vec.with_label_values(&[&sale_id.to_string()])
    }

    /// Removes every per-sale series of the sales not in `busy`: a sale's series exist while
    /// it is busy (in the active set) and go when it goes quiet, so their number follows the
    /// sales at work, not the sales that exist.
    pub fn keep_sales(&self, busy: &std::collections::HashSet<u64>) {
        let gone: Vec<u64> = {
            let mut tracked = self.per_sale.lock().unwrap_or_else(|p| p.into_inner());
            let gone = tracked
                .iter()
                .filter(|s| !busy.contains(s))
                .copied()
                .collect();
            tracked.retain(|s| busy.contains(s));
            gone
        };
        for sale in gone {
            let label = sale.to_string();
            for vec in [
                &self.stream_backlog,
                &self.stock_left,
                &self.stock_drift,
                &self.queue_length,
                &self.queue_admitted,
                &self.queue_expired,
            ] {
                let _ = vec.remove_label_values(&[&label]);
            }
            let _ = self.queue_rate.remove_label_values(&[&label]);
        }
    }

    /// Sets the waiting room's gauges of one sale.
    pub fn observe_queue(&self, sale_id: u64, q: &crate::buy::queue::QueueState) {
        let gauge = |g: &IntGaugeVec, v: u64| self.sale_gauge(g, sale_id).set(v as i64);
        gauge(&self.queue_length, q.joined.saturating_sub(q.cursor));
        gauge(&self.queue_admitted, q.cursor);
        gauge(&self.queue_expired, q.lapsed);
        self.queue_rate
            .with_label_values(&[&sale_id.to_string()])
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
