//! The scenarios, run the same way on whichever backend the platform was started on: a smoke
//! run, then chain throughput, fan-out throughput and lone-chain latency as `--scenario` selects,
//! with memory sampled over each.

use std::time::Duration;

use anyhow::anyhow;

use crate::args::Args;
use crate::environment::Environment;
use crate::memory::{self, Sampler};
use crate::platform::{Platform, alive};
use crate::report::{BackendResults, DispatchSummary, MemoryRow};
use crate::{latency, throughput, workflows};

/// How often resident memory is sampled.
pub const MEMORY_SAMPLE: Duration = Duration::from_millis(50);
/// How long the services rest before an idle memory sample.
const SETTLE: Duration = Duration::from_secs(2);

/// Registers the workflows, checks one run end to end, then runs the chosen scenarios.
pub async fn run(
    args: &Args,
    platform: &Platform,
    env: &mut Environment,
) -> anyhow::Result<BackendResults> {
    let Platform { api, db, pids, .. } = platform;
    let backend = platform.backend;
    let timeout = Duration::from_secs(args.timeout_secs);
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
        memory: vec![MemoryRow {
            phase: "idle after start-up".into(),
            peak: false,
            kb: pids.iter().map(|p| memory::rss_kb(*p)).collect(),
        }],
    };

    if args.scenario.chain() {
        let runs = args.chain_runs as usize;
        eprintln!(
            "==> {backend}: chain throughput: {runs} runs of {chain_ref}, {} in flight",
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
            throughput::run(api, db, &config, || alive(&mut env.services)),
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
            "==> {backend}: fan-out throughput: {runs} runs of {fanout_ref}, {} in flight",
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
            throughput::run(api, db, &config, || alive(&mut env.services)),
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
            "==> {backend}: lone chain latency: {warmup} warm-up + {runs} runs of {chain_ref}, \
             one at a time"
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
            latency::run(api, db, &config, || alive(&mut env.services)),
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
    Ok(results)
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
