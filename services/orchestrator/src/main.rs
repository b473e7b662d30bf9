//! `baton-orchestrator`: reads configuration from the environment and serves the public API.

use baton_orchestrator::{Listeners, OrchestratorConfig};
use baton_runtime::{args::About, env::Env};
use baton_service::{bind, bind_admin, connect, observability};

/// jemalloc: many threads allocating and freeing batch buffers fragment glibc's allocator, which
/// showed up as a third of the runner's CPU in profiles.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Prometheus `/metrics` port unless `METRICS_PORT` says otherwise.
const DEFAULT_METRICS_PORT: u16 = 9090;
/// pprof port unless `PPROF_PORT` says otherwise (served only with `ENABLE_PPROF=true`).
const DEFAULT_PPROF_PORT: u16 = 6060;

const ABOUT: About = About {
    binary: "baton-orchestrator",
    summary: "serves Baton's public gRPC API (workflows, runs, keys, dead letters).",
    settings: &[
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/baton"),
        ("REDIS_URL", "redis://127.0.0.1:6379"),
        ("BATON_REDIS_PREFIX", "baton"),
        ("BATON_EXTRA_KINDS", "none; e.g. http"),
        ("GRPC_PORT", "8002"),
        ("HTTP_PORT", "8081"),
        ("METRICS_PORT", "9090"),
        ("PPROF_PORT, ENABLE_PPROF", "6060, false"),
        ("LOG_LEVEL", "info"),
    ],
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ABOUT.handle_command_line();
    let telemetry = baton_telemetry::init("orchestrator")?;
    let config = OrchestratorConfig::from_env(&Env::os())?;
    let (store, queue) = connect(
        &config.database_url,
        config.database_max_connections,
        &config.redis_url,
        &config.redis_prefix,
    )
    .await?;
    let shutdown = baton_runtime::shutdown_token();
    let (metrics, metrics_listener) =
        observability(DEFAULT_METRICS_PORT, DEFAULT_PPROF_PORT, &shutdown).await?;
    let listeners = Listeners {
        grpc: bind(config.grpc_port, "GRPC_PORT").await?,
        http: Some(bind_admin(config.http_port, "HTTP_PORT").await?),
        metrics: metrics_listener,
    };
    baton_orchestrator::serve(store, queue, config, listeners, metrics, shutdown).await?;
    telemetry.shutdown();
    Ok(())
}
