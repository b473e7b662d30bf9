//! The HTTP port: `/health` (200, or 503 when Postgres or Redis does not answer) and `/metrics`
//! (the raw signal; 404 when `ORCH_METRICS_ENABLED=false`).

use std::sync::Arc;

use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use baton_runtime::env::{ConfigError, Env};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::{SignalSources, raw_signal};

/// `ORCH_METRICS_ENABLED`: whether `/metrics` serves the raw signal (default true).
pub const RAW_SIGNAL_ENABLED_VAR: &str = "ORCH_METRICS_ENABLED";

/// Whether `/metrics` answers: `ORCH_METRICS_ENABLED` (default true).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignalConfig {
    pub raw_signal_enabled: bool,
}

impl SignalConfig {
    /// Reads `ORCH_METRICS_ENABLED` (`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`; unset or
    /// empty keeps the raw signal on); any other value is an error naming the variable.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            raw_signal_enabled: env.bool_or(RAW_SIGNAL_ENABLED_VAR, true)?,
        })
    }
}

struct AppState {
    sources: SignalSources,
    config: SignalConfig,
}

pub fn router(sources: SignalSources, config: SignalConfig) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(Arc::new(AppState { sources, config }))
}

async fn health(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let s = &state.sources;
    let (db, redis) = tokio::join!(s.store.ping(), s.queue.ping());
    let mut body = json!({ "service": s.service, "status": "ok" });
    let mut code = StatusCode::OK;
    if let Err(e) = db {
        body["status"] = json!("unavailable");
        body["postgres"] = json!(e.to_string());
        code = StatusCode::SERVICE_UNAVAILABLE;
    }
    if let Err(e) = redis {
        body["status"] = json!("unavailable");
        body["redis"] = json!(e.to_string());
        code = StatusCode::SERVICE_UNAVAILABLE;
    }
    (code, Json(body))
}

async fn metrics(State(state): State<Arc<AppState>>) -> axum::response::Response {
    if !state.config.raw_signal_enabled {
        return (
            StatusCode::NOT_FOUND,
            "the raw signal is off (ORCH_METRICS_ENABLED=false)\n",
        )
            .into_response();
    }
    Json(raw_signal(&state.sources).await).into_response()
}

/// Serves `router` on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The raw signal's switch as read from `ORCH_METRICS_ENABLED` set to `value`.
    fn enabled(value: Option<&str>) -> bool {
        let env = Env::from_pairs(value.map(|v| (RAW_SIGNAL_ENABLED_VAR, v)));
        SignalConfig::from_env(&env)
            .expect("a valid value")
            .raw_signal_enabled
    }

    #[test]
    fn raw_signal_is_on_unless_turned_off() {
        for on in [None, Some(" "), Some("TRUE"), Some("1"), Some("yes")] {
            assert!(enabled(on), "{on:?}");
        }
        for off in ["false", "0", "no", "Off"] {
            assert!(!enabled(Some(off)), "{off}");
        }
    }

    #[test]
    fn a_bad_value_names_the_variable() {
        let env = Env::from_pairs([(RAW_SIGNAL_ENABLED_VAR, "disabled")]);
        let err = SignalConfig::from_env(&env).unwrap_err();
        assert_eq!(err.name, RAW_SIGNAL_ENABLED_VAR);
        assert_eq!(err.value, "disabled");
        assert!(err.to_string().contains("ORCH_METRICS_ENABLED"), "{err}");
    }
}
