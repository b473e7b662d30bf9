//! The workflow-runner: walks each run's DAG (see [`runner`]) and, unless disabled, runs the
//! built-in step kinds in the same process. `main.rs` only reads configuration and calls [`serve`].

pub mod builtins;
mod config;
pub mod runner;

use std::{sync::Arc, time::Duration};

use baton_metrics::Metrics;
use baton_queue::{Queue, QueueError, WorkerQueue};
use baton_store::{Store, StoreError};
use baton_worker::WorkerPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::RunnerConfig;
pub use runner::Runner;

/// The gRPC health service name of the runner.
pub const HEALTH_SERVICE: &str = "baton.v1.WorkflowRunner";

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Config(#[from] baton_runtime::env::ConfigError),
}

impl RunnerError {
    /// A dependency is down or busy (not the message's fault): wait and retry, never count it
    /// against the message.
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            Self::Store(StoreError::Unavailable(_) | StoreError::Conflict(_))
                | Self::Queue(QueueError::Unavailable(_))
        )
    }
}

/// The worker pool of the built-in kinds, with the runner's worker settings.
pub fn builtin_pool(queue: Arc<dyn WorkerQueue>, config: &RunnerConfig) -> WorkerPool {
    builtins::with_builtins(WorkerPool::new(queue, config.worker.clone()))
}

/// Where a runner listens, each optional; bound by the caller, so tests can use port 0.
#[derive(Default)]
pub struct Listeners {
    /// gRPC health.
    pub health: Option<TcpListener>,
    /// `/health` and the raw-signal JSON.
    pub http: Option<TcpListener>,
    /// Prometheus `/metrics`.
    pub metrics: Option<TcpListener>,
}

/// Runs a runner replica (and the built-in workers, when enabled) until `shutdown`, serving gRPC
/// health on `health_listener` when given.
pub async fn serve(
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    config: RunnerConfig,
    listeners: Listeners,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), RunnerError> {
    let Listeners {
        health: health_listener,
        http: http_listener,
        metrics: metrics_listener,
    } = listeners;
    let runner = Arc::new(Runner::new(
        store.clone(),
        queue.clone(),
        config.clone(),
        metrics.clone(),
    ));
    // A JoinSet, so dropping this future stops every task it started.
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(runner.clone().run_inbox(shutdown.clone()));
    tasks.spawn(runner.clone().run_timers(shutdown.clone()));
    tasks.spawn(runner.clone().run_recovery(shutdown.clone()));
    tasks.spawn(runner.clone().run_admission(shutdown.clone()));
    tasks.spawn(runner.clone().run_maintenance(shutdown.clone()));
    tasks.spawn(
        runner
            .clone()
            .run_retention(queue.clone(), shutdown.clone()),
    );
    if let Some(listener) = http_listener {
        let sources = baton_signal::SignalSources {
            service: "workflow-runner",
            store: store.clone(),
            queue: queue.clone(),
            kinds: baton_workflow::BUILTIN_KINDS
                .iter()
                .map(|k| (*k).to_owned())
                .collect(),
        };
        let router = baton_signal::router(
            sources,
            baton_signal::SignalConfig::from_env(&baton_runtime::env::Env::os())?,
        );
        let token = shutdown.clone();
        tasks.spawn(async move {
            if let Err(e) = baton_signal::serve(listener, router, token).await {
                tracing::error!(error = %e, "HTTP server stopped");
            }
        });
    }
    if let Some(listener) = metrics_listener {
        let (metrics, token) = (metrics.clone(), shutdown.clone());
        tasks.spawn(async move {
            if let Err(e) = baton_metrics::serve(listener, metrics, token).await {
                tracing::error!(error = %e, "metrics server stopped");
            }
        });
    }
    if config.builtin_workers {
        let pool = builtin_pool(queue.clone(), &config).with_metrics(metrics.clone());
        let token = shutdown.clone();
        tasks.spawn(async move {
            if let Err(e) = pool.run(token).await {
                tracing::error!(error = %e, "built-in workers stopped");
            }
        });
    }
    if let Some(listener) = health_listener {
        let (reporter, health) = tonic_health::server::health_reporter();
        let check_store = store.clone();
        let check_queue = queue.clone();
        let check_runner = runner.clone();
        // Three inbox reads' worth: the loop reads with a one-second block.
        let moving_window = Duration::from_secs(10);
        baton_runtime::spawn_health_checks(
            reporter,
            vec![HEALTH_SERVICE.to_owned()],
            Arc::new(move || {
                let store = check_store.clone();
                let queue = check_queue.clone();
                let runner = check_runner.clone();
                Box::pin(async move {
                    store.ping().await.map_err(|e| e.to_string())?;
                    queue.ping().await.map_err(|e| e.to_string())?;
                    runner.progress().check(moving_window)
                })
            }),
            Duration::from_secs(2),
            shutdown.clone(),
        )
        .await;
        let drained = baton_runtime::drained(shutdown.clone(), config.shutdown_drain);
        let edge = baton_service::GrpcEdge::from_env(&baton_runtime::env::Env::os())?;
        let limit = edge.max_message_bytes();
        let health = health
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        tasks.spawn(async move {
            let served = edge
                .server()
                .layer(edge.layer())
                .add_service(health)
                .serve_with_incoming_shutdown(edge.incoming(listener), drained)
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "health server stopped");
            }
        });
    }
    tracing::info!(
        consumer = %config.consumer,
        builtin_workers = config.builtin_workers,
        default_max_parallel = config.default_max_parallel,
        "workflow-runner running"
    );
    while tasks.join_next().await.is_some() {}
    tracing::info!("workflow-runner stopped");
    Ok(())
}
