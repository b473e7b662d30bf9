//! Run and step metrics: how many runs start and how they end, and where the time goes (queued
//! versus running), per workflow definition.
//!
//! `definition` is always `owner/name@version`. Durations are seconds, bucketed by
//! [`DURATION_BUCKETS`]: 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
//! 10, 30, 60, 120, 300, 600, 1800 and 3600 s (plus `+Inf`), which spans sub-millisecond steps up to
//! hour-long runs.

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};

use crate::MetricsError;

/// Counter `orchestration_runs_total{definition,status}`; status is `started`, `completed`,
/// `failed` or `aborted`.
pub const ORCHESTRATION_RUNS_TOTAL: &str = "orchestration_runs_total";
/// Histogram `orchestration_run_duration_seconds{definition,status}`, start to end.
pub const ORCHESTRATION_RUN_DURATION_SECONDS: &str = "orchestration_run_duration_seconds";
/// Histogram `orchestration_step_duration_seconds{definition,step,status}`; status is
/// `completed` or `failed`.
pub const ORCHESTRATION_STEP_DURATION_SECONDS: &str = "orchestration_step_duration_seconds";
/// Histogram `orchestration_step_queue_seconds{definition,step}`, queued to running.
/// Run starts held back because `BATON_MAX_RUNNING_RUNS` runs were running; each such run
/// stays queued and starts as room is made.
pub const BATON_RUN_STARTS_HELD_TOTAL: &str = "baton_run_starts_held_total";
pub const ORCHESTRATION_STEP_QUEUE_SECONDS: &str = "orchestration_step_queue_seconds";

/// Bucket bounds in seconds for orchestration durations: sub-millisecond to one hour.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

const STATUS_STARTED: &str = "started";
const STATUS_COMPLETED: &str = "completed";
const STATUS_FAILED: &str = "failed";
const STATUS_ABORTED: &str = "aborted";

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunOutcome {
    /// Every step succeeded.
    Completed,
    /// A step failed and the run gave up.
    Failed,
    /// Someone cancelled the run; recorded as `aborted`.
    Cancelled,
    /// The run hit its deadline; recorded as `aborted`.
    TimedOut,
}

impl RunOutcome {
    /// The `status` label value recorded for this outcome.
    pub fn status_label(self) -> &'static str {
        match self {
            Self::Completed => STATUS_COMPLETED,
            Self::Failed => STATUS_FAILED,
            Self::Cancelled | Self::TimedOut => STATUS_ABORTED,
        }
    }
}

/// The orchestration metric families, registered in one registry.
#[derive(Clone)]
pub(crate) struct OrchestrationMetrics {
    runs_total: IntCounterVec,
    run_duration: HistogramVec,
    step_duration: HistogramVec,
    step_queue: HistogramVec,
    starts_held: IntCounter,
}

impl OrchestrationMetrics {
    pub(crate) fn register(registry: &Registry) -> Result<Self, MetricsError> {
        let runs_total = IntCounterVec::new(
            Opts::new(
                ORCHESTRATION_RUNS_TOTAL,
                "Workflow runs by definition and status (started, completed, failed, aborted).",
            ),
            &["definition", "status"],
        )?;
        let run_duration = duration_histogram(
            ORCHESTRATION_RUN_DURATION_SECONDS,
            "Workflow run duration from start to end, in seconds.",
            &["definition", "status"],
        )?;
        let step_duration = duration_histogram(
            ORCHESTRATION_STEP_DURATION_SECONDS,
            "Step execution time in seconds, by outcome (completed, failed).",
            &["definition", "step", "status"],
        )?;
        let step_queue = duration_histogram(
            ORCHESTRATION_STEP_QUEUE_SECONDS,
            "Time a step waited between being queued and starting to run, in seconds.",
            &["definition", "step"],
        )?;
        registry.register(Box::new(runs_total.clone()))?;
        registry.register(Box::new(run_duration.clone()))?;
        registry.register(Box::new(step_duration.clone()))?;
        let starts_held = IntCounter::new(
            BATON_RUN_STARTS_HELD_TOTAL,
            "Run starts held back by admission control; the runs start as running runs end.",
        )?;
        registry.register(Box::new(step_queue.clone()))?;
        registry.register(Box::new(starts_held.clone()))?;
        Ok(Self {
            starts_held,
            runs_total,
            run_duration,
            step_duration,
            step_queue,
        })
    }

    pub(crate) fn run_started(&self, definition: &str) {
        self.runs_total
            .with_label_values(&[definition, STATUS_STARTED])
            .inc();
    }

    pub(crate) fn run_ended(&self, definition: &str, outcome: RunOutcome, duration_secs: f64) {
        let status = outcome.status_label();
        self.runs_total
            .with_label_values(&[definition, status])
            .inc();
        self.run_duration
            .with_label_values(&[definition, status])
            .observe(duration_secs);
    }

    pub(crate) fn step_ended(&self, definition: &str, step: &str, succeeded: bool, secs: f64) {
        let status = if succeeded {
            STATUS_COMPLETED
        } else {
            STATUS_FAILED
        };
        self.step_duration
            .with_label_values(&[definition, step, status])
            .observe(secs);
    }

    pub(crate) fn starts_held(&self, n: u64) {
        self.starts_held.inc_by(n);
    }

    pub(crate) fn step_queued_for(&self, definition: &str, step: &str, secs: f64) {
        self.step_queue
            .with_label_values(&[definition, step])
            .observe(secs);
    }
}

fn duration_histogram(
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<HistogramVec, MetricsError> {
    let opts = HistogramOpts::new(name, help).buckets(DURATION_BUCKETS.to_vec());
    Ok(HistogramVec::new(opts, labels)?)
}
