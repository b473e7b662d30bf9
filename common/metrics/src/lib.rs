//! Prometheus metrics shared by every Baton service: one [`Metrics`] registry per process, a
//! tower-style wrapper that records gRPC server metrics, and a tiny HTTP server for `/metrics`.
//!
//! Every histogram that measures orchestration work uses [`DURATION_BUCKETS`] (0.5 ms to one
//! hour), so one set of dashboards covers sub-millisecond steps and hour-long runs alike.
//!
//! Wiring, in a service's `main`:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use baton_metrics::{Metrics, MetricsConfig, RunOutcome};
//!
//! let config = MetricsConfig::from_env(&baton_runtime::env::Env::os(), 9100)?;
//! let metrics = Arc::new(Metrics::new()?);
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! if config.enabled {
//!     let listener = tokio::net::TcpListener::bind(("0.0.0.0", config.port)).await?;
//!     tokio::spawn(baton_metrics::serve(listener, Arc::clone(&metrics), shutdown.clone()));
//! }
//! metrics.run_started("acme/build@3");
//! metrics.run_ended("acme/build@3", RunOutcome::Completed, 12.5);
//! # Ok(())
//! # }
//! ```
//!
//! Example PromQL:
//!
//! ```text
//! # p95 run duration per definition
//! histogram_quantile(0.95, sum by (le, definition) (rate(orchestration_run_duration_seconds_bucket[5m])))
//! # mean step time
//! rate(orchestration_step_duration_seconds_sum[5m]) / rate(orchestration_step_duration_seconds_count[5m])
//! # steps that waited more than 5 s in the queue
//! orchestration_step_queue_seconds_count - ignoring(le) orchestration_step_queue_seconds_bucket{le="5"}
//! ```

mod auth;
mod config;
mod error;
mod grpc;
mod http;
mod infra;
mod orchestration;
mod outbound;
mod recovery;
mod registry;
mod retention;

pub use auth::{
    BATON_API_KEY_CHANGES_TOTAL, BATON_AUTH_DENIED_TOTAL, BATON_REQUESTS_LIMITED_TOTAL,
    DENY_REASONS,
};
pub use config::{ENABLE_METRICS_VAR, METRICS_PORT_VAR, MetricsConfig};
pub use error::MetricsError;
pub use grpc::{
    GRPC_SERVER_HANDLED_TOTAL, GRPC_SERVER_HANDLING_SECONDS, GRPC_SERVER_STARTED_TOTAL,
    GrpcMetricsFuture, GrpcMetricsLayer, GrpcMetricsService, GrpcType,
};
pub use http::{METRICS_PATH, serve};
pub use infra::{
    BATON_DEAD_LETTERS, BATON_POSTGRES_OPERATION_SECONDS, BATON_QUEUE_DEPTH, BATON_QUEUE_PENDING,
    BATON_REDIS_OPERATION_SECONDS, OPERATION_BUCKETS,
};
pub use orchestration::{
    BATON_RUN_STARTS_HELD_TOTAL, DURATION_BUCKETS, ORCHESTRATION_RUN_DURATION_SECONDS,
    ORCHESTRATION_RUNS_TOTAL, ORCHESTRATION_STEP_DURATION_SECONDS,
    ORCHESTRATION_STEP_QUEUE_SECONDS, RunOutcome,
};
pub use outbound::{
    BATON_HTTP_BLOCKED_TOTAL, BATON_HTTP_REQUEST_DURATION_SECONDS, BATON_HTTP_REQUESTS_TOTAL,
    BATON_HTTP_RESPONSE_BYTES_TOTAL,
};
pub use recovery::{
    BATON_FENCED_REPORTS_TOTAL, BATON_LEASES_RENEWED_TOTAL, BATON_STEPS_REDISPATCHED_TOTAL,
};
pub use registry::Metrics;
pub use retention::{
    BATON_CONSUMERS_REMOVED_TOTAL, BATON_DB_MAINTENANCE_TOTAL, BATON_RUNS_DELETED_TOTAL,
};
