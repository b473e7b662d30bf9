//! The host of a worker service: gRPC health (SERVING while the queue answers), Prometheus
//! metrics, and the pool until shutdown has drained it. Written once so every worker service's
//! `main` only reads its settings, connects to the queue (no database) and calls [`serve`].

use std::{sync::Arc, time::Duration};

use baton_metrics::Metrics;
use baton_queue::{QueueAdmin, QueueError};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::WorkerPool;

/// How often health asks the queue whether it answers.
const HEALTH_CHECK_EVERY: Duration = Duration::from_secs(2);

/// Where a worker service listens, each optional; bound by the caller, so tests can use port 0.
#[derive(Default)]
pub struct WorkerListeners {
    /// gRPC health (`grpc.health.v1`).
    pub health: Option<TcpListener>,
    /// Prometheus `/metrics`.
    pub metrics: Option<TcpListener>,
}

/// What tells one worker service from another to the outside.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The gRPC health service name reported beside the overall `""`: `baton.v1.HttpWorker`.
    pub health_service: String,
    /// After shutdown, how long the health port stays open reporting NOT_SERVING before it
    /// closes (`SHUTDOWN_DRAIN_DELAY`, see [`crate::WorkerServiceConfig`]).
    pub shutdown_drain: Duration,
    /// The health port's gRPC limits, as every Baton gRPC server has them (defaults unless
    /// [`ServeOptions::with_edge`] is given the service's `GrpcEdge::from_env`).
    pub edge: baton_service::GrpcEdge,
}

impl ServeOptions {
    pub fn new(health_service: impl Into<String>, shutdown_drain: Duration) -> Self {
        Self {
            health_service: health_service.into(),
            shutdown_drain,
            edge: baton_service::GrpcEdge::default(),
        }
    }

    pub fn with_edge(mut self, edge: baton_service::GrpcEdge) -> Self {
        self.edge = edge;
        self
    }
}

/// Serves `pool`'s kinds until `shutdown`: health reports NOT_SERVING at once, the pool stops
/// taking jobs and lets running ones finish within its grace, and the ports close after the
/// drain. `queue` is the queue the pool works on, asked for health. Fails when the pool cannot
/// join its kinds' streams; the servers stop with it.
pub async fn serve<Q>(
    queue: Arc<Q>,
    pool: WorkerPool,
    options: ServeOptions,
    listeners: WorkerListeners,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), QueueError>
where
    Q: QueueAdmin + ?Sized,
{
    // Cancelled at shutdown, or when the pool ends on its own.
    let stop = shutdown.child_token();
    // A JoinSet, so dropping this future stops every server it started.
    let mut servers = tokio::task::JoinSet::new();
    if let Some(listener) = listeners.metrics {
        let stop = stop.clone();
        servers.spawn(async move {
            if let Err(e) = baton_metrics::serve(listener, metrics, stop).await {
                tracing::error!(error = %e, "metrics server stopped");
            }
        });
    }
    if let Some(listener) = listeners.health {
        let (reporter, health) = tonic_health::server::health_reporter();
        baton_runtime::spawn_health_checks(
            reporter,
            vec![options.health_service.clone()],
            Arc::new(move || {
                let queue = queue.clone();
                Box::pin(async move { queue.ping().await.map_err(|e| e.to_string()) })
            }),
            HEALTH_CHECK_EVERY,
            stop.clone(),
        )
        .await;
        let drained = baton_runtime::drained(stop.clone(), options.shutdown_drain);
        let edge = options.edge.clone();
        servers.spawn(async move {
            let limit = edge.max_message_bytes();
            let served = edge
                .server()
                .layer(edge.layer())
                .add_service(
                    health
                        .max_decoding_message_size(limit)
                        .max_encoding_message_size(limit),
                )
                .serve_with_incoming_shutdown(edge.incoming(listener), drained)
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "health server stopped");
            }
        });
    }
    let kinds = pool.kinds();
    tracing::info!(?kinds, worker_id = %pool.config().worker_id, service = %options.health_service, "worker running");
    let worked = pool.run(shutdown).await;
    if let Err(e) = &worked {
        tracing::error!(error = %e, ?kinds, "the workers cannot join their job streams");
    }
    stop.cancel();
    while servers.join_next().await.is_some() {}
    tracing::info!(?kinds, "worker stopped");
    worked
}
