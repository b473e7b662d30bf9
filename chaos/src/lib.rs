//! Baton's fault-injection suite. Each scenario starts a Redis and a PostgreSQL of its own, the
//! real service binaries on them, drives load through the gRPC API, injects one kind of fault,
//! and then audits the database: no acknowledged run lost, none stuck, events numbered 1..N with
//! at most one terminal event, every run ended as it must. `make chaos` runs the full version;
//! `chaos/tests/short.rs` runs a short one inside `make test`.

pub mod audit;
pub mod callee;
pub mod counters;
pub mod faults;
pub mod load;
mod process;
pub mod report;
pub mod servers;
pub mod services;
pub mod streams;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::Context;

use crate::{
    audit::Violation,
    callee::Callee,
    counters::RepairCounters,
    faults::Stage,
    load::{Load, LoadOptions},
    servers::Servers,
    services::{Backend, Kills, ServiceBinaries, Services},
    streams::Streams,
};

/// One kind of fault, run on a fresh platform of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    RunnerKill,
    OrchestratorKill,
    RedisRestartEmpty,
    PostgresStop,
    WorkerPause,
    Duplicates,
    Poison,
}

impl Scenario {
    pub const ALL: [Scenario; 7] = [
        Scenario::RunnerKill,
        Scenario::OrchestratorKill,
        Scenario::RedisRestartEmpty,
        Scenario::PostgresStop,
        Scenario::WorkerPause,
        Scenario::Duplicates,
        Scenario::Poison,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::RunnerKill => "runner-kill",
            Scenario::OrchestratorKill => "orchestrator-kill",
            Scenario::RedisRestartEmpty => "redis-restart-empty",
            Scenario::PostgresStop => "postgres-stop",
            Scenario::WorkerPause => "worker-pause",
            Scenario::Duplicates => "duplicates",
            Scenario::Poison => "poison",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    async fn inject(self, stage: &mut Stage<'_>) -> anyhow::Result<()> {
        match self {
            Scenario::RunnerKill => faults::runner_kill(stage).await,
            Scenario::OrchestratorKill => faults::orchestrator_kill(stage).await,
            Scenario::RedisRestartEmpty => faults::redis_restart_empty(stage).await,
            Scenario::PostgresStop => faults::postgres_stop(stage).await,
            Scenario::WorkerPause => faults::worker_pause(stage).await,
            Scenario::Duplicates => faults::duplicates(stage).await,
            Scenario::Poison => faults::poison(stage).await,
        }
    }
}

/// How hard each scenario pushes.
#[derive(Clone, Copy, Debug)]
pub struct Profile {
    /// Load StartRuns per scenario.
    pub runs: usize,
    /// StartRuns begun per second.
    pub rate: f64,
    /// StartRuns in flight at once.
    pub concurrency: usize,
    pub runner_kills: usize,
    /// Kills of the http-worker, in the runner-kill scenario between the runners' kills.
    pub http_worker_kills: usize,
    pub orchestrator_kills: usize,
    /// Times Redis is killed and started again empty.
    pub redis_restarts: usize,
    pub postgres_outage: Duration,
    /// How long a runner replica stays stopped (SIGSTOP): past every visibility timeout.
    pub pause: Duration,
    /// How long runs get to end after the load stopped, before the audit.
    pub settle: Duration,
    /// How long one StartRun is tried again while the orchestrator or a dependency is down.
    pub give_up_after: Duration,
}

impl Profile {
    /// `make chaos`: 1,000 runs per scenario, 10 kills of each service, PostgreSQL down 30 s.
    pub fn full() -> Self {
        Self {
            runs: 1000,
            rate: 40.0,
            concurrency: 8,
            runner_kills: 10,
            http_worker_kills: 5,
            orchestrator_kills: 10,
            redis_restarts: 3,
            postgres_outage: Duration::from_secs(30),
            pause: Duration::from_secs(10),
            settle: Duration::from_secs(60),
            give_up_after: Duration::from_secs(120),
        }
    }

    /// Inside `make test`: a few minutes for every scenario on a small machine.
    pub fn short() -> Self {
        Self {
            runs: 150,
            rate: 40.0,
            concurrency: 8,
            runner_kills: 2,
            http_worker_kills: 1,
            orchestrator_kills: 1,
            redis_restarts: 1,
            postgres_outage: Duration::from_secs(5),
            pause: Duration::from_secs(8),
            settle: Duration::from_secs(30),
            give_up_after: Duration::from_secs(60),
        }
    }
}

/// What one scenario did and found.
#[derive(Debug)]
pub struct ScenarioReport {
    pub scenario: Scenario,
    /// Runs in the database.
    pub runs: usize,
    pub acknowledged: usize,
    pub kills: Kills,
    pub repair: RepairCounters,
    /// Entries in the dead-letter stream at the end (`None`: Redis could not be read).
    pub dead_letters: Option<u64>,
    /// StartRun answers by gRPC code.
    pub answers: BTreeMap<String, usize>,
    pub by_status: BTreeMap<String, usize>,
    /// How long runs took to end after the load stopped (`None`: not within the profile's time).
    pub settled: Option<Duration>,
    pub took: Duration,
    pub notes: Vec<String>,
    pub violations: Vec<Violation>,
    /// The services' output.
    pub logs: PathBuf,
    /// Stopped by SIGINT or SIGTERM before it ended.
    pub interrupted: bool,
}

impl ScenarioReport {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Runs one scenario start to end; every failure, a panic included, is a violation in the report.
/// The servers and services are stopped whatever happens.
pub async fn run_scenario(
    scenario: Scenario,
    profile: Profile,
    binaries: &ServiceBinaries,
    logs: &Path,
) -> ScenarioReport {
    let logs = logs.join(scenario.name());
    let began = Instant::now();
    let binaries = binaries.clone();
    let dir = logs.clone();
    let mut run =
        tokio::spawn(
            async move { run_on_fresh_platform(scenario, profile, &binaries, &dir).await },
        );
    let joined = tokio::select! {
        joined = &mut run => Some(joined),
        signal = interrupted() => {
            // Dropping the scenario's future stops its servers and services.
            run.abort();
            let _ = (&mut run).await;
            eprintln!("baton-chaos: {signal}: stopped {}'s servers and services", scenario.name());
            None
        }
    };
    let mut report = match joined {
        Some(Ok(Ok(report))) => report,
        Some(Ok(Err(e))) => failed(scenario, &logs, format!("{e:#}")),
        Some(Err(e)) => failed(scenario, &logs, format!("the scenario panicked: {e}")),
        None => {
            let mut report = failed(scenario, &logs, "interrupted".into());
            report.interrupted = true;
            report
        }
    };
    report.took = began.elapsed();
    report
}

/// Resolves on SIGINT or SIGTERM, naming it. The servers run in process groups of their own, so
/// a Ctrl-C does not reach them: the suite stops them itself.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

fn failed(scenario: Scenario, logs: &Path, why: String) -> ScenarioReport {
    ScenarioReport {
        scenario,
        runs: 0,
        acknowledged: 0,
        kills: Kills::default(),
        repair: RepairCounters::default(),
        dead_letters: None,
        answers: BTreeMap::new(),
        by_status: BTreeMap::new(),
        settled: None,
        took: Duration::ZERO,
        notes: Vec::new(),
        violations: vec![Violation::general("scenario", why)],
        logs: logs.to_owned(),
        interrupted: false,
    }
}

async fn run_on_fresh_platform(
    scenario: Scenario,
    profile: Profile,
    binaries: &ServiceBinaries,
    logs: &Path,
) -> anyhow::Result<ScenarioReport> {
    std::fs::create_dir_all(logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let mut servers = Servers::start().await?;
    let backend = Backend {
        database_url: servers.postgres.create_database("baton").await?,
        redis_url: servers.redis.url(),
        prefix: "baton-chaos".into(),
    };
    let streams = Streams::new(&backend.redis_url, &backend.prefix);
    let callee = Callee::start().await?;
    let mut services = Services::start(binaries, &backend, logs).await?;
    let api = services.api();
    api.register(&load::chain(&callee.url())).await?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&backend.database_url)
        .await
        .context("cannot connect to the scenario's database")?;
    let load = Load::start(
        &api,
        scenario.name(),
        LoadOptions {
            runs: profile.runs,
            concurrency: profile.concurrency,
            rate: profile.rate,
            give_up_after: profile.give_up_after,
        },
    );
    let mut stage = Stage {
        profile: &profile,
        servers: &mut servers,
        services: &mut services,
        binaries,
        load: &load,
        streams: &streams,
        pool: &pool,
        notes: Vec::new(),
        violations: Vec::new(),
    };
    if let Err(e) = scenario.inject(&mut stage).await {
        stage
            .violations
            .push(Violation::general("fault", format!("{e:#}")));
    }
    let (mut notes, mut violations) = (stage.notes, stage.violations);
    let ledger = load.finish().await;

    let settled = audit::settle(&pool, &streams, profile.settle).await;
    if settled.is_none() {
        notes.push(format!(
            "runs or work streams had not settled {:?} after the load",
            profile.settle
        ));
    }
    let repair = services.repair_counters().await;
    let dead_letters = streams.dead_letters().await.ok();
    let audit = audit::audit(&pool, &streams, &ledger).await?;
    violations.extend(audit.violations);
    match (scenario, dead_letters) {
        (Scenario::Poison, _) | (_, None | Some(0)) => {}
        (_, Some(dead)) => {
            let reasons = streams.dead_letter_reasons().await.unwrap_or_default();
            let listed: Vec<String> = reasons.iter().map(|(n, r)| format!("{n}× {r}")).collect();
            violations.push(Violation::general(
                "dead-letters",
                format!(
                    "{dead} dead letters, yet no message was poisoned (a fault must be waited out, not dead-lettered): {}",
                    listed.join("; ")
                ),
            ));
        }
    }
    if scenario == Scenario::RedisRestartEmpty {
        notes.push("dead letters: only those since Redis came back empty".into());
    }
    let completed = audit.by_status.get("completed").copied().unwrap_or(0);
    notes.push(format!(
        "the echo API answered {} requests of the {completed} completed runs' http steps",
        callee.requests()
    ));
    if !ledger.never_acknowledged.is_empty() {
        notes.push(format!(
            "{} StartRuns never returned OK within {:?}: {}",
            ledger.never_acknowledged.len(),
            profile.give_up_after,
            ledger.never_acknowledged.join(" ")
        ));
    }
    pool.close().await;
    let kills = services.kills;
    services.stop().await;
    drop(servers);
    Ok(ScenarioReport {
        scenario,
        runs: audit.runs,
        acknowledged: ledger.acks.len(),
        kills,
        repair,
        dead_letters,
        answers: ledger.answers,
        by_status: audit.by_status,
        settled,
        took: Duration::ZERO,
        notes,
        violations,
        logs: logs.to_owned(),
        interrupted: false,
    })
}

/// Runs `scenarios` one after the other, each on a fresh platform, saying on stderr when each
/// starts and ends. Each scenario's service output goes to `logs/<scenario>/`, with a
/// `violations.txt` when it failed; a passing scenario's directory is removed unless
/// `keep_logs`.
pub async fn run_suite(
    scenarios: &[Scenario],
    profile: Profile,
    binaries: &ServiceBinaries,
    logs: &Path,
    keep_logs: bool,
) -> Vec<ScenarioReport> {
    let mut reports = Vec::new();
    for scenario in scenarios {
        eprintln!("baton-chaos: {} ...", scenario.name());
        let report = run_scenario(*scenario, profile, binaries, logs).await;
        eprintln!(
            "baton-chaos: {} {} in {:.1}s ({} runs, {} violations)",
            scenario.name(),
            if report.passed() { "passed" } else { "FAILED" },
            report.took.as_secs_f64(),
            report.runs,
            report.violations.len()
        );
        if report.passed() && !keep_logs {
            let _ = std::fs::remove_dir_all(&report.logs);
        } else {
            let _ = std::fs::create_dir_all(&report.logs);
            let _ = std::fs::write(
                report.logs.join("violations.txt"),
                report::violations_file(&report),
            );
        }
        let interrupted = report.interrupted;
        reports.push(report);
        if interrupted {
            break;
        }
    }
    if !keep_logs && reports.iter().all(ScenarioReport::passed) {
        let _ = std::fs::remove_dir(logs);
    }
    reports
}

/// A fresh directory for a suite's logs under the system's temporary directory.
pub fn default_logs_dir() -> PathBuf {
    let id = uuid::Uuid::new_v4().simple().to_string();
    std::env::temp_dir().join(format!("baton-chaos-logs-{}", &id[..8]))
}
