//! Logging set-up: `LOG_LEVEL` (debug, info, warn, error, or a full filter; default info) and
//! `LOG_FORMAT` (`pretty` or `json`; default pretty).

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Installs the global subscriber. Calling it twice (as tests do) keeps the first.
pub fn init_logging(service: &str) {
    let level = crate::env::var("LOG_LEVEL").unwrap_or_else(|| "info".to_owned());
    let filter = EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = crate::env::var("LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("json"));
    let registry = tracing_subscriber::registry().with(filter);
    let installed = if json {
        registry
            .with(fmt::layer().json().with_current_span(true))
            .try_init()
    } else {
        registry.with(fmt::layer().with_target(false)).try_init()
    };
    if installed.is_ok() {
        tracing::info!(service, version = crate::VERSION, "starting");
    }
}
