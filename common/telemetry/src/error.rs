//! Errors returned by telemetry set-up; everything else in this crate degrades
//! gracefully (bad env values fall back to defaults with a warning).

use opentelemetry_otlp::ExporterBuildError;

/// Failure to install Baton's tracing pipeline.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP/gRPC span exporter could not be built (e.g. malformed endpoint).
    #[error("failed to build OTLP span exporter: {0}")]
    Exporter(#[from] ExporterBuildError),
    /// OTLP export was requested outside a Tokio runtime; the tonic channel
    /// needs one to run its connection tasks.
    #[error("OTLP export requires a Tokio runtime: call init from within one")]
    NoTokioRuntime,
}
