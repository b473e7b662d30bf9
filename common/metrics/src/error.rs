//! Typed errors, so callers can tell a broken registry from a misconfigured environment.

/// Building or registering the metrics failed.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Prometheus rejected a metric definition or a duplicate registration.
    #[error("prometheus: {0}")]
    Prometheus(#[from] prometheus::Error),
}

/// An environment variable held a value that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A boolean flag was not one of `true`, `false`, `1`, `0`.
    #[error("{var}: expected true, false, 1 or 0, got {value:?}")]
    InvalidBool {
        /// The variable's name.
        var: &'static str,
        /// The value found.
        value: String,
    },
    /// A port was not a number in 1..=65535.
    #[error("{var}: expected a port number in 1..=65535, got {value:?}")]
    InvalidPort {
        /// The variable's name.
        var: &'static str,
        /// The value found.
        value: String,
    },
}
