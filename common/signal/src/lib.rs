//! Each service's plain-HTTP port: `GET /health` for load balancers and `GET /metrics`, the raw
//! signal, a versioned JSON document for sidecars and scripts. Every section is built on its own,
//! so a failing source turns only that section into `{"error": …}` and the document still answers.

mod document;
mod http;

pub use document::{SCHEMA_VERSION, SignalSources, raw_signal};
pub use http::{RAW_SIGNAL_ENABLED_VAR, SignalConfig, router, serve};
