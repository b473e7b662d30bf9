//! A whole Baton in one process for tests and benchmarks: a backend of its own (a fresh Postgres
//! database and Redis key prefix, or with `BATON_TEST_BACKEND=embedded` a fresh SQLite file that
//! holds both, as `baton dev` runs), the orchestrator on a loopback port and one or more runner
//! replicas, so tests run in parallel against the real services. Also what tests of the service binaries
//! need: the database and prefix alone, and a started binary's addresses and exit.

use std::{
    collections::HashMap,
    net::SocketAddr,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context;
use baton_metrics::Metrics;
use baton_orchestrator::OrchestratorConfig;
use baton_proto::v1::{
    self, run_service_client::RunServiceClient, workflow_service_client::WorkflowServiceClient,
};
use baton_queue::{Queue, RedisQueue, RedisQueueConfig};
use baton_runtime::env::Env;
use baton_store::{PgStore, Store};
use baton_workflow_runner::RunnerConfig;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::{service::interceptor::InterceptedService, transport::Channel};

pub use baton_auth::{Bearer, Role};

/// A channel that sends a bearer token on every call.
pub type Authed = InterceptedService<Channel, Bearer>;

/// Adds `token` to every call made over `channel`.
pub fn authed(channel: Channel, token: &str) -> Authed {
    InterceptedService::new(
        channel,
        Bearer::new(token).expect("a token fit for a header"),
    )
}

/// Issues an API key of `tenant` with `role` straight into `store` and returns its token.
pub async fn issue_key(
    store: &dyn baton_store::KeyStore,
    tenant: &str,
    role: Role,
) -> anyhow::Result<String> {
    let issued = baton_auth::issue(
        tenant,
        role,
        "test",
        "bootstrap",
        baton_engine::now_micros(),
    )?;
    store.create_api_key(issued.record).await?;
    Ok(issued.token.expose())
}

/// Where the admin database and Redis are: `DATABASE_URL` (a database the test user may connect
/// to and create databases from) and `REDIS_URL`.
pub fn admin_database_url() -> String {
    baton_runtime::env::var("DATABASE_URL")
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    baton_runtime::env::var("REDIS_URL").unwrap_or_else(|| "redis://127.0.0.1:6379".into())
}

/// Which backend a test's services share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// PostgreSQL for the store, Redis Streams for the queue: the production path.
    Production,
    /// One SQLite file for both: what `baton dev` runs.
    Embedded,
}

impl BackendKind {
    /// `BATON_TEST_BACKEND`: `production` (the default) or `embedded`.
    pub fn from_env() -> Self {
        match baton_runtime::env::var("BATON_TEST_BACKEND").as_deref() {
            Some("embedded") => Self::Embedded,
            Some("production") | None => Self::Production,
            Some(other) => panic!("BATON_TEST_BACKEND={other:?}: expected production or embedded"),
        }
    }
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
    /// Step kinds served by workers outside the runner (`BATON_EXTRA_KINDS` of the orchestrator).
    pub extra_kinds: Vec<String>,
    /// Orchestrator auth and per-tenant limit settings as environment variables (`BATON_AUTH`,
    /// `BATON_START_RATE`, ...); the production defaults otherwise.
    pub orchestrator_env: Vec<(String, String)>,
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
            extra_kinds: Vec::new(),
            orchestrator_env: Vec::new(),
        }
    }
}

impl StackOptions {
    pub fn orchestrator_env(mut self, name: &str, value: &str) -> Self {
        self.orchestrator_env
            .push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn runner_env(mut self, name: &str, value: &str) -> Self {
        self.runner_env.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// A fresh, empty backend of its own: a Postgres database and a Redis key prefix, or a SQLite file
/// in a directory of its own. What one test's services share, whether they run in process
/// ([`TestStack::start_on`]) or as the real binaries. [`TestBackend::remove`] deletes it.
pub struct TestBackend {
    pub kind: BackendKind,
    /// The Postgres database (production backends).
    pub database_url: String,
    /// The Redis key prefix (production backends).
    pub prefix: String,
    /// The SQLite file (embedded backends).
    pub db_path: std::path::PathBuf,
    database: String,
}

impl TestBackend {
    /// A backend of the kind `BATON_TEST_BACKEND` names.
    pub async fn from_env() -> anyhow::Result<Self> {
        match BackendKind::from_env() {
            BackendKind::Production => Self::create().await,
            BackendKind::Embedded => Self::embedded(),
        }
    }

    /// A path for a SQLite file in a fresh directory; the file is created when first opened.
    pub fn embedded() -> anyhow::Result<Self> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = std::env::temp_dir().join(format!("baton-test-{}", &id[..16]));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Self {
            kind: BackendKind::Embedded,
            database_url: String::new(),
            prefix: format!("baton-test-{}", &id[..16]),
            db_path: dir.join("baton.db"),
            database: String::new(),
        })
    }

    /// Creates a Postgres database, without migrating it, and picks a Redis prefix.
    pub async fn create() -> anyhow::Result<Self> {
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
        Ok(Self {
            kind: BackendKind::Production,
            database_url: with_database(&admin, &database),
            prefix: format!("baton-test-{}", &id[..16]),
            db_path: std::path::PathBuf::new(),
            database,
        })
    }

    /// The environment of a service binary on this backend: every listener on a port of its own
    /// (0 where the setting allows it), Prometheus metrics and pprof on. Fresh ports each call.
    pub fn service_env(&self) -> anyhow::Result<Vec<(String, String)>> {
        let pairs = [
            ("DATABASE_URL", self.database_url.clone()),
            ("DATABASE_MAX_CONNECTIONS", "4".to_owned()),
            ("REDIS_URL", redis_url()),
            ("BATON_REDIS_PREFIX", self.prefix.clone()),
            ("GRPC_PORT", "0".to_owned()),
            ("HTTP_PORT", "0".to_owned()),
            ("ENABLE_METRICS", "true".to_owned()),
            ("METRICS_PORT", port_to_try()?.to_string()),
            ("ENABLE_PPROF", "true".to_owned()),
            ("PPROF_PORT", port_to_try()?.to_string()),
            ("LOG_LEVEL", "info".to_owned()),
        ];
        Ok(pairs.map(|(k, v)| (k.to_owned(), v)).into())
    }

    /// An API key of `tenant` with `role` in this backend's database (migrated first, so it can
    /// be made before a service binary starts), for binaries started on it: they refuse to
    /// start with no key.
    pub async fn issue_key(&self, tenant: &str, role: Role) -> anyhow::Result<String> {
        match self.kind {
            BackendKind::Production => {
                let store = PgStore::connect(&self.database_url, 1).await?;
                store.migrate().await?;
                issue_key(&store, tenant, role).await
            }
            BackendKind::Embedded => {
                let embedded = baton_dev::EmbeddedBackend::open(&self.db_path).await?;
                issue_key(embedded.store.as_ref(), tenant, role).await
            }
        }
    }

    /// How many migrations have been applied to the database (an error before any has).
    pub async fn applied_migrations(&self) -> anyhow::Result<i64> {
        let mut conn =
            <sqlx::PgConnection as sqlx::Connection>::connect(&self.database_url).await?;
        let count = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut conn)
            .await
            .context("no migrations table")?;
        Ok(count)
    }

    /// Drops the database and deletes every Redis key under the prefix, or deletes the SQLite
    /// file's directory.
    pub async fn remove(self) {
        if self.kind == BackendKind::Embedded {
            if let Some(dir) = self.db_path.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
            return;
        }
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

/// How long a service may take to start before the stack gives up on it.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// How long [`TestStack::stop`] waits for a service to stop before aborting it.
const STOP_WITHIN: Duration = Duration::from_secs(15);

/// Polls gRPC health at `addr` until `service` reports SERVING, or fails after `timeout`.
pub async fn wait_until_serving(
    addr: SocketAddr,
    service: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(2))
        .connect_lazy();
    let mut client = HealthClient::new(channel);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let reply = client
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .map(|r| r.into_inner().status);
        if reply.as_ref().ok() == Some(&(ServingStatus::Serving as i32)) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("{addr} {service:?} was not SERVING within {timeout:?}: {reply:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many connections listen on the Redis pub/sub `channel`.
pub async fn channel_subscribers(channel: &str) -> anyhow::Result<u64> {
    let mut conn = redis::Client::open(redis_url())?
        .get_multiplexed_async_connection()
        .await?;
    let (_, count): (String, u64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(&mut conn)
        .await?;
    Ok(count)
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
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    /// The Postgres store, on the production backend.
    pub postgres: Option<Arc<PgStore>>,
    pub kind: BackendKind,
    pub database_url: String,
    pub prefix: String,
    /// An admin key of tenant `default`, which the stack's clients send.
    token: String,
    options: StackOptions,
    backend: TestBackend,
    /// Runner replicas started with built-in workers: each listens for cancel notices.
    cancel_listeners: u64,
    shutdown: CancellationToken,
    tasks: Vec<(String, JoinHandle<()>)>,
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

    /// Starts on a fresh backend of the kind `BATON_TEST_BACKEND` names.
    pub async fn start_with(options: StackOptions) -> anyhow::Result<Self> {
        Self::start_on(TestBackend::from_env().await?, options).await
    }

    /// Migrates `backend`'s database and starts the services on it. Returns once every service
    /// reports SERVING and every runner's workers listen for cancel notices, so no test races
    /// the services' start-up.
    pub async fn start_on(backend: TestBackend, options: StackOptions) -> anyhow::Result<Self> {
        let (store, queue, postgres): (Arc<dyn Store>, Arc<dyn Queue>, _) = match backend.kind {
            BackendKind::Production => {
                let store = Arc::new(
                    PgStore::connect(&backend.database_url, options.max_connections).await?,
                );
                store.migrate().await?;
                let queue = Arc::new(
                    RedisQueue::connect(RedisQueueConfig::new(redis_url(), &backend.prefix))
                        .await
                        .with_context(|| {
                            format!("cannot reach Redis at {} (set REDIS_URL)", redis_url())
                        })?,
                );
                (store.clone(), queue, Some(store))
            }
            BackendKind::Embedded => {
                let embedded = baton_dev::EmbeddedBackend::open(&backend.db_path).await?;
                (embedded.store, embedded.queue, None)
            }
        };
        let token = issue_key(store.as_ref(), "default", Role::Admin).await?;
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
            postgres,
            kind: backend.kind,
            database_url: backend.database_url.clone(),
            prefix: backend.prefix.clone(),
            token,
            options: options.clone(),
            backend,
            cancel_listeners: 0,
            shutdown,
            tasks: Vec::new(),
        };
        let orchestrator_env = Env::from_pairs(
            options
                .orchestrator_env
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let config = OrchestratorConfig {
            database_url: stack.database_url.clone(),
            database_max_connections: options.max_connections,
            redis_url: redis_url(),
            redis_prefix: stack.prefix.clone(),
            grpc_port: addr.port(),
            http_port: orchestrator_http.port(),
            extra_kinds: options.extra_kinds.clone(),
            grpc_web_allowed_origins: options.grpc_web_allowed_origins.clone(),
            shutdown_drain: options.shutdown_drain,
            max_inputs_bytes: OrchestratorConfig::DEFAULT_MAX_INPUTS_BYTES,
            auth: baton_auth::AuthConfig::from_env(&orchestrator_env)?,
            quotas: baton_auth::QuotaConfig::from_env(&orchestrator_env)?,
            edge: baton_service::GrpcEdge::from_env(&orchestrator_env)?,
        };
        let (store, queue, token) = (
            stack.store.clone(),
            stack.queue.clone(),
            stack.shutdown.clone(),
        );
        let orchestrator = tokio::spawn(async move {
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
        });
        stack.tasks.push(("orchestrator".to_owned(), orchestrator));
        wait_until_serving(addr, "", READY_WITHIN)
            .await
            .context("the orchestrator did not start")?;
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

    /// Starts another runner replica that stops when `token` is cancelled, and waits until it
    /// reports SERVING and its workers (when built in) listen for cancel notices.
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
        let health = health_listener.local_addr()?;
        self.runner_health.push(health);
        let metrics = Arc::new(Metrics::new()?);
        let runner = tokio::spawn(async move {
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
        });
        self.tasks.push((format!("runner {consumer}"), runner));
        wait_until_serving(health, baton_workflow_runner::HEALTH_SERVICE, READY_WITHIN)
            .await
            .with_context(|| format!("runner {consumer} did not start"))?;
        if self.options.builtin_workers && self.kind == BackendKind::Production {
            // A cancel published before the workers subscribe would never reach them. (The
            // embedded queue keeps notices in the file, and workers subscribe before they read.)
            self.cancel_listeners += 1;
            let channel = baton_queue::RedisKeys::new(&self.prefix).cancel_channel();
            let deadline = tokio::time::Instant::now() + READY_WITHIN;
            while channel_subscribers(&channel).await? < self.cancel_listeners {
                anyhow::ensure!(
                    tokio::time::Instant::now() < deadline,
                    "runner {consumer}'s workers did not subscribe to {channel} within {READY_WITHIN:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }

    /// The Postgres store, for tests of the production backend only.
    pub fn pg(&self) -> &PgStore {
        self.postgres
            .as_deref()
            .expect("this test needs the production backend (BATON_TEST_BACKEND=production)")
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.endpoint())
            .expect("valid endpoint")
            .connect_lazy()
    }

    /// The admin key of tenant `default` the stack's own clients send.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// A new API key of `tenant` with `role`, made straight in the store.
    pub async fn key(&self, tenant: &str, role: Role) -> anyhow::Result<String> {
        issue_key(self.store.as_ref(), tenant, role).await
    }

    /// A channel that sends the stack's admin key.
    pub async fn authed(&self) -> Authed {
        authed(self.channel().await, &self.token)
    }

    pub async fn workflows(&self) -> WorkflowServiceClient<Authed> {
        WorkflowServiceClient::new(self.authed().await)
    }

    pub async fn runs(&self) -> RunServiceClient<Authed> {
        RunServiceClient::new(self.authed().await)
    }

    /// Registers a YAML or JSON definition.
    pub async fn register(&self, definition: &str) -> Result<v1::Workflow, tonic::Status> {
        let response = self
            .workflows()
            .await
            .register_workflow(v1::RegisterWorkflowRequest {
                definition: definition.to_owned(),
                format: 0,
                ..Default::default()
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

    /// Stops the services, waits until they have stopped (aborting any that outlive
    /// [`STOP_WITHIN`], so nothing of the stack outlives this call), and removes the database and
    /// Redis keys.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        for (name, mut task) in self.tasks.drain(..) {
            if tokio::time::timeout(STOP_WITHIN, &mut task).await.is_err() {
                eprintln!("{name} did not stop within {STOP_WITHIN:?}; aborting it");
                task.abort();
                let _ = task.await;
            }
        }
        if let Some(pg) = &self.postgres {
            pg.pool().close().await;
        }
        drop((self.store, self.queue));
        self.backend.remove().await;
    }
}

/// A port nothing listens on at this moment, for settings that do not accept 0 (`METRICS_PORT`,
/// `PPROF_PORT`). Another process may take it before the service binds it, so use it only with a
/// start-up that is tried again when a port is taken, as [`ServiceProcess::start`] does.
pub fn port_to_try() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("0.0.0.0:0")?
        .local_addr()?
        .port())
}

/// Most start-up attempts of a service binary whose port turned out to be taken.
const START_ATTEMPTS: usize = 5;

/// A Baton service binary started by a test, and the addresses it said it listens on.
pub struct ServiceProcess {
    child: tokio::process::Child,
    addrs: HashMap<String, SocketAddr>,
    output: Arc<Mutex<String>>,
}

impl ServiceProcess {
    /// Starts `binary` with only the variables `env` gives (and `LOG_FORMAT=json`), and waits
    /// until it has logged the address of each of `listeners` (the settings naming its ports:
    /// `GRPC_PORT`, ...). When the binary exits because a port was taken, it is started again
    /// with a fresh `env`.
    pub async fn start(
        binary: &str,
        env: impl Fn() -> anyhow::Result<Vec<(String, String)>>,
        listeners: &[&str],
    ) -> anyhow::Result<Self> {
        Self::start_with_args(binary, &[], env, listeners).await
    }

    /// [`ServiceProcess::start`] with command-line arguments (`baton dev ...`).
    pub async fn start_with_args(
        binary: &str,
        args: &[&str],
        env: impl Fn() -> anyhow::Result<Vec<(String, String)>>,
        listeners: &[&str],
    ) -> anyhow::Result<Self> {
        let mut attempt = 1;
        loop {
            match Self::try_start(binary, args, env()?, listeners).await? {
                Ok(process) => return Ok(process),
                Err(output) if output.contains("Address already in use") => {
                    anyhow::ensure!(
                        attempt < START_ATTEMPTS,
                        "{binary} found a port taken {attempt} times:\n{output}"
                    );
                    attempt += 1;
                }
                Err(output) => anyhow::bail!("{binary} exited during start-up:\n{output}"),
            }
        }
    }

    /// `Ok(Err(output))` when the binary exited before listening.
    async fn try_start(
        binary: &str,
        args: &[&str],
        env: Vec<(String, String)>,
        listeners: &[&str],
    ) -> anyhow::Result<Result<Self, String>> {
        let mut child = tokio::process::Command::new(binary)
            .args(args)
            .env_clear()
            .envs(env)
            .env("LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {binary}"))?;
        let output = Arc::new(Mutex::new(String::new()));
        let (found, mut addresses) = tokio::sync::mpsc::unbounded_channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let readers = [
            tokio::spawn(read_log(stdout, output.clone(), found.clone())),
            tokio::spawn(read_log(stderr, output.clone(), found)),
        ];
        let mut addrs = HashMap::new();
        let deadline = tokio::time::Instant::now() + READY_WITHIN;
        while !listeners.iter().all(|l| addrs.contains_key(*l)) {
            tokio::select! {
                Some((variable, addr)) = addresses.recv() => {
                    addrs.insert(variable, addr);
                }
                _ = child.wait() => {
                    for reader in readers {
                        let _ = reader.await;
                    }
                    let output = output.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    return Ok(Err(output));
                }
                _ = tokio::time::sleep_until(deadline) => {
                    let output = output.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    anyhow::bail!("{binary} did not listen on {listeners:?} within {READY_WITHIN:?}:\n{output}");
                }
            }
        }
        Ok(Ok(Self {
            child,
            addrs,
            output,
        }))
    }

    /// The loopback address the binary listens on for `variable` (`GRPC_PORT`, ...).
    pub fn addr(&self, variable: &str) -> SocketAddr {
        *self
            .addrs
            .get(variable)
            .unwrap_or_else(|| panic!("no address logged for {variable}: {:?}", self.addrs))
    }

    /// Everything the binary printed so far.
    pub fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sends SIGTERM and waits up to `within` for the process to exit; returns how it exited and
    /// everything it printed.
    pub async fn terminate(
        mut self,
        within: Duration,
    ) -> anyhow::Result<(std::process::ExitStatus, String)> {
        let pid = self.child.id().context("the process already exited")?;
        let sent = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await?;
        anyhow::ensure!(sent.success(), "kill -TERM {pid} failed: {sent}");
        let status = tokio::time::timeout(within, self.child.wait()).await;
        let output = self.output();
        match status {
            Ok(status) => Ok((status?, output)),
            Err(_) => {
                let _ = self.child.kill().await;
                anyhow::bail!("did not exit within {within:?} of SIGTERM:\n{output}")
            }
        }
    }
}

impl ServiceProcess {
    /// Kills the process outright (SIGKILL: no drain, no flush), as a crash would, and waits for
    /// it; returns what it printed.
    pub async fn kill(mut self) -> anyhow::Result<String> {
        self.child.kill().await?;
        Ok(self.output())
    }
}

/// Keeps every line of `pipe` in `output`, and sends each address a `listening` log line names.
async fn read_log(
    pipe: impl tokio::io::AsyncRead + Unpin,
    output: Arc<Mutex<String>>,
    found: tokio::sync::mpsc::UnboundedSender<(String, SocketAddr)>,
) {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(pipe).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some((variable, addr)) = baton_service::parse_listening(&line) {
            // Bound on every interface; reached on loopback.
            let _ = found.send((variable, SocketAddr::from(([127, 0, 0, 1], addr.port()))));
        }
        let mut output = output.lock().unwrap_or_else(|e| e.into_inner());
        output.push_str(&line);
        output.push('\n');
    }
}

/// One HTTP/1.1 `GET` on a fresh connection: the status, the head, and the body read to its end.
pub async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String, Vec<u8>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no HTTP head")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status in {head:?}"))?;
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body)?;
    }
    Ok((status, head, body))
}

/// Asserts that a service's pprof port serves the index, a one-second CPU profile (gzipped
/// protobuf) and the threads.
pub async fn assert_pprof_answers(service: &ServiceProcess) {
    let pprof = service.addr("PPROF_PORT");
    let (code, head, body) = http_get(pprof, "/debug/pprof/").await.unwrap();
    assert_eq!(code, 200, "{head}");
    assert!(
        String::from_utf8_lossy(&body).contains("/debug/pprof/profile"),
        "index"
    );
    let (code, head, body) = http_get(pprof, "/debug/pprof/profile?seconds=1")
        .await
        .unwrap();
    assert_eq!(code, 200, "{head}");
    assert_eq!(body.get(..2), Some(&[0x1f, 0x8b][..]), "not gzip: {head}");
    let (code, _, body) = http_get(pprof, "/debug/pprof/threads").await.unwrap();
    assert_eq!(code, 200);
    assert!(!body.is_empty());
}

fn dechunk(mut raw: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("no chunk size")?;
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..end])?.trim(), 16)?;
        if size == 0 {
            return Ok(out);
        }
        let start = end + 2;
        anyhow::ensure!(raw.len() >= start + size + 2, "a chunk is cut short");
        out.extend_from_slice(&raw[start..start + size]);
        raw = &raw[start + size + 2..];
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
