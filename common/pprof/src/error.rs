//! Errors returned by the pprof endpoints, mapped to HTTP statuses.
//!
//! One type keeps the status-code decisions (400 vs 429 vs 501) in one place
//! and gives callers a plain-text reason that `go tool pprof` prints verbatim.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Why a pprof request failed.
#[derive(Debug, thiserror::Error)]
pub enum PprofError {
    #[error("invalid value for `seconds`: {value:?} (expected an integer from {min} to {max})")]
    InvalidSeconds { value: String, min: u64, max: u64 },
    #[error("a CPU profile is already being collected; retry when it finishes")]
    ProfileInProgress,
    #[error("server is shutting down; CPU profile aborted")]
    ShuttingDown,
    #[error("heap profiling is not enabled in this build: {0}")]
    HeapProfilingDisabled(String),
    #[error("profiler error: {0}")]
    Profiler(String),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl PprofError {
    /// The HTTP status this error is reported with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidSeconds { .. } => StatusCode::BAD_REQUEST,
            Self::ProfileInProgress => StatusCode::TOO_MANY_REQUESTS,
            Self::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Self::HeapProfilingDisabled(_) => StatusCode::NOT_IMPLEMENTED,
            Self::Profiler(_) | Self::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for PprofError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED {
            tracing::warn!(error = %self, "pprof request failed");
        }
        (status, format!("{self}\n")).into_response()
    }
}
