//! `baton-workflow-runner`: reads configuration from the environment and runs a runner replica.

use std::sync::Arc;

use anyhow::Context;
use baton_metrics::{Metrics, MetricsConfig};
use baton_queue::{RedisQueue, RedisQueueConfig};
use baton_runtime::{env::Env, redact_url};
use baton_store::PgStore;
use baton_workflow_runner::{Listeners, RunnerConfig};

/// jemalloc: many threads allocating and freeing batch buffers fragment glibc's allocator, which
/// showed up as a third of the runner's CPU in profiles.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Prometheus `/metrics` port unless `METRICS_PORT` says otherwise.
const DEFAULT_METRICS_PORT: u16 = 9091;

/// pprof port unless `PPROF_PORT` says otherwise (served only with `ENABLE_PPROF=true`).
const DEFAULT_PPROF_PORT: u16 = 6061;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = baton_telemetry::init("workflow-runner")?;
    let config = RunnerConfig::from_env(&Env::os())?;
    let store = PgStore::connect(&config.database_url, config.database_max_connections)
        .await
        .with_context(|| {
            format!(
                "cannot connect to Postgres at {}",
                redact_url(&config.database_url)
            )
        })?;
    store
        .migrate()
        .await
        .context("cannot migrate the database")?;
    let queue = RedisQueue::connect(RedisQueueConfig::new(
        &config.redis_url,
        &config.redis_prefix,
    ))
    .await
    .with_context(|| {
        format!(
            "cannot connect to Redis at {}",
            redact_url(&config.redis_url)
        )
    })?;
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", config.grpc_port))
        .await
        .with_context(|| format!("cannot listen on port {} (GRPC_PORT)", config.grpc_port))?;
    let metrics_config = MetricsConfig::from_env(DEFAULT_METRICS_PORT)?;
    let metrics_listener = match metrics_config.enabled {
        true => Some(
            tokio::net::TcpListener::bind(("0.0.0.0", metrics_config.port))
                .await
                .with_context(|| {
                    format!(
                        "cannot listen on port {} (METRICS_PORT)",
                        metrics_config.port
                    )
                })?,
        ),
        false => None,
    };
    let http_listener = tokio::net::TcpListener::bind(("0.0.0.0", config.http_port))
        .await
        .with_context(|| format!("cannot listen on port {} (HTTP_PORT)", config.http_port))?;
    let metrics = Arc::new(Metrics::new()?);
    let shutdown = baton_runtime::shutdown_token();
    let pprof = baton_pprof::PprofConfig::from_env(DEFAULT_PPROF_PORT)?;
    if pprof.enabled {
        let listener = tokio::net::TcpListener::bind(("0.0.0.0", pprof.port))
            .await
            .with_context(|| format!("cannot listen on port {} (PPROF_PORT)", pprof.port))?;
        tokio::spawn(baton_pprof::serve(listener, shutdown.clone()));
    }
    let listeners = Listeners {
        health: Some(listener),
        http: Some(http_listener),
        metrics: metrics_listener,
    };
    baton_workflow_runner::serve(
        Arc::new(store),
        Arc::new(queue),
        config,
        listeners,
        metrics,
        shutdown,
    )
    .await?;
    telemetry.shutdown();
    Ok(())
}
