//! The http-worker: `http` steps (templated requests with limits and an SSRF guard) on the
//! shared worker runtime. The runtime consumes, reports, heartbeats and drains; this crate is the
//! executor and its configuration, so `baton dev` can run the same worker in its own process.

pub mod config;
pub mod executor;
pub mod guard;
pub mod request;
pub mod secrets;

use std::sync::Arc;

use baton_metrics::Metrics;
use baton_queue::Queue;
use baton_worker::{ServeOptions, WorkerListeners, WorkerPool};
use tokio_util::sync::CancellationToken;

pub use config::HttpWorkerConfig;
pub use executor::HttpExecutor;

/// The step kind this worker serves.
pub const KIND: &str = "http";
/// The gRPC health service reported beside `""`.
pub const HEALTH_SERVICE: &str = "baton.v1.HttpWorker";

/// Why the worker could not run.
#[derive(Debug, thiserror::Error)]
pub enum HttpWorkerError {
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("HTTP_WORKER_CA_FILE: cannot read {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error(transparent)]
    Queue(#[from] baton_queue::QueueError),
}

/// The worker pool for `http` steps on `queue`, as [`serve`] runs it and `baton dev` embeds it.
pub fn pool(
    queue: Arc<dyn Queue>,
    config: &HttpWorkerConfig,
    metrics: Arc<Metrics>,
) -> Result<WorkerPool, HttpWorkerError> {
    let extra_roots = match &config.ca_file {
        None => Vec::new(),
        Some(path) => {
            let failed = |reason: String| HttpWorkerError::CaFile {
                path: path.display().to_string(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| failed(e.to_string()))?;
            let roots =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| failed(e.to_string()))?;
            if roots.is_empty() {
                return Err(failed("it holds no PEM certificate".to_owned()));
            }
            roots
        }
    };
    let executor = HttpExecutor::new(
        config.guard.clone(),
        config.caps,
        config.secrets.clone(),
        metrics.clone(),
    )?
    .with_roots(extra_roots)?;
    Ok(WorkerPool::new(queue, config.service.worker.clone())
        .with_metrics(metrics)
        .with_executor(KIND, Arc::new(executor)))
}

/// Serves `http` steps until `shutdown`, then drains.
pub async fn serve(
    queue: Arc<dyn Queue>,
    config: HttpWorkerConfig,
    listeners: WorkerListeners,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), HttpWorkerError> {
    tracing::info!(guard = %config.guard, "http-worker starting");
    let pool = pool(queue.clone(), &config, metrics.clone())?;
    let options = ServeOptions::new(HEALTH_SERVICE, config.service.shutdown_drain);
    baton_worker::serve(queue, pool, options, listeners, metrics, shutdown).await?;
    Ok(())
}
