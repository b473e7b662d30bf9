//! What `baton dev` is told: the database file and the ports, from flags, with the separate
//! services' own settings (retries, concurrency, ...) read from the environment as they would be.

use std::{net::IpAddr, path::PathBuf};

use baton_http_worker::HttpWorkerConfig;
use baton_orchestrator::OrchestratorConfig;
use baton_runtime::env::{ConfigError, Env};
use baton_workflow_runner::RunnerConfig;

/// The database file unless `--db` says otherwise.
pub const DEFAULT_DB: &str = ".baton/dev.db";

#[derive(Clone, Debug)]
pub struct DevConfig {
    /// The SQLite file holding the store and the queue (created when missing).
    pub db: PathBuf,
    /// The address every port binds: loopback unless asked otherwise.
    pub listen: IpAddr,
    /// The public gRPC API (8002, the orchestrator's).
    pub grpc_port: u16,
    /// The orchestrator's HTTP port (8081).
    pub http_port: u16,
    /// The runner's gRPC health port (8003).
    pub runner_grpc_port: u16,
    /// The runner's HTTP port (8082).
    pub runner_http_port: u16,
    /// Prometheus (9090), unless `ENABLE_METRICS=false`.
    pub metrics_port: Option<u16>,
    /// pprof (6060), unless `ENABLE_PPROF=false`: on by default here, since it binds loopback.
    pub pprof_port: Option<u16>,
    pub orchestrator: OrchestratorConfig,
    pub runner: RunnerConfig,
    /// `http` steps' settings, read as the http-worker reads them (`HTTP_WORKER_ALLOW`, ...).
    pub http_worker: HttpWorkerConfig,
}

impl DevConfig {
    /// The defaults and the services' settings from `env`; ports as the separate services use.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let mut runner = RunnerConfig::from_env(env)?;
        // The built-in kinds run here; nothing else would run them.
        runner.builtin_workers = true;
        // So do `http` steps, on the http-worker's own pool.
        let mut orchestrator = OrchestratorConfig::from_env(env)?;
        if !orchestrator
            .extra_kinds
            .iter()
            .any(|k| k == baton_http_worker::KIND)
        {
            orchestrator
                .extra_kinds
                .push(baton_http_worker::KIND.to_owned());
        }
        Ok(Self {
            db: PathBuf::from(DEFAULT_DB),
            listen: IpAddr::from([127, 0, 0, 1]),
            grpc_port: 8002,
            http_port: 8081,
            runner_grpc_port: 8003,
            runner_http_port: 8082,
            metrics_port: env
                .bool_or("ENABLE_METRICS", true)?
                .then(|| env.parse_or("METRICS_PORT", 9090))
                .transpose()?,
            pprof_port: env
                .bool_or("ENABLE_PPROF", true)?
                .then(|| env.parse_or("PPROF_PORT", 6060))
                .transpose()?,
            orchestrator,
            runner,
            http_worker: HttpWorkerConfig::from_env(env)?,
        })
    }

    /// Every port 0 (the system picks free ones; see [`crate::DevListeners::addrs`]), for tests.
    pub fn on_free_ports(mut self) -> Self {
        self.grpc_port = 0;
        self.on_free_side_ports()
    }

    /// Every port but the gRPC API's on a free one, so several can run side by side.
    pub fn on_free_side_ports(mut self) -> Self {
        self.http_port = 0;
        self.runner_grpc_port = 0;
        self.runner_http_port = 0;
        self.metrics_port = self.metrics_port.map(|_| 0);
        self.pprof_port = self.pprof_port.map(|_| 0);
        self
    }
}
