//! `baton dev`: the orchestrator, the workflow-runner, the built-in workers and the http-worker in
//! one process, on one SQLite file that holds both the store and the queue. Same gRPC API, health,
//! metrics, pprof and raw signal as the separate services, on the same ports, so every client works
//! unchanged.
//! Every service that joins Baton adds its `serve` here too. With authentication on (the
//! default), it keeps a local admin key in the credentials file for the CLI ([`local_key`]).

mod config;
pub mod local_key;

use std::{net::SocketAddr, sync::Arc};

use baton_metrics::Metrics;
use baton_queue::{Queue, SqliteQueue};
use baton_store::{SqliteStore, Store};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::{DEFAULT_DB, DevConfig};
pub use local_key::{LocalKey, LocalKeyError, client_addr, ensure_local_key};

/// Why `baton dev` could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error(transparent)]
    Config(#[from] baton_runtime::env::ConfigError),
    #[error(transparent)]
    Open(#[from] baton_sqlite::OpenError),
    #[error("cannot prepare the database file")]
    Store(#[from] baton_store::StoreError),
    #[error("cannot prepare the queue in the database file")]
    Queue(#[from] baton_queue::QueueError),
    #[error(
        "cannot listen on {addr} for {what} (is another Baton running? --port and --free-side-ports choose other ports)"
    )]
    Bind {
        addr: SocketAddr,
        what: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Metrics(#[from] baton_metrics::MetricsError),
    #[error(transparent)]
    LocalKey(#[from] LocalKeyError),
    #[error("the orchestrator stopped")]
    Orchestrator(#[from] baton_orchestrator::ServeError),
    #[error("the workflow-runner stopped")]
    Runner(#[from] baton_workflow_runner::RunnerError),
    #[error("the http-worker stopped")]
    HttpWorker(#[from] baton_http_worker::HttpWorkerError),
}

/// The embedded backend: the store and the queue over one SQLite file.
pub struct EmbeddedBackend {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
}

impl EmbeddedBackend {
    /// Opens (creating and migrating when needed) the file at `path`.
    pub async fn open(path: &std::path::Path) -> Result<Self, DevError> {
        let pool = baton_sqlite::open(path, 8).await?;
        let store = SqliteStore::from_pool(pool.clone());
        store.migrate().await?;
        let queue = SqliteQueue::from_pool(pool).await?;
        Ok(Self {
            store: Arc::new(store),
            queue: Arc::new(queue),
        })
    }
}

/// Where each part of the platform listens, once bound.
#[derive(Clone, Debug)]
pub struct DevAddrs {
    /// The public gRPC API (and gRPC-Web, health, reflection).
    pub grpc: SocketAddr,
    /// The orchestrator's `/health` and raw-signal `/metrics`.
    pub http: SocketAddr,
    /// gRPC health of the workflow-runner.
    pub runner_health: SocketAddr,
    /// The workflow-runner's `/health` and raw signal.
    pub runner_http: SocketAddr,
    /// Prometheus, for every part at once.
    pub metrics: Option<SocketAddr>,
    /// pprof, for the whole process.
    pub pprof: Option<SocketAddr>,
}

/// The platform's listeners, bound before anything starts so a port in use fails start-up.
pub struct DevListeners {
    grpc: TcpListener,
    http: TcpListener,
    runner_health: TcpListener,
    runner_http: TcpListener,
    metrics: Option<TcpListener>,
    pprof: Option<TcpListener>,
}

/// Binds `addr`; the log line names the port by the setting of the separate service it stands
/// for (`GRPC_PORT`, `RUNNER_GRPC_PORT`, ...), with the address bound (the one to use for port 0).
async fn bind(addr: SocketAddr, variable: &'static str) -> Result<TcpListener, DevError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| DevError::Bind {
            addr,
            what: match variable {
                "GRPC_PORT" => "the gRPC API",
                other => other,
            },
            source,
        })?;
    if let Ok(bound) = listener.local_addr() {
        tracing::info!(variable, addr = %bound, "listening");
    }
    Ok(listener)
}

impl DevListeners {
    pub async fn bind(config: &DevConfig) -> Result<Self, DevError> {
        let at = |port| SocketAddr::new(config.listen, port);
        Ok(Self {
            grpc: bind(at(config.grpc_port), "GRPC_PORT").await?,
            http: bind(at(config.http_port), "HTTP_PORT").await?,
            runner_health: bind(at(config.runner_grpc_port), "RUNNER_GRPC_PORT").await?,
            runner_http: bind(at(config.runner_http_port), "RUNNER_HTTP_PORT").await?,
            metrics: match config.metrics_port {
                Some(port) => Some(bind(at(port), "METRICS_PORT").await?),
                None => None,
            },
            pprof: match config.pprof_port {
                Some(port) => Some(bind(at(port), "PPROF_PORT").await?),
                None => None,
            },
        })
    }

    pub fn addrs(&self) -> DevAddrs {
        let addr = |l: &TcpListener| {
            l.local_addr()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
        };
        DevAddrs {
            grpc: addr(&self.grpc),
            http: addr(&self.http),
            runner_health: addr(&self.runner_health),
            runner_http: addr(&self.runner_http),
            metrics: self.metrics.as_ref().map(addr),
            pprof: self.pprof.as_ref().map(addr),
        }
    }
}

/// Runs every part on `backend` until `shutdown`, then lets each drain.
pub async fn serve(
    backend: EmbeddedBackend,
    config: DevConfig,
    listeners: DevListeners,
    shutdown: CancellationToken,
) -> Result<(), DevError> {
    let metrics = Arc::new(Metrics::new()?);
    if let Some(listener) = listeners.pprof {
        tokio::spawn(baton_pprof::serve(listener, shutdown.clone()));
    }
    let EmbeddedBackend { store, queue } = backend;
    tracing::info!(guard = %config.http_worker.guard, "http steps run in this process");
    let http_pool = baton_http_worker::pool(queue.clone(), &config.http_worker, metrics.clone())?;
    let http_worker = http_pool.run(shutdown.child_token());
    let orchestrator = baton_orchestrator::serve(
        store.clone(),
        queue.clone(),
        config.orchestrator,
        baton_orchestrator::Listeners {
            grpc: listeners.grpc,
            http: Some(listeners.http),
            metrics: listeners.metrics,
        },
        metrics.clone(),
        shutdown.clone(),
    );
    let runner = baton_workflow_runner::serve(
        store,
        queue,
        config.runner,
        baton_workflow_runner::Listeners {
            health: Some(listeners.runner_health),
            http: Some(listeners.runner_http),
            metrics: None,
        },
        metrics,
        shutdown.clone(),
    );
    // One part stopping stops the others: a half-running platform would only confuse.
    let stop_all = shutdown.clone();
    let stop_on_http = shutdown.clone();
    let (orchestrator, runner, http_worker) = tokio::join!(
        async {
            let r = orchestrator.await;
            stop_all.cancel();
            r
        },
        async {
            let r = runner.await;
            shutdown.cancel();
            r
        },
        async {
            let r = http_worker.await;
            stop_on_http.cancel();
            r
        }
    );
    orchestrator?;
    runner?;
    http_worker.map_err(baton_http_worker::HttpWorkerError::from)?;
    Ok(())
}
