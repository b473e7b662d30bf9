//! The scenarios, run the same way on whichever backend the platform was started on: a smoke
//! run, then chain throughput, fan-out throughput, lone-chain latency and http steps as
//! `--scenario` selects, with memory sampled over each; then, with `--history-runs`, the first
//! three again on a production database filled with finished runs.

use std::time::Duration;

use anyhow::anyhow;

use crate::args::Args;
use crate::environment::Environment;
use crate::loopback::Loopback;
use crate::memory::{self, Sampler};
use crate::platform::{Platform, alive};
use crate::report::{AfterHistory, BackendResults, DispatchSummary, History, MemoryRow};
use crate::{history, http_steps, latency, throughput, workflows};

/// How often resident memory is sampled.
pub const MEMORY_SAMPLE: Duration = Duration::from_millis(50);
/// How long the services rest before an idle memory sample.
const SETTLE: Duration = Duration::from_secs(2);
/// Parallel `http` steps in each run of the http scenario.
const HTTP_BRANCHES: usize = 20;

/// Registers the workflows, checks one run end to end, then runs the chosen scenarios; with
/// `--history-runs`, fills the production database with finished runs and runs them again.
pub async fn run(
    args: &Args,
    platform: &Platform,
    env: &mut Environment,
) -> anyhow::Result<BackendResults> {
    let Platform { api, db, pids, .. } = platform;
    let backend = platform.backend;
    let chain_def = workflows::chain("chain10", 10);
    let fanout_def = workflows::fanout("fanout100", 100);
    let chain_ref = api.register(&chain_def.yaml).await?;
    let fanout_ref = api.register(&fanout_def.yaml).await?;

    // One run end to end, so that everything is connected before anything is timed.
    let smoke = tokio::time::timeout(Duration::from_secs(30), latency::one(api, &chain_ref))
        .await
        .map_err(|_| anyhow!("the first run did not end within 30 s"))?
        .map_err(|e| e.context("the first (smoke) run failed"))?;
    eprintln!(
        "{backend}: services ready; a first {chain_ref} run took {:.1} ms",
        smoke.total_ms
    );

    let mut results = BackendResults {
        backend,
        versions: platform.versions.clone(),
        scratch: platform.scratch.clone(),
        services: platform.services.clone(),
        chain: None,
        chain_dispatch: None,
        fanout: None,
        lone: None,
        lone_dispatch: None,
        http: None,
        memory: vec![MemoryRow {
            phase: "idle after start-up".into(),
            peak: false,
            kb: pids.iter().map(|p| memory::rss_kb(*p)).collect(),
        }],
        history: None,
    };
    let workflows = Workflows {
        chain: (&chain_def, &chain_ref),
        fanout: (&fanout_def, &fanout_ref),
    };
    let fresh = measure(args, platform, env, &workflows, "").await?;
    results.memory.extend(fresh.memory);
    results.chain = fresh.chain;
    results.chain_dispatch = fresh.chain_dispatch;
    results.fanout = fresh.fanout;
    results.lone = fresh.lone;
    results.lone_dispatch = fresh.lone_dispatch;

    if args.scenario.http() {
        let (outcome, memory) = http(args, platform, env).await?;
        results.http = Some(outcome);
        results.memory.extend(memory);
    }

    if args.history_runs > 0 {
        let runs = u64::from(args.history_runs);
        results.history = Some(match db.postgres_pool() {
            Some(pool) => {
                eprintln!(
                    "==> {backend}: filling history with {runs} finished runs of {chain_ref}"
                );
                let filled = history::fill(pool, &chain_ref, runs).await?;
                eprintln!(
                    "history: {runs} runs inserted in {:.1} s; waiting for the services' table \
                     upkeep to see them (the bench runs no VACUUM or ANALYZE)",
                    filled.elapsed_s
                );
                let upkeep_s = history::await_upkeep(
                    pool,
                    std::time::Duration::from_secs(args.history_upkeep_timeout_secs),
                )
                .await?;
                if let Some(s) = upkeep_s {
                    eprintln!("history: tables analyzed {s:.1} s after the fill; measuring again");
                }
                let label = " after history";
                let after = measure(args, platform, env, &workflows, label).await?;
                results.memory.extend(after.memory);
                History {
                    runs,
                    after: Some(AfterHistory {
                        fill_s: filled.elapsed_s,
                        upkeep_s,
                        steps_per_run: filled.template.steps,
                        attempts_per_run: filled.template.attempts,
                        events_per_run: filled.template.events,
                        chain: after.chain,
                        chain_dispatch: after.chain_dispatch,
                        fanout: after.fanout,
                        lone: after.lone,
                        lone_dispatch: after.lone_dispatch,
                    }),
                }
            }
            None => {
                eprintln!("{backend}: history is not filled on this backend (production only)");
                History { runs, after: None }
            }
        });
    }

    alive(&mut env.services)?;
    results.memory.push(MemoryRow {
        phase: "lifetime peak (VmHWM) at the end".into(),
        peak: true,
        kb: pids.iter().map(|p| memory::hwm_kb(*p)).collect(),
    });
    Ok(results)
}

/// The workflows the scenarios run: (definition, registered ref).
struct Workflows<'a> {
    chain: (&'a workflows::Definition, &'a str),
    fanout: (&'a workflows::Definition, &'a str),
}

/// The figures of one pass over the chosen scenarios.
#[derive(Default)]
struct Measured {
    chain: Option<throughput::Outcome>,
    chain_dispatch: Option<DispatchSummary>,
    fanout: Option<throughput::Outcome>,
    lone: Option<latency::Outcome>,
    lone_dispatch: Option<DispatchSummary>,
    memory: Vec<MemoryRow>,
}

/// One pass over the scenarios `--scenario` selects; `label` follows their names in the
/// progress lines and memory phases (empty on the fresh database).
async fn measure(
    args: &Args,
    platform: &Platform,
    env: &mut Environment,
    workflows: &Workflows<'_>,
    label: &str,
) -> anyhow::Result<Measured> {
    let Platform { api, db, pids, .. } = platform;
    let backend = platform.backend;
    let timeout = Duration::from_secs(args.timeout_secs);
    let (chain_def, chain_ref) = workflows.chain;
    let (fanout_def, fanout_ref) = workflows.fanout;
    let mut measured = Measured::default();
    if args.scenario.chain() {
        let runs = args.chain_runs as usize;
        eprintln!(
            "==> {backend}: chain throughput{label}: {runs} runs of {chain_ref}, {} in flight",
            args.concurrency
        );
        let config = throughput::Config {
            label: "chain",
            workflow_ref: chain_ref,
            steps_per_run: chain_def.steps,
            runs,
            concurrency: args.concurrency as usize,
            timeout,
        };
        let sampler = Sampler::start(pids.clone(), MEMORY_SAMPLE);
        let outcome = bounded(
            timeout,
            "chain",
            throughput::run(api, db, &config, || alive(&mut env.services)),
        )
        .await?;
        let peaks = sampler.stop().await;
        measured.memory.push(MemoryRow {
            phase: format!("peak during chain throughput{label}"),
            peak: true,
            kb: peaks.kb,
        });
        measured.chain_dispatch = Some(DispatchSummary::of(&db.dispatch(&outcome.run_ids).await?));
        measured.chain = Some(outcome);
        tokio::time::sleep(SETTLE).await;
        measured.memory.push(MemoryRow {
            phase: format!("idle {} s after chain throughput{label}", SETTLE.as_secs()),
            peak: false,
            kb: pids.iter().map(|p| memory::rss_kb(*p)).collect(),
        });
    }

    if args.scenario.fanout() {
        let runs = args.fanout_runs as usize;
        eprintln!(
            "==> {backend}: fan-out throughput{label}: {runs} runs of {fanout_ref}, {} in flight",
            args.concurrency
        );
        let config = throughput::Config {
            label: "fan-out",
            workflow_ref: fanout_ref,
            steps_per_run: fanout_def.steps,
            runs,
            concurrency: args.concurrency as usize,
            timeout,
        };
        let sampler = Sampler::start(pids.clone(), MEMORY_SAMPLE);
        let outcome = bounded(
            timeout,
            "fan-out",
            throughput::run(api, db, &config, || alive(&mut env.services)),
        )
        .await?;
        let peaks = sampler.stop().await;
        measured.memory.push(MemoryRow {
            phase: format!("peak during fan-out throughput{label}"),
            peak: true,
            kb: peaks.kb,
        });
        measured.fanout = Some(outcome);
    }

    if args.scenario.lone() {
        let (warmup, runs) = (args.warmup_runs as usize, args.lone_runs as usize);
        eprintln!(
            "==> {backend}: lone chain latency{label}: {warmup} warm-up + {runs} runs of {chain_ref}, \
             one at a time"
        );
        let sampler = Sampler::start(pids.clone(), MEMORY_SAMPLE);
        let config = latency::Config {
            workflow_ref: chain_ref,
            steps_per_run: chain_def.steps,
            warmup,
            runs,
            timeout,
        };
        let outcome = bounded(
            timeout,
            "lone",
            latency::run(api, db, &config, || alive(&mut env.services)),
        )
        .await?;
        let peaks = sampler.stop().await;
        measured.memory.push(MemoryRow {
            phase: format!("peak during lone chain latency{label}"),
            peak: true,
            kb: peaks.kb,
        });
        measured.lone_dispatch = Some(DispatchSummary::of(&db.dispatch(&outcome.run_ids).await?));
        measured.lone = Some(outcome);
    }

    Ok(measured)
}

/// The http scenario, on a loopback server started for it and stopped after: one run end to
/// end (so a refused or failing request shows before anything is timed), then the measured runs,
/// with memory sampled over them.
async fn http(
    args: &Args,
    platform: &Platform,
    env: &mut Environment,
) -> anyhow::Result<(http_steps::Outcome, Vec<MemoryRow>)> {
    let server = Loopback::start().await?;
    let measured = http_on(args, platform, env, &server).await;
    let stopped = server.stop().await;
    let measured = measured?;
    stopped?;
    Ok(measured)
}

async fn http_on(
    args: &Args,
    platform: &Platform,
    env: &mut Environment,
    server: &Loopback,
) -> anyhow::Result<(http_steps::Outcome, Vec<MemoryRow>)> {
    let Platform { api, db, pids, .. } = platform;
    let backend = platform.backend;
    let timeout = Duration::from_secs(args.timeout_secs);
    let name = format!("http{HTTP_BRANCHES}");
    let definition = workflows::http_fanout(&name, HTTP_BRANCHES, &server.base_url());
    let workflow_ref = api.register(&definition.yaml).await?;
    let config = |label, runs, concurrency| throughput::Config {
        label,
        workflow_ref: &workflow_ref,
        steps_per_run: definition.steps,
        runs,
        concurrency,
        timeout,
    };

    let first = config("http (first run)", 1, 1);
    let first = bounded(
        timeout,
        "http (first run)",
        http_steps::run(api, db, server, &first, HTTP_BRANCHES, || {
            alive(&mut env.services)
        }),
    )
    .await?;
    eprintln!(
        "{backend}: a first {workflow_ref} run took {:.1} ms against {}",
        first.throughput.elapsed_s * 1000.0,
        server.base_url()
    );

    let runs = args.http_runs as usize;
    eprintln!(
        "==> {backend}: http steps: {runs} runs of {workflow_ref} ({HTTP_BRANCHES} parallel GETs \
         each), {} in flight",
        args.concurrency
    );
    let measured = config("http", runs, args.concurrency as usize);
    let sampler = Sampler::start(pids.clone(), MEMORY_SAMPLE);
    let outcome = bounded(
        timeout,
        "http",
        http_steps::run(api, db, server, &measured, HTTP_BRANCHES, || {
            alive(&mut env.services)
        }),
    )
    .await?;
    let peaks = sampler.stop().await;
    let memory = vec![MemoryRow {
        phase: "peak during http steps".into(),
        peak: true,
        kb: peaks.kb,
    }];
    Ok((outcome, memory))
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
