//! Typed errors of the registry. A bad `ENABLE_METRICS` or `METRICS_PORT` is the shared
//! [`baton_runtime::env::ConfigError`], like every other variable.

/// Building or registering the metrics failed.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Prometheus rejected a metric definition or a duplicate registration.
    #[error("prometheus: {0}")]
    Prometheus(#[from] prometheus::Error),
}
