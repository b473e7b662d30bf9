//! Throughput scenarios: many runs started at once through gRPC, completion watched in the
//! database. Polling one count query is far cheaper for the services than a WatchRun stream per
//! run, so the measurement does not load what it measures.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt, stream};
use uuid::Uuid;

use crate::api::Api;
use crate::db::Db;
use crate::stats::Summary;

/// How often completion is polled.
const POLL: Duration = Duration::from_millis(20);

pub struct Config<'a> {
    /// For progress lines and errors, e.g. `chain`.
    pub label: &'a str,
    pub workflow_ref: &'a str,
    pub steps_per_run: usize,
    pub runs: usize,
    pub concurrency: usize,
    pub timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct Outcome {
    pub runs: usize,
    pub steps_per_run: usize,
    pub concurrency: usize,
    /// Completed steps of the runs, counted in `step_runs`.
    pub completed_steps: i64,
    /// From the first StartRun sent until all runs had ended, seconds.
    pub elapsed_s: f64,
    /// From the first StartRun sent until the last StartRun returned, seconds.
    pub submit_s: f64,
    /// `max(ended_at) - min(created_at)` over the runs, seconds.
    pub server_span_s: f64,
    /// Duration of each StartRun call, ms.
    pub start_rpc_ms: Option<Summary>,
    pub run_ids: Vec<Uuid>,
}

impl Outcome {
    pub fn runs_per_s(&self) -> f64 {
        self.runs as f64 / self.elapsed_s
    }
    pub fn steps_per_s(&self) -> f64 {
        self.completed_steps as f64 / self.elapsed_s
    }
    pub fn server_runs_per_s(&self) -> f64 {
        self.runs as f64 / self.server_span_s
    }
    pub fn server_steps_per_s(&self) -> f64 {
        self.completed_steps as f64 / self.server_span_s
    }
}

/// The tenant of the bench's key, and so of its runs.
const BENCH_TENANT: &str = "default";

/// Starts `config.runs` runs with `config.concurrency` StartRun calls in flight and waits until
/// all have ended. Fails if a call fails, the bound passes, a run ends other than completed, or
/// `alive` fails (a service process exited).
pub async fn run(
    api: &Api,
    db: &Db,
    config: &Config<'_>,
    mut alive: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Outcome> {
    let label = config.label;
    // Only the runs this scenario starts (created from now on, in the bench's tenant): not the
    // warm-up's, nor the history's, which would also make every poll read the whole table.
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    let started = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut submit = Some(tokio::spawn(submit_all(
        api.clone(),
        config.workflow_ref.to_owned(),
        config.runs,
        config.concurrency,
        started.clone(),
        t0,
    )));
    let mut submitted = None;
    let mut next_progress = t0 + Duration::from_secs(1);
    let elapsed = loop {
        alive()?;
        if submit.as_ref().is_some_and(|task| task.is_finished()) {
            let task = submit.take().expect("checked above");
            submitted = Some(task.await.context("the StartRun task panicked")??);
        }
        let (_, ended) = db
            .run_counts(BENCH_TENANT, config.workflow_ref, since)
            .await?;
        let done = ended.max(0) as usize;
        if done >= config.runs {
            break t0.elapsed();
        }
        let now = Instant::now();
        if now >= next_progress {
            next_progress += Duration::from_secs(1);
            eprintln!(
                "  {label}: {:>5.1} s  started {:>6}/{}  ended {:>6}/{}",
                t0.elapsed().as_secs_f64(),
                started.load(Ordering::Relaxed),
                config.runs,
                done,
                config.runs
            );
        }
        if now > t0 + config.timeout {
            if let Some(task) = submit.take() {
                task.abort();
            }
            bail!(
                "{label}: gave up after {:?}: {} of {} runs started, {done} ended",
                config.timeout,
                started.load(Ordering::Relaxed),
                config.runs
            );
        }
        tokio::time::sleep(POLL).await;
    };
    let (ids, rpc_ms, submit_elapsed) = match (submitted, submit) {
        (Some(s), _) => s,
        // Every run ended, so every StartRun has returned or is about to.
        (None, Some(task)) => tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .context("StartRun calls still pending after all runs ended")?
            .context("the StartRun task panicked")??,
        (None, None) => unreachable!("the submit task is either awaited or pending"),
    };
    check_completed(db, label, &ids).await?;
    Ok(Outcome {
        runs: config.runs,
        steps_per_run: config.steps_per_run,
        concurrency: config.concurrency,
        completed_steps: db.completed_steps(&ids).await?,
        elapsed_s: elapsed.as_secs_f64(),
        submit_s: submit_elapsed.as_secs_f64(),
        server_span_s: db.server_span(&ids).await?,
        start_rpc_ms: Summary::of(&rpc_ms),
        run_ids: ids,
    })
}

type Submitted = (Vec<Uuid>, Vec<f64>, Duration);

/// Issues the StartRun calls, `concurrency` at a time; stops at the first failure.
async fn submit_all(
    api: Api,
    workflow_ref: String,
    runs: usize,
    concurrency: usize,
    started: Arc<AtomicUsize>,
    t0: Instant,
) -> anyhow::Result<Submitted> {
    let results: Vec<(Uuid, f64)> = stream::iter(0..runs)
        .map(|_| {
            let (api, workflow_ref, started) = (api.clone(), workflow_ref.clone(), started.clone());
            async move {
                let t = Instant::now();
                let id = api.start_run(&workflow_ref).await?;
                started.fetch_add(1, Ordering::Relaxed);
                anyhow::Ok((id, t.elapsed().as_secs_f64() * 1000.0))
            }
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    let elapsed = t0.elapsed();
    let (ids, rpc_ms) = results.into_iter().unzip();
    Ok((ids, rpc_ms, elapsed))
}

/// Fails, listing a few, if any of the runs did not complete.
pub async fn check_completed(db: &Db, label: &str, ids: &[Uuid]) -> anyhow::Result<()> {
    let statuses = db.statuses(ids).await?;
    let completed = statuses
        .iter()
        .find(|(s, _)| s == "completed")
        .map_or(0, |(_, n)| *n);
    if completed as usize == ids.len() {
        return Ok(());
    }
    let breakdown: Vec<String> = statuses.iter().map(|(s, n)| format!("{n} {s}")).collect();
    let examples: Vec<String> = db
        .not_completed(ids)
        .await?
        .into_iter()
        .map(|(id, status, error)| format!("  run {id}: {status}: {}", error.unwrap_or_default()))
        .collect();
    bail!(
        "{label}: only {completed} of {} runs completed ({}); for example:\n{}",
        ids.len(),
        breakdown.join(", "),
        examples.join("\n")
    )
}
