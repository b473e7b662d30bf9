//! Infrastructure metrics: queue backlog gauges and Postgres/Redis operation latency, so a slow
//! run can be blamed on the backend rather than on the workflow.
//!
//! Operation latencies use [`OPERATION_BUCKETS`] (0.1 ms to 10 s): store round trips are much
//! shorter than orchestration work.

use prometheus::{HistogramOpts, HistogramVec, IntGauge, IntGaugeVec, Opts, Registry};

use crate::MetricsError;

/// Gauge `baton_queue_depth{queue}`: messages in the queue (stream length).
pub const BATON_QUEUE_DEPTH: &str = "baton_queue_depth";
/// Gauge `baton_queue_pending{queue}`: messages delivered but not yet acknowledged.
pub const BATON_QUEUE_PENDING: &str = "baton_queue_pending";
/// Gauge `baton_dead_letters`: messages parked in the dead-letter queue.
pub const BATON_DEAD_LETTERS: &str = "baton_dead_letters";
/// Histogram `baton_postgres_operation_seconds{operation}`.
pub const BATON_POSTGRES_OPERATION_SECONDS: &str = "baton_postgres_operation_seconds";
/// Histogram `baton_redis_operation_seconds{operation}`.
pub const BATON_REDIS_OPERATION_SECONDS: &str = "baton_redis_operation_seconds";

/// Bucket bounds in seconds for single Postgres/Redis operations.
pub const OPERATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Queue gauges and store latency histograms, registered in one registry.
#[derive(Clone)]
pub(crate) struct InfraMetrics {
    queue_depth: IntGaugeVec,
    queue_pending: IntGaugeVec,
    dead_letters: IntGauge,
    postgres: HistogramVec,
    redis: HistogramVec,
}

impl InfraMetrics {
    pub(crate) fn register(registry: &Registry) -> Result<Self, MetricsError> {
        let queue_depth = IntGaugeVec::new(
            Opts::new(BATON_QUEUE_DEPTH, "Messages currently in the queue."),
            &["queue"],
        )?;
        let queue_pending = IntGaugeVec::new(
            Opts::new(
                BATON_QUEUE_PENDING,
                "Messages delivered to a consumer but not yet acknowledged.",
            ),
            &["queue"],
        )?;
        let dead_letters = IntGauge::new(
            BATON_DEAD_LETTERS,
            "Messages parked in the dead-letter queue.",
        )?;
        let postgres = operation_histogram(
            BATON_POSTGRES_OPERATION_SECONDS,
            "Postgres operation latency in seconds.",
        )?;
        let redis = operation_histogram(
            BATON_REDIS_OPERATION_SECONDS,
            "Redis operation latency in seconds.",
        )?;
        registry.register(Box::new(queue_depth.clone()))?;
        registry.register(Box::new(queue_pending.clone()))?;
        registry.register(Box::new(dead_letters.clone()))?;
        registry.register(Box::new(postgres.clone()))?;
        registry.register(Box::new(redis.clone()))?;
        Ok(Self {
            queue_depth,
            queue_pending,
            dead_letters,
            postgres,
            redis,
        })
    }

    pub(crate) fn set_queue(&self, queue: &str, depth: u64, pending: u64) {
        self.queue_depth
            .with_label_values(&[queue])
            .set(saturating_i64(depth));
        self.queue_pending
            .with_label_values(&[queue])
            .set(saturating_i64(pending));
    }

    pub(crate) fn set_dead_letters(&self, n: u64) {
        self.dead_letters.set(saturating_i64(n));
    }

    pub(crate) fn observe_postgres(&self, operation: &str, secs: f64) {
        self.postgres.with_label_values(&[operation]).observe(secs);
    }

    pub(crate) fn observe_redis(&self, operation: &str, secs: f64) {
        self.redis.with_label_values(&[operation]).observe(secs);
    }
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn operation_histogram(name: &str, help: &str) -> Result<HistogramVec, MetricsError> {
    let opts = HistogramOpts::new(name, help).buckets(OPERATION_BUCKETS.to_vec());
    Ok(HistogramVec::new(opts, &["operation"])?)
}
