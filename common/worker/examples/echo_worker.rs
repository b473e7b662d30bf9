//! A whole worker service: the `echo` kind (a step's output is its input) served from Redis
//! alone, with gRPC health, Prometheus metrics and a graceful drain on SIGTERM. Run it beside a
//! runner started with `BATON_BUILTIN_WORKERS=false` and it takes the runner's `echo` steps:
//!
//! ```text
//! REDIS_URL=redis://127.0.0.1:6379 GRPC_PORT=8099 cargo run -p baton-worker --example echo_worker
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use baton_proto::v1;
use baton_runtime::env::Env;
use baton_worker::{
    ServeOptions, StepExecutor, StepFailure, StepOutput, WorkerListeners, WorkerPool,
    WorkerServiceConfig,
};
use tokio_util::sync::CancellationToken;

/// The gRPC health service this worker reports beside `""`.
const HEALTH_SERVICE: &str = "baton.examples.EchoWorker";
/// Ports unless `GRPC_PORT`, `METRICS_PORT` or `PPROF_PORT` say otherwise; outside the ports
/// table, so the example runs beside a whole Baton.
const DEFAULT_GRPC_PORT: u16 = 8099;
const DEFAULT_METRICS_PORT: u16 = 9099;
const DEFAULT_PPROF_PORT: u16 = 6099;

struct Echo;

#[async_trait]
impl StepExecutor for Echo {
    async fn execute(
        &self,
        _: &v1::Job,
        input: serde_json::Value,
        _: CancellationToken,
    ) -> Result<StepOutput, StepFailure> {
        Ok(input.into())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = baton_telemetry::init("echo-worker")?;
    let config = WorkerServiceConfig::from_env(&Env::os(), DEFAULT_GRPC_PORT)?;
    let queue = baton_service::connect_queue(&config.redis_url, &config.redis_prefix).await?;
    let shutdown = baton_runtime::shutdown_token();
    let (metrics, metrics_listener) =
        baton_service::observability(DEFAULT_METRICS_PORT, DEFAULT_PPROF_PORT, &shutdown).await?;
    let listeners = WorkerListeners {
        health: Some(baton_service::bind(config.grpc_port, "GRPC_PORT").await?),
        metrics: metrics_listener,
    };
    let pool = WorkerPool::new(queue.clone(), config.worker).with_executor("echo", Arc::new(Echo));
    let options = ServeOptions::new(HEALTH_SERVICE, config.shutdown_drain);
    baton_worker::serve(queue, pool, options, listeners, metrics, shutdown).await?;
    telemetry.shutdown();
    Ok(())
}
