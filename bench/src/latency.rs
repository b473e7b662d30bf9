//! The lone-chain latency scenario: one run at a time on idle services, timed from sending
//! StartRun to receiving the run's end event on WatchRun, which is what a user waiting on a run
//! experiences.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use baton_proto::v1::RunEventType;
use uuid::Uuid;

use crate::api::Api;
use crate::db::Db;
use crate::stats::Summary;
use crate::throughput::check_completed;

/// Longest one run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy)]
pub struct Config<'a> {
    pub workflow_ref: &'a str,
    pub steps_per_run: usize,
    pub warmup: usize,
    pub runs: usize,
    /// Longest the whole scenario may take.
    pub timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct Outcome {
    pub runs: usize,
    pub warmup: usize,
    pub steps_per_run: usize,
    /// StartRun sent → end event received, ms, of the measured runs.
    pub latency_ms: Summary,
    /// The StartRun calls of the measured runs, ms.
    pub start_rpc_ms: Option<Summary>,
    /// The end events' server `time` → their receipt on WatchRun, ms.
    pub delivery_ms: Option<Summary>,
    /// Server side, `started_at - created_at` of the measured runs, ms.
    pub server_start_ms: Option<Summary>,
    /// Server side, `ended_at - created_at` of the measured runs, ms.
    pub server_end_ms: Option<Summary>,
    /// Ids of the measured runs (not the warm-up ones).
    pub run_ids: Vec<Uuid>,
}

/// Starts `warmup + runs` runs one after the other, each waited for through WatchRun; `alive` is
/// checked between runs (it fails when a service process has exited).
pub async fn run(
    api: &Api,
    db: &Db,
    config: &Config<'_>,
    mut alive: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Outcome> {
    let Config {
        workflow_ref,
        steps_per_run,
        warmup,
        runs,
        timeout,
    } = *config;
    let t0 = Instant::now();
    let mut next_progress = t0 + Duration::from_secs(1);
    let mut latencies = Vec::with_capacity(runs);
    let mut ids = Vec::with_capacity(runs);
    let (mut start_rpc, mut delivery) = (Vec::new(), Vec::new());
    for i in 0..warmup + runs {
        alive()?;
        let timed = one(api, workflow_ref)
            .await
            .with_context(|| format!("lone run #{}", i + 1))?;
        let ms = timed.total_ms;
        if i >= warmup {
            latencies.push(ms);
            start_rpc.push(timed.start_rpc_ms);
            delivery.extend(timed.delivery_ms);
            ids.push(timed.id);
        }
        let now = Instant::now();
        if now >= next_progress {
            next_progress += Duration::from_secs(1);
            let phase = if i < warmup { "warm-up" } else { "measured" };
            eprintln!(
                "  lone: {:>5.1} s  {} of {} runs done ({phase}), last {ms:.1} ms",
                t0.elapsed().as_secs_f64(),
                i + 1,
                warmup + runs
            );
        }
        if now > t0 + timeout {
            bail!(
                "lone: gave up after {timeout:?} with {} of {} runs done",
                i + 1,
                warmup + runs
            );
        }
    }
    check_completed(db, "lone", &ids).await?;
    let (server_start, server_end) = db.run_spans(&ids).await?;
    Ok(Outcome {
        start_rpc_ms: Summary::of(&start_rpc),
        delivery_ms: Summary::of(&delivery),
        server_start_ms: Summary::of(&server_start),
        server_end_ms: Summary::of(&server_end),
        runs,
        warmup,
        steps_per_run,
        latency_ms: Summary::of(&latencies).context("no measured runs")?,
        run_ids: ids,
    })
}

/// One run timed from the client.
pub struct Timed {
    pub id: Uuid,
    /// StartRun sent → end event received, ms.
    pub total_ms: f64,
    /// The StartRun call, ms.
    pub start_rpc_ms: f64,
    /// The end event's server time → its receipt, ms.
    pub delivery_ms: Option<f64>,
}

/// One run, waited for through WatchRun; fails unless it completes.
pub async fn one(api: &Api, workflow_ref: &str) -> anyhow::Result<Timed> {
    let t = Instant::now();
    let id = api.start_run(workflow_ref).await?;
    let start_rpc_ms = t.elapsed().as_secs_f64() * 1000.0;
    let end = tokio::time::timeout(RUN_TIMEOUT, api.wait_end(id))
        .await
        .map_err(|_| anyhow::anyhow!("run {id} did not end within {RUN_TIMEOUT:?}"))??;
    let total_ms = t.elapsed().as_secs_f64() * 1000.0;
    if end.kind != RunEventType::RunCompleted {
        bail!("run {id} ended with {}", end.kind.as_str_name());
    }
    Ok(Timed {
        id,
        total_ms,
        start_rpc_ms,
        delivery_ms: end.delivery_ms,
    })
}
