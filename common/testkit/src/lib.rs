//! A whole Baton in one process for tests and benchmarks: a fresh Postgres database, a Redis key
//! prefix of its own, the orchestrator on a loopback port and one or more runner replicas, so
//! tests run in parallel against the real services.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use baton_metrics::Metrics;
use baton_orchestrator::OrchestratorConfig;
use baton_proto::v1::{
    self, run_service_client::RunServiceClient, workflow_service_client::WorkflowServiceClient,
};
use baton_queue::{RedisQueue, RedisQueueConfig};
use baton_runtime::env::Env;
use baton_store::PgStore;
use baton_workflow_runner::RunnerConfig;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// Where the admin database and Redis are: `DATABASE_URL` (a database the test user may connect
/// to and create databases from) and `REDIS_URL`.
pub fn admin_database_url() -> String {
    baton_runtime::env::var("DATABASE_URL")
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    baton_runtime::env::var("REDIS_URL").unwrap_or_else(|| "redis://127.0.0.1:6379".into())
}

/// How the stack is put together.
#[derive(Clone, Debug)]
pub struct StackOptions {
    /// Runner replicas to start.
    pub runners: usize,
    /// Whether runners run the built-in workers.
    pub builtin_workers: bool,
    /// Runner settings as environment variables (`BATON_VISIBILITY_TIMEOUT`, ...).
    pub runner_env: Vec<(String, String)>,
    /// Database pool size of each service.
    pub max_connections: u32,
    /// Browser origins the orchestrator allows over gRPC-Web (`GRPC_WEB_ALLOWED_ORIGINS`).
    pub grpc_web_allowed_origins: baton_orchestrator::AllowedOrigins,
    /// `SHUTDOWN_DRAIN_DELAY` of every service.
    pub shutdown_drain: std::time::Duration,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            runners: 1,
            builtin_workers: true,
            runner_env: Vec::new(),
            max_connections: 5,
            grpc_web_allowed_origins: baton_orchestrator::AllowedOrigins::None,
            shutdown_drain: std::time::Duration::ZERO,
        }
    }
}

impl StackOptions {
    pub fn runner_env(mut self, name: &str, value: &str) -> Self {
        self.runner_env.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// A running Baton. Call [`TestStack::stop`] at the end to drop its database and keys.
pub struct TestStack {
    pub addr: SocketAddr,
    /// Where the orchestrator serves `/health` and the raw-signal JSON `/metrics`.
    pub orchestrator_http: SocketAddr,
    /// Where the orchestrator serves Prometheus `/metrics`.
    pub orchestrator_metrics: SocketAddr,
    /// Where each runner replica serves Prometheus `/metrics`, in start order.
    pub runner_metrics: Vec<SocketAddr>,
    /// Where each runner replica serves gRPC health, in start order.
    pub runner_health: Vec<SocketAddr>,
    pub store: Arc<PgStore>,
    pub queue: Arc<RedisQueue>,
    pub database_url: String,
    pub prefix: String,
    options: StackOptions,
    database: String,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let base = match base.rfind('/') {
        Some(i) if i > base.find("://").map_or(0, |s| s + 2) => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

impl TestStack {
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(StackOptions::default()).await
    }

    pub async fn start_with(options: StackOptions) -> anyhow::Result<Self> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let database = format!("baton_test_{}", &id[..16]);
        let admin = admin_database_url();
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
            .await
            .with_context(|| {
                format!(
                    "cannot reach Postgres at {} (set DATABASE_URL)",
                    baton_runtime::redact_url(&admin)
                )
            })?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
            .execute(&mut conn)
            .await?;
        let database_url = with_database(&admin, &database);
        let store = Arc::new(PgStore::connect(&database_url, options.max_connections).await?);
        store.migrate().await?;
        let prefix = format!("baton-test-{}", &id[..16]);
        let queue = Arc::new(
            RedisQueue::connect(RedisQueueConfig::new(redis_url(), &prefix))
                .await
                .with_context(|| {
                    format!("cannot reach Redis at {} (set REDIS_URL)", redis_url())
                })?,
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let metrics_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let orchestrator_metrics = metrics_listener.local_addr()?;
        let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let orchestrator_http = http_listener.local_addr()?;
        let mut stack = Self {
            addr,
            orchestrator_metrics,
            orchestrator_http,
            runner_metrics: Vec::new(),
            runner_health: Vec::new(),
            store,
            queue,
            database_url,
            prefix,
            options: options.clone(),
            database,
            shutdown,
            tasks: Vec::new(),
        };
        let config = OrchestratorConfig {
            database_url: stack.database_url.clone(),
            database_max_connections: options.max_connections,
            redis_url: redis_url(),
            redis_prefix: stack.prefix.clone(),
            grpc_port: addr.port(),
            http_port: orchestrator_http.port(),
            extra_kinds: Vec::new(),
            grpc_web_allowed_origins: options.grpc_web_allowed_origins.clone(),
            shutdown_drain: options.shutdown_drain,
        };
        let (store, queue, token) = (
            stack.store.clone(),
            stack.queue.clone(),
            stack.shutdown.clone(),
        );
        stack.tasks.push(tokio::spawn(async move {
            let metrics = Arc::new(Metrics::new().expect("metrics registry"));
            let listeners = baton_orchestrator::Listeners {
                grpc: listener,
                http: Some(http_listener),
                metrics: Some(metrics_listener),
            };
            let served =
                baton_orchestrator::serve(store, queue, config, listeners, metrics, token).await;
            if let Err(e) = served {
                eprintln!("orchestrator failed: {e}");
            }
        }));
        for i in 0..options.runners {
            stack
                .spawn_runner(&format!("runner-{i}"), stack.shutdown.child_token())
                .await?;
        }
        Ok(stack)
    }

    /// The runner configuration this stack uses for a replica named `consumer`.
    pub fn runner_config(&self, consumer: &str) -> RunnerConfig {
        let mut env: Vec<(&str, &str)> = self
            .options
            .runner_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let workers = if self.options.builtin_workers {
            "true"
        } else {
            "false"
        };
        env.extend([
            ("BATON_CONSUMER_NAME", consumer),
            ("BATON_BUILTIN_WORKERS", workers),
        ]);
        let mut config =
            RunnerConfig::from_env(&Env::from_pairs(env)).expect("valid runner test settings");
        config.database_url = self.database_url.clone();
        config.redis_url = redis_url();
        config.redis_prefix = self.prefix.clone();
        config.shutdown_drain = self.options.shutdown_drain;
        config
    }

    /// Starts another runner replica that stops when `token` is cancelled.
    pub async fn spawn_runner(
        &mut self,
        consumer: &str,
        token: CancellationToken,
    ) -> anyhow::Result<()> {
        let config = self.runner_config(consumer);
        let (store, queue) = (self.store.clone(), self.queue.clone());
        let metrics_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        self.runner_metrics.push(metrics_listener.local_addr()?);
        let health_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        self.runner_health.push(health_listener.local_addr()?);
        let metrics = Arc::new(Metrics::new()?);
        self.tasks.push(tokio::spawn(async move {
            let listeners = baton_workflow_runner::Listeners {
                metrics: Some(metrics_listener),
                health: Some(health_listener),
                ..Default::default()
            };
            let served =
                baton_workflow_runner::serve(store, queue, config, listeners, metrics, token).await;
            if let Err(e) = served {
                eprintln!("runner failed: {e}");
            }
        }));
        Ok(())
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.endpoint())
            .expect("valid endpoint")
            .connect_lazy()
    }

    pub async fn workflows(&self) -> WorkflowServiceClient<Channel> {
        WorkflowServiceClient::new(self.channel().await)
    }

    pub async fn runs(&self) -> RunServiceClient<Channel> {
        RunServiceClient::new(self.channel().await)
    }

    /// Registers a YAML or JSON definition.
    pub async fn register(&self, definition: &str) -> Result<v1::Workflow, tonic::Status> {
        let response = self
            .workflows()
            .await
            .register_workflow(v1::RegisterWorkflowRequest {
                definition: definition.to_owned(),
                format: 0,
            })
            .await?;
        Ok(response.into_inner().workflow.expect("a workflow"))
    }

    /// Starts a run and returns it.
    pub async fn start_run(
        &self,
        workflow_ref: &str,
        inputs: serde_json::Value,
    ) -> Result<v1::Run, tonic::Status> {
        let response = self
            .runs()
            .await
            .start_run(v1::StartRunRequest {
                workflow_ref: workflow_ref.to_owned(),
                inputs_json: inputs.to_string(),
                ..Default::default()
            })
            .await?;
        Ok(response.into_inner().run.expect("a run"))
    }

    pub async fn get_run(&self, run_id: &str) -> Result<v1::Run, tonic::Status> {
        let response = self
            .runs()
            .await
            .get_run(v1::GetRunRequest {
                run_id: run_id.to_owned(),
            })
            .await?;
        Ok(response.into_inner().run.expect("a run"))
    }

    /// Polls until the run ends, or fails after `timeout`.
    pub async fn wait_for_end(&self, run_id: &str, timeout: Duration) -> anyhow::Result<v1::Run> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let run = self.get_run(run_id).await?;
            let status = v1::RunStatus::try_from(run.status).unwrap_or_default();
            if !matches!(status, v1::RunStatus::Queued | v1::RunStatus::Running) {
                return Ok(run);
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("run {run_id} did not end within {timeout:?}; it is {status:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls until `check` holds for the run, or fails after `timeout`.
    pub async fn wait_for(
        &self,
        run_id: &str,
        timeout: Duration,
        check: impl Fn(&v1::Run) -> bool,
    ) -> anyhow::Result<v1::Run> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let run = self.get_run(run_id).await?;
            if check(&run) {
                return Ok(run);
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!(
                    "run {run_id} did not reach the expected state within {timeout:?}: {run:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts a graceful shutdown (as SIGTERM does) without cleaning up; call [`Self::stop`] after.
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Stops the services and removes the database and Redis keys.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        for task in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
        }
        self.store.pool().close().await;
        if let Ok(mut conn) =
            <sqlx::PgConnection as sqlx::Connection>::connect(&admin_database_url()).await
        {
            let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.database);
            let _ = sqlx::query(sqlx::AssertSqlSafe(drop))
                .execute(&mut conn)
                .await;
        }
        if let Ok(client) = redis::Client::open(redis_url())
            && let Ok(mut conn) = client.get_multiplexed_async_connection().await
        {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}:*", self.prefix))
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
            }
        }
    }
}

/// A step of a run by id.
pub fn step<'a>(run: &'a v1::Run, id: &str) -> &'a v1::StepRun {
    run.steps
        .iter()
        .find(|s| s.step_id == id)
        .unwrap_or_else(|| panic!("run has no step `{id}`"))
}

/// A step's output as JSON.
pub fn output(step: &v1::StepRun) -> serde_json::Value {
    serde_json::from_str(&step.output_json).unwrap_or(serde_json::Value::Null)
}

pub fn status(run: &v1::Run) -> v1::RunStatus {
    v1::RunStatus::try_from(run.status).unwrap_or_default()
}

pub fn step_status(step: &v1::StepRun) -> v1::StepStatus {
    v1::StepStatus::try_from(step.status).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_urls() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            with_database("postgres://u@h/postgres?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://u@h:5432", "x"),
            "postgres://u@h:5432/x"
        );
    }
}
