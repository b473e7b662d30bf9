//! `baton-bench`: measures a real Baton deployment. It spawns the release `baton-orchestrator`
//! and `baton-workflow-runner` binaries against a fresh database and Redis prefix, drives them
//! through the public gRPC API and prints throughput, latency, dispatch delays and memory next to
//! Baton's targets. Run it with `make bench`.

mod api;
mod args;
mod db;
mod environment;
mod latency;
mod machine;
mod memory;
mod report;
mod services;
mod stats;
mod throughput;
mod workflows;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::Parser;

use crate::api::Api;
use crate::args::Args;
use crate::db::Db;
use crate::environment::Environment;
use crate::machine::Machine;
use crate::memory::Sampler;
use crate::report::{DispatchSummary, MemoryRow, Results, ServiceInfo};
use crate::services::Service;

/// How long a service may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often resident memory is sampled.
const MEMORY_SAMPLE: Duration = Duration::from_millis(50);
/// How long the services rest before an idle memory sample.
const SETTLE: Duration = Duration::from_secs(2);

const ORCHESTRATOR: &str = "orchestrator";
const RUNNER: &str = "workflow-runner";

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match bench(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn bench(args: Args) -> anyhow::Result<()> {
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("the executable has no parent directory")?
            .to_path_buf(),
    };
    let binaries = [
        services::binary(&bin_dir, "baton-orchestrator")?,
        services::binary(&bin_dir, "baton-workflow-runner")?,
    ];
    let mut env = Environment::create(&args.database_url, &args.redis_url, args.keep).await?;
    eprintln!(
        "baton-bench: database {}, Redis prefix {}, service logs in {}",
        env.database,
        env.redis_prefix,
        env.log_dir.display()
    );
    let outcome = tokio::select! {
        r = run(&args, &mut env, &bin_dir, &binaries) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    match outcome {
        Ok(results) => {
            print!("{}", results.text());
            if let Some(path) = &args.json {
                let text = serde_json::to_string_pretty(&results.json())?;
                std::fs::write(path, text + "\n")
                    .with_context(|| format!("cannot write {}", path.display()))?;
                eprintln!("figures written to {}", path.display());
            }
            drop(env);
            Ok(())
        }
        Err(e) => {
            if !env.services.is_empty() {
                eprintln!("{}", env.log_tails(30));
            }
            eprintln!("service logs are in {}", env.log_dir.display());
            drop(env);
            Err(e)
        }
    }
}

/// Starts the services, runs the chosen scenarios and gathers the figures.
async fn run(
    args: &Args,
    env: &mut Environment,
    bin_dir: &Path,
    binaries: &[PathBuf; 2],
) -> anyhow::Result<Results> {
    let machine = Machine::detect();
    let timeout = Duration::from_secs(args.timeout_secs);
    let ports = services::free_ports(2)?;
    let service_env = [
        ("DATABASE_URL", env.database_url.clone()),
        ("REDIS_URL", env.redis_url.clone()),
        ("BATON_REDIS_PREFIX", env.redis_prefix.clone()),
        ("LOG_LEVEL", args.service_log_level.clone()),
        ("DATABASE_MAX_CONNECTIONS", "20".to_owned()),
    ];

    // The orchestrator first: it migrates the fresh database before the runner starts.
    eprintln!(
        "starting {} (gRPC on 127.0.0.1:{})",
        binaries[0].display(),
        ports[0]
    );
    let orchestrator = Service::spawn(
        ORCHESTRATOR,
        &binaries[0],
        &[],
        ports[0],
        &service_env,
        &env.log_dir,
    )?;
    env.services.push(orchestrator);
    let api = Api::new(ports[0])?;
    let info = api
        .wait_ready(READY_TIMEOUT, || alive(&mut env.services))
        .await
        .context("the orchestrator did not become ready")?;
    eprintln!(
        "starting {} (health on 127.0.0.1:{})",
        binaries[1].display(),
        ports[1]
    );
    let runner = Service::spawn(
        RUNNER,
        &binaries[1],
        &[],
        ports[1],
        &service_env,
        &env.log_dir,
    )?;
    env.services.push(runner);
    let runner = env.service(RUNNER).expect("just pushed");
    services::wait_port(runner, READY_TIMEOUT).await?;
    let pids: Vec<u32> = env.services.iter().map(Service::pid).collect();

    let db = Db::connect(&env.database_url).await?;
    let chain_def = workflows::chain("chain10", 10);
    let fanout_def = workflows::fanout("fanout100", 100);
    let chain_ref = api.register(&chain_def.yaml).await?;
    let fanout_ref = api.register(&fanout_def.yaml).await?;

    // One run end to end, so that everything is connected before anything is timed.
    let smoke = tokio::time::timeout(Duration::from_secs(30), latency::one(&api, &chain_ref))
        .await
        .map_err(|_| anyhow!("the first run did not end within 30 s"))?
        .context("the first (smoke) run failed")?;
    eprintln!(
        "services ready; a first {chain_ref} run took {:.1} ms",
        smoke.total_ms
    );

    let mut results = Results {
        machine,
        bin_dir: bin_dir.to_path_buf(),
        log_dir: env.log_dir.clone(),
        database: env.database.clone(),
        redis_prefix: env.redis_prefix.clone(),
        postgres_version: db
            .server_version()
            .await
            .unwrap_or_else(|e| format!("(unknown: {e})")),
        redis_version: environment::redis_version(&env.redis_url)
            .await
            .unwrap_or_else(|e| format!("(unknown: {e})")),
        services: vec![
            ServiceInfo {
                name: format!("baton-{ORCHESTRATOR}"),
                pid: pids[0],
                build: Some(format!("{} ({})", info.version, info.git_revision)),
            },
            ServiceInfo {
                name: format!("baton-{RUNNER}"),
                pid: pids[1],
                build: None,
            },
        ],
        chain: None,
        chain_dispatch: None,
        fanout: None,
        lone: None,
        lone_dispatch: None,
        memory_sample_ms: MEMORY_SAMPLE.as_millis() as u64,
        memory: vec![MemoryRow {
            phase: "idle after start-up".into(),
            peak: false,
            kb: pids.iter().map(|p| memory::rss_kb(*p)).collect(),
        }],
    };

    if args.scenario.chain() {
        let runs = args.chain_runs as usize;
        eprintln!(
            "==> chain throughput: {runs} runs of {chain_ref}, {} in flight",
            args.concurrency
        );
        let config = throughput::Config {
            label: "chain",
            workflow_ref: &chain_ref,
            steps_per_run: chain_def.steps,
            runs,
            concurrency: args.concurrency as usize,
            timeout,
        };
        let sampler = Sampler::start(pids.clone(), MEMORY_SAMPLE);
        let outcome = bounded(
            timeout,
            "chain",
            throughput::run(&api, &db, &config, || alive(&mut env.services)),
        )
        .await?;
        let peaks = sampler.stop().await;
        results.memory.push(MemoryRow {
            phase: "peak during chain throughput".into(),
            peak: true,
            kb: peaks.kb,
        });
        results.chain_dispatch = Some(DispatchSummary::of(&db.dispatch(&outcome.run_ids).await?));
        results.chain = Some(outcome);
        tokio::time::sleep(SETTLE).await;
        results.memory.push(MemoryRow {
            phase: format!("idle {} s after chain throughput", SETTLE.as_secs()),
            peak: false,
            kb: pids.iter().map(|p| memory::rss_kb(*p)).collect(),
        });
    }

    if args.scenario.fanout() {
        let runs = args.fanout_runs as usize;
        eprintln!(
            "==> fan-out throughput: {runs} runs of {fanout_ref}, {} in flight",
            args.concurrency
        );
        let config = throughput::Config {
            label: "fan-out",
            workflow_ref: &fanout_ref,
            steps_per_run: fanout_def.steps,
            runs,
            concurrency: args.concurrency as usize,
            timeout,
        };
        let sampler = Sampler::start(pids.clone(), MEMORY_SAMPLE);
        let outcome = bounded(
            timeout,
            "fan-out",
            throughput::run(&api, &db, &config, || alive(&mut env.services)),
        )
        .await?;
        let peaks = sampler.stop().await;
        results.memory.push(MemoryRow {
            phase: "peak during fan-out throughput".into(),
            peak: true,
            kb: peaks.kb,
        });
        results.fanout = Some(outcome);
    }

    if args.scenario.lone() {
        let (warmup, runs) = (args.warmup_runs as usize, args.lone_runs as usize);
        eprintln!(
            "==> lone chain latency: {warmup} warm-up + {runs} runs of {chain_ref}, one at a time"
        );
        let sampler = Sampler::start(pids.clone(), MEMORY_SAMPLE);
        let config = latency::Config {
            workflow_ref: &chain_ref,
            steps_per_run: chain_def.steps,
            warmup,
            runs,
            timeout,
        };
        let outcome = bounded(
            timeout,
            "lone",
            latency::run(&api, &db, &config, || alive(&mut env.services)),
        )
        .await?;
        let peaks = sampler.stop().await;
        results.memory.push(MemoryRow {
            phase: "peak during lone chain latency".into(),
            peak: true,
            kb: peaks.kb,
        });
        results.lone_dispatch = Some(DispatchSummary::of(&db.dispatch(&outcome.run_ids).await?));
        results.lone = Some(outcome);
    }

    alive(&mut env.services)?;
    results.memory.push(MemoryRow {
        phase: "lifetime peak (VmHWM) at the end".into(),
        peak: true,
        kb: pids.iter().map(|p| memory::hwm_kb(*p)).collect(),
    });
    db.close().await;
    Ok(results)
}

/// Fails if a service process has exited.
fn alive(services: &mut [Service]) -> anyhow::Result<()> {
    services.iter_mut().try_for_each(Service::ensure_alive)
}

/// A scenario with a hard bound on top of its own, in case something below it hangs.
async fn bounded<T>(
    timeout: Duration,
    label: &str,
    scenario: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let bound = timeout + Duration::from_secs(30);
    tokio::time::timeout(bound, scenario)
        .await
        .map_err(|_| anyhow!("{label}: did not finish within {bound:?}"))?
}
