//! baton-telemetry: Baton's shared tracing set-up (logs, OTLP span export) and
//! W3C trace-context propagation across gRPC calls and Redis job envelopes.
//!
//! Services call [`init`] once at start-up and keep the returned
//! [`TelemetryGuard`] alive until shutdown.

mod config;
mod error;
mod grpc;
mod init;
mod propagation;

pub use config::{
    DEFAULT_LOG_LEVEL, LogFormat, OtlpConfig, SamplerConfig, TelemetryConfig, default_service_name,
    parse_resource_attributes,
};
pub use error::TelemetryError;
pub use grpc::grpc_server_span;
pub use init::{TelemetryGuard, init, init_with};
pub use propagation::{
    inject_context, inject_into_metadata, set_parent, set_parent_from_headers, trace_id,
};
