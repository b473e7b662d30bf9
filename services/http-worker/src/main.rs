//! `baton-http-worker`: reads configuration from the environment and serves `http` steps.

use std::sync::Arc;

use baton_http_worker::HttpWorkerConfig;
use baton_queue::Queue;
use baton_runtime::{args::About, env::Env};
use baton_worker::WorkerListeners;

/// Prometheus `/metrics` port unless `METRICS_PORT` says otherwise.
const DEFAULT_METRICS_PORT: u16 = 9092;
/// pprof port unless `PPROF_PORT` says otherwise (served only with `ENABLE_PPROF=true`).
const DEFAULT_PPROF_PORT: u16 = 6062;

const ABOUT: About = About {
    binary: "baton-http-worker",
    summary: "runs the `http` steps of workflows from the Redis queue, behind an SSRF guard.",
    settings: &[
        ("REDIS_URL", "redis://127.0.0.1:6379"),
        ("BATON_REDIS_PREFIX", "baton"),
        ("HTTP_WORKER_ALLOW", "none; e.g. 127.0.0.1,10.0.0.0/8"),
        ("HTTP_WORKER_CONCURRENCY", "256"),
        ("BATON_SECRET_<NAME>", "none"),
        ("HTTP_WORKER_SECRETS_DIR", "none"),
        ("GRPC_PORT", "8004 (health)"),
        ("METRICS_PORT", "9092"),
        ("PPROF_PORT, ENABLE_PPROF", "6062, false"),
        ("LOG_LEVEL", "info"),
    ],
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ABOUT.handle_command_line();
    let telemetry = baton_telemetry::init("http-worker")?;
    let config = HttpWorkerConfig::from_env(&Env::os())?;
    let queue: Arc<dyn Queue> =
        baton_service::connect_queue(&config.service.redis_url, &config.service.redis_prefix)
            .await?;
    let shutdown = baton_runtime::shutdown_token();
    let (metrics, metrics_listener) =
        baton_service::observability(DEFAULT_METRICS_PORT, DEFAULT_PPROF_PORT, &shutdown).await?;
    let listeners = WorkerListeners {
        health: Some(baton_service::bind(config.service.grpc_port, "GRPC_PORT").await?),
        metrics: metrics_listener,
    };
    baton_http_worker::serve(queue, config, listeners, metrics, shutdown).await?;
    telemetry.shutdown();
    Ok(())
}
