//! The worker runtime every kind of worker shares (built-ins in the runner, HTTP, agents,
//! approvals): take jobs, run them with a timeout and a cancel signal, report start and result to
//! the runner, keep long jobs from being reclaimed, reclaim jobs of dead workers, drain on
//! shutdown, and let a step park until its result arrives through the API. A new kind needs only
//! its [`StepExecutor`] and its [`WorkerConfig`]; a worker service adds [`serve`].
//!
//! A worker service's `main` (see `examples/echo_worker.rs`):
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use baton_worker::{ServeOptions, StepExecutor, WorkerListeners, WorkerPool, WorkerServiceConfig};
//! # async fn run(executor: Arc<dyn StepExecutor>) -> Result<(), Box<dyn std::error::Error>> {
//! let config = WorkerServiceConfig::from_env(&baton_runtime::env::Env::os(), 8004)?;
//! let queue = baton_service::connect_queue(&config.redis_url, &config.redis_prefix).await?;
//! let shutdown = baton_runtime::shutdown_token();
//! let (metrics, metrics_listener) = baton_service::observability(9092, 6062, &shutdown).await?;
//! let listeners = WorkerListeners {
//!     health: Some(baton_service::bind(config.grpc_port, "GRPC_PORT").await?),
//!     metrics: metrics_listener,
//! };
//! let pool = WorkerPool::new(queue.clone(), config.worker).with_executor("http", executor);
//! let options = ServeOptions::new("baton.v1.HttpWorker", config.shutdown_drain);
//! baton_worker::serve(queue, pool, options, listeners, metrics, shutdown).await?;
//! # Ok(())
//! # }
//! ```

mod attempt;
mod cancels;
mod config;
mod executor;
mod heartbeat;
mod host;
mod kind;
mod pool;
mod reclaim;
mod reporter;
mod serve;
mod task;
mod usage;

pub use config::{
    CONCURRENCY_VAR, MAX_DELIVERIES_VAR, MAX_STEP_OUTPUT_BYTES_VAR, POLL_VAR, SHUTDOWN_GRACE_VAR,
    VISIBILITY_TIMEOUT_VAR, WORKER_ID_VAR, WorkerConfig, WorkerServiceConfig,
};
pub use executor::{StepExecutor, StepFailure, StepOutput};
pub use heartbeat::HEARTBEAT_EVERY;
pub use host::host_facts;
pub use pool::WorkerPool;
pub use serve::{ServeOptions, WorkerListeners, serve};
pub use usage::{ProcessSampler, Usage};
