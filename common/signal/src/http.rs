//! The HTTP port: `/health` (200, or 503 when Postgres or Redis does not answer) and `/metrics`
//! (the raw signal; 404 when `ORCH_METRICS_ENABLED=false`).

use std::sync::Arc;

use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::{SignalSources, raw_signal};

/// Whether `/metrics` answers: `ORCH_METRICS_ENABLED` (default true).
#[derive(Clone, Copy, Debug)]
pub struct SignalConfig {
    pub raw_signal_enabled: bool,
}

impl SignalConfig {
    /// Reads `ORCH_METRICS_ENABLED`; anything but `false`/`0`/`no`/`off` keeps it on.
    pub fn from_env() -> Self {
        let off = std::env::var("ORCH_METRICS_ENABLED")
            .map(|v| {
                matches!(
                    v.trim().to_ascii_lowercase().as_str(),
                    "false" | "0" | "no" | "off"
                )
            })
            .unwrap_or(false);
        Self {
            raw_signal_enabled: !off,
        }
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
