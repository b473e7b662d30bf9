//! Orchestration metrics, recorded from what a committed batch changed, so each run and step is
//! counted once by the replica that changed it.

use baton_engine::RunState;
use baton_metrics::{Metrics, RunOutcome};

/// Orchestration metrics from what a committed batch changed: each event says what ended and
/// the step or run says when it began.
pub(super) fn record_metrics(metrics: &Metrics, runs: &[RunState]) {
    use baton_proto::v1::RunEventType as Ev;
    let secs = |from: Option<i64>, to: Option<i64>| match (from, to) {
        (Some(a), Some(b)) => Some((b - a).max(0) as f64 / 1e6),
        _ => None,
    };
    for run in runs {
        let definition = run.workflow_ref.as_str();
        for event in &run.new_events {
            let step = event
                .step_id
                .as_deref()
                .and_then(|id| run.steps.iter().find(|s| s.step_id == id));
            match (event.event_type, step) {
                (Ev::RunStarted, _) => metrics.run_started(definition),
                (Ev::RunCompleted | Ev::RunFailed | Ev::RunCancelled | Ev::RunTimedOut, _) => {
                    let outcome = match event.event_type {
                        Ev::RunCompleted => RunOutcome::Completed,
                        Ev::RunFailed => RunOutcome::Failed,
                        Ev::RunCancelled => RunOutcome::Cancelled,
                        _ => RunOutcome::TimedOut,
                    };
                    let started = run.started_at.unwrap_or(run.created_at);
                    metrics.run_ended(
                        definition,
                        outcome,
                        secs(Some(started), Some(event.time)).unwrap_or(0.0),
                    );
                }
                (Ev::StepStarted, Some(s)) => {
                    if let Some(queued) = secs(s.queued_at, s.started_at) {
                        metrics.step_queued_for(definition, &s.step_id, queued);
                    }
                }
                (Ev::StepCompleted | Ev::StepFailed | Ev::StepRetrying, Some(s)) => {
                    if let Some(ran) = secs(s.started_at, Some(event.time)) {
                        metrics.step_ended(
                            definition,
                            &s.step_id,
                            event.event_type == Ev::StepCompleted,
                            ran,
                        );
                    }
                }
                _ => {}
            }
        }
    }
}
