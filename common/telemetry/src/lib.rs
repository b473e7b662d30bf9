//! baton-telemetry
