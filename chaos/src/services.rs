//! The service binaries under test: one orchestrator, two runner replicas (each with the
//! built-in workers) and one http-worker, started with [`ServiceProcess`] on the suite's own servers, and killed,
//! restarted and paused by the faults. Every process keeps its ports across restarts, so clients
//! and scrapes find it again. Authentication is on, as in production: the suite issues itself an
//! admin key in the database before the orchestrator first starts.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context;
use baton_auth::{Bearer, Role};
use baton_store::KeyStore;
use baton_testkit::{ServiceProcess, wait_until_serving};

use crate::{counters::RepairCounters, load::Api, process};

/// Runner replicas the suite starts.
pub const RUNNER_REPLICAS: usize = 2;

/// How long a started or recovered service may take to report SERVING.
const SERVING_WITHIN: Duration = Duration::from_secs(30);
/// How long a service gets to stop after SIGTERM at the end.
const STOP_WITHIN: Duration = Duration::from_secs(15);
/// How long a killed service stays down before it is started again.
const RESTART_AFTER: Duration = Duration::from_millis(500);

/// Short timings, so that lost work is noticed and repaired within seconds rather than minutes.
/// `BATON_LEASE_TTL` and `BATON_RECONCILE_INTERVAL` belong to the store-lease reconciler; a
/// runner without it ignores them.
const RUNNER_TIMINGS: &[(&str, &str)] = &[
    ("BATON_INBOX_VISIBILITY", "2s"),
    ("BATON_VISIBILITY_TIMEOUT", "3s"),
    ("BATON_SWEEP_INTERVAL", "1s"),
    ("BATON_SWEEP_GRACE", "2s"),
    ("BATON_LEASE_TTL", "5s"),
    ("BATON_RECONCILE_INTERVAL", "1s"),
];

/// The orchestrator's per-tenant limits, off: the load is one tenant by design and measures how
/// Baton survives faults, not the limits (a StartRun refused over the rate would not be retried).
const ORCHESTRATOR_LIMITS: &[(&str, &str)] = &[
    ("BATON_START_RATE", "off"),
    ("BATON_WATCH_STREAMS_PER_TENANT", "off"),
];

/// The largest `inputs_json` the suite's orchestrator accepts (`BATON_MAX_INPUTS_BYTES`).
pub const MAX_INPUTS_BYTES: usize = 64 * 1024;
/// What the http-worker is given on top of the common settings: loopback let through its SSRF
/// guard (the echo API is there), and the runners' visibility timeout, so a job it held when it
/// was killed or paused is taken over as soon as a runner's would be.
const HTTP_WORKER_SETTINGS: &[(&str, &str)] = &[
    ("HTTP_WORKER_ALLOW", "127.0.0.1"),
    ("BATON_VISIBILITY_TIMEOUT", "3s"),
];

/// The step and template limits the suite sets on the runners, small enough for the poison
/// scenario to cross each with a step of a few hundred kilobytes. A runner without a limit
/// ignores its variable; the poison scenario looks for each name in the binary.
pub const RUNNER_LIMITS: &[(&str, usize)] = &[
    ("BATON_MAX_STEP_INPUT_BYTES", 256 * 1024),
    ("BATON_MAX_STEP_OUTPUT_BYTES", 64 * 1024),
    ("BATON_MAX_TEMPLATE_OUTPUT_BYTES", 128 * 1024),
    ("BATON_TEMPLATE_FUEL", 100_000),
];

/// Where the service binaries are.
#[derive(Clone, Debug)]
pub struct ServiceBinaries {
    pub orchestrator: PathBuf,
    pub runner: PathBuf,
    pub http_worker: PathBuf,
}

impl ServiceBinaries {
    pub fn in_dir(dir: &Path) -> anyhow::Result<Self> {
        let find = |name: &str| {
            let path = dir.join(name);
            anyhow::ensure!(
                path.is_file(),
                "{} not found; build the services first (`cargo build --bins`) or pass --bin-dir",
                path.display()
            );
            Ok(path)
        };
        Ok(Self {
            orchestrator: find("baton-orchestrator")?,
            runner: find("baton-workflow-runner")?,
            http_worker: find("baton-http-worker")?,
        })
    }

    /// Whether the runner binary holds `text`: how the suite tells whether it reads a variable.
    pub fn runner_mentions(&self, text: &str) -> bool {
        std::fs::read(&self.runner)
            .is_ok_and(|bytes| bytes.windows(text.len()).any(|w| w == text.as_bytes()))
    }
}

/// What the services connect to.
#[derive(Clone, Debug)]
pub struct Backend {
    pub database_url: String,
    pub redis_url: String,
    pub prefix: String,
}

/// How many times each service was killed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Kills {
    pub runner: usize,
    pub orchestrator: usize,
    pub http_worker: usize,
}

impl Kills {
    pub fn total(&self) -> usize {
        self.runner + self.orchestrator + self.http_worker
    }
}

/// The running services.
pub struct Services {
    orchestrator: Slot,
    /// The orchestrator's API with the suite's admin key.
    api: Api,
    runners: Vec<Slot>,
    http_worker: Slot,
    pub kills: Kills,
    /// Counters read from runner processes that were killed since.
    repair: RepairCounters,
}

impl Services {
    /// Issues the suite's admin key (migrating the database, since the orchestrator refuses to
    /// start while no key exists), starts the orchestrator, the runner replicas and the
    /// http-worker, and waits until each reports SERVING.
    pub async fn start(
        binaries: &ServiceBinaries,
        backend: &Backend,
        logs: &Path,
    ) -> anyhow::Result<Self> {
        let suite = uuid::Uuid::new_v4().simple().to_string();
        let common = |name: &str, grpc_port: u16| -> anyhow::Result<Vec<(String, String)>> {
            let pairs = [
                ("DATABASE_URL", backend.database_url.clone()),
                ("DATABASE_MAX_CONNECTIONS", "8".to_owned()),
                ("REDIS_URL", backend.redis_url.clone()),
                ("BATON_REDIS_PREFIX", backend.prefix.clone()),
                ("GRPC_PORT", grpc_port.to_string()),
                ("HTTP_PORT", "0".to_owned()),
                ("ENABLE_METRICS", "true".to_owned()),
                ("METRICS_PORT", process::free_port()?.to_string()),
                ("ENABLE_PPROF", "false".to_owned()),
                ("LOG_LEVEL", "info".to_owned()),
                ("BATON_CHAOS_PROCESS", format!("{suite}/{name}")),
            ];
            Ok(pairs.map(|(k, v)| (k.to_owned(), v)).into())
        };
        let bearer = admin_key(&backend.database_url).await?;
        let mut env = common("orchestrator", process::free_port()?)?;
        env.push((
            "BATON_MAX_INPUTS_BYTES".into(),
            MAX_INPUTS_BYTES.to_string(),
        ));
        env.extend(
            ORCHESTRATOR_LIMITS
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        env.push((
            "BATON_EXTRA_KINDS".into(),
            baton_http_worker::KIND.to_owned(),
        ));
        let mut orchestrator = Slot::new(
            "orchestrator",
            &binaries.orchestrator,
            env,
            "",
            SERVICE_PORTS,
            logs,
        );
        orchestrator.start().await?;
        let mut runners = Vec::new();
        for i in 0..RUNNER_REPLICAS {
            let name = format!("runner-{i}");
            let mut env = common(&name, 0)?;
            env.extend(
                RUNNER_TIMINGS
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            );
            env.push(("BATON_BUILTIN_WORKERS".into(), "true".into()));
            env.extend(
                RUNNER_LIMITS
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.to_string())),
            );
            let mut runner = Slot::new(
                &name,
                &binaries.runner,
                env,
                baton_workflow_runner::HEALTH_SERVICE,
                SERVICE_PORTS,
                logs,
            );
            runner.start().await?;
            runners.push(runner);
        }
        let mut env = common("http-worker", 0)?;
        env.extend(
            HTTP_WORKER_SETTINGS
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        env.extend(
            RUNNER_LIMITS
                .iter()
                .filter(|(k, _)| *k == "BATON_MAX_STEP_OUTPUT_BYTES")
                .map(|(k, v)| ((*k).to_owned(), v.to_string())),
        );
        let mut http_worker = Slot::new(
            "http-worker",
            &binaries.http_worker,
            env,
            baton_http_worker::HEALTH_SERVICE,
            WORKER_PORTS,
            logs,
        );
        http_worker.start().await?;
        let api = Api::new(
            SocketAddr::from(([127, 0, 0, 1], orchestrator.port("GRPC_PORT"))),
            bearer,
        );
        Ok(Self {
            orchestrator,
            api,
            runners,
            http_worker,
            kills: Kills::default(),
            repair: RepairCounters::default(),
        })
    }

    /// The orchestrator's gRPC API with the suite's admin key; the same address across restarts.
    pub fn api(&self) -> Api {
        self.api.clone()
    }

    /// `kill -9` of runner replica `i`, read just before; started again after a moment.
    pub async fn kill_runner(&mut self, i: usize) -> anyhow::Result<()> {
        let runner = &mut self.runners[i];
        if let Ok(read) = RepairCounters::scrape(runner.metrics()).await {
            self.repair.add(read);
        }
        runner.kill().await?;
        self.kills.runner += 1;
        tokio::time::sleep(RESTART_AFTER).await;
        runner.start().await
    }

    /// `kill -9` of the http-worker, with requests in flight; started again after a moment.
    pub async fn kill_http_worker(&mut self) -> anyhow::Result<()> {
        self.http_worker.kill().await?;
        self.kills.http_worker += 1;
        tokio::time::sleep(RESTART_AFTER).await;
        self.http_worker.start().await
    }

    /// `kill -9` of the orchestrator; started again after `down`.
    pub async fn kill_orchestrator(&mut self, down: Duration) -> anyhow::Result<()> {
        self.orchestrator.kill().await?;
        self.kills.orchestrator += 1;
        tokio::time::sleep(down).await;
        self.orchestrator.start().await
    }

    /// SIGSTOP of runner replica `i` (its built-in workers with it) and of the http-worker, both
    /// at once, for `pause`, then SIGCONT.
    pub async fn pause_workers(&mut self, i: usize, pause: Duration) -> anyhow::Result<()> {
        let mut pids = Vec::new();
        for slot in [&self.runners[i], &self.http_worker] {
            let pid = process::child_pid_with(&slot.marker)
                .with_context(|| format!("cannot find the pid of {}", slot.name))?;
            pids.push(pid.to_string());
        }
        for pid in &pids {
            anyhow::ensure!(process::signal(pid, "STOP"), "kill -STOP {pid} failed");
        }
        tokio::time::sleep(pause).await;
        for pid in &pids {
            anyhow::ensure!(process::signal(pid, "CONT"), "kill -CONT {pid} failed");
        }
        Ok(())
    }

    /// Waits until every service reports SERVING again; `Err` names the first that does not.
    pub async fn wait_serving(&self, within: Duration) -> anyhow::Result<()> {
        self.orchestrator.wait_serving(within).await?;
        for runner in &self.runners {
            runner.wait_serving(within).await?;
        }
        self.http_worker.wait_serving(within).await
    }

    /// The repair counters: those of killed replicas plus a read of the live ones.
    pub async fn repair_counters(&self) -> RepairCounters {
        let mut total = self.repair;
        for runner in &self.runners {
            if let Ok(read) = RepairCounters::scrape(runner.metrics()).await {
                total.add(read);
            }
        }
        total
    }

    /// Stops every service with SIGTERM and writes each one's output to the logs directory.
    pub async fn stop(mut self) {
        self.http_worker.stop().await;
        for runner in &mut self.runners {
            runner.stop().await;
        }
        self.orchestrator.stop().await;
    }
}

/// An admin key of tenant `default`, made straight in the database at `database_url` (migrated
/// first), as an operator bootstraps a new deployment.
async fn admin_key(database_url: &str) -> anyhow::Result<Bearer> {
    let store = baton_store::PgStore::connect(database_url, 1)
        .await
        .context("cannot connect to the scenario's database to issue the suite's key")?;
    store
        .migrate()
        .await
        .context("cannot migrate the scenario's database")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_micros();
    let issued = baton_auth::issue(
        "default",
        Role::Admin,
        "chaos",
        "bootstrap",
        i64::try_from(now)?,
    )?;
    store
        .create_api_key(issued.record)
        .await
        .context("cannot store the suite's API key")?;
    Ok(Bearer::new(&issued.token.expose())?)
}

/// The ports the orchestrator and the runners bind; a worker service has no HTTP server.
const SERVICE_PORTS: &[&str] = &["GRPC_PORT", "HTTP_PORT", "METRICS_PORT"];
const WORKER_PORTS: &[&str] = &["GRPC_PORT", "METRICS_PORT"];

/// One service and its successive processes.
struct Slot {
    name: String,
    binary: PathBuf,
    env: Vec<(String, String)>,
    /// `BATON_CHAOS_PROCESS=<suite>/<name>`, to find the process's pid.
    marker: String,
    /// The gRPC health service that says it is ready (`""`: the whole server).
    health: &'static str,
    /// The port settings whose `listening` lines say it has started.
    listens: &'static [&'static str],
    logs: PathBuf,
    process: Option<ServiceProcess>,
    incarnation: u32,
}

impl Slot {
    fn new(
        name: &str,
        binary: &Path,
        env: Vec<(String, String)>,
        health: &'static str,
        listens: &'static [&'static str],
        logs: &Path,
    ) -> Self {
        let marker = env
            .iter()
            .find(|(k, _)| k == "BATON_CHAOS_PROCESS")
            .map(|(k, v)| format!("{k}={v}"))
            .unwrap_or_default();
        Self {
            name: name.to_owned(),
            binary: binary.to_owned(),
            env,
            marker,
            health,
            listens,
            logs: logs.to_owned(),
            process: None,
            incarnation: 0,
        }
    }

    /// The configured port of `variable`, or the one the process logged when it was 0.
    fn port(&self, variable: &str) -> u16 {
        let configured = self
            .env
            .iter()
            .find(|(k, _)| k == variable)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        match (configured, &self.process) {
            (0, Some(process)) => process.addr(variable).port(),
            (port, _) => port,
        }
    }

    fn metrics(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port("METRICS_PORT")))
    }

    async fn start(&mut self) -> anyhow::Result<()> {
        self.incarnation += 1;
        let binary = self.binary.to_string_lossy().into_owned();
        let env = self.env.clone();
        let process = ServiceProcess::start(&binary, || Ok(env.clone()), self.listens)
            .await
            .with_context(|| format!("{} did not start", self.name))?;
        self.process = Some(process);
        self.wait_serving(SERVING_WITHIN).await
    }

    async fn wait_serving(&self, within: Duration) -> anyhow::Result<()> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port("GRPC_PORT")));
        wait_until_serving(addr, self.health, within)
            .await
            .with_context(|| format!("{} is not SERVING", self.name))
    }

    async fn kill(&mut self) -> anyhow::Result<()> {
        let process = self
            .process
            .take()
            .with_context(|| format!("{} is not running", self.name))?;
        let output = process.kill().await?;
        self.write_log(&output);
        Ok(())
    }

    async fn stop(&mut self) {
        if let Some(process) = self.process.take() {
            let output = match process.terminate(STOP_WITHIN).await {
                Ok((_, output)) => output,
                Err(e) => format!("{e:#}"),
            };
            self.write_log(&output);
        }
    }

    fn write_log(&self, output: &str) {
        let path = self
            .logs
            .join(format!("{}.{}.log", self.name, self.incarnation));
        let _ = std::fs::write(path, output);
    }
}
