//! A run's attempt history as `get_run` returns it. Only attempts replaced by a retry are
//! written to `step_attempts`; each step's final attempt lives in the step's own row and is
//! added here, the same way for every backend.

use baton_engine::{AttemptRecord, RunState, StepStatus};

/// `attempts` (as stored) with each finished step's final attempt, ordered by when they ended.
pub(crate) fn with_final_attempts(
    run: &RunState,
    mut attempts: Vec<AttemptRecord>,
) -> Vec<AttemptRecord> {
    for step in &run.steps {
        let finished = matches!(step.status, StepStatus::Completed | StepStatus::Failed);
        let Some(ended_at) = step.ended_at.filter(|_| finished && step.attempt > 0) else {
            continue;
        };
        let recorded = attempts
            .iter()
            .any(|a| a.step_id == step.step_id && a.attempt == step.attempt);
        if !recorded {
            attempts.push(AttemptRecord {
                step_id: step.step_id.clone(),
                attempt: step.attempt,
                status: step.status,
                error: step
                    .error
                    .clone()
                    .filter(|_| step.status == StepStatus::Failed),
                worker_id: step.worker_id.clone(),
                queued_at: step.queued_at,
                started_at: step.started_at,
                ended_at,
                usage: step.usage,
            });
        }
    }
    attempts.sort_by(|a, b| {
        (a.ended_at, &a.step_id, a.attempt).cmp(&(b.ended_at, &b.step_id, b.attempt))
    });
    attempts
}

/// The workers that ran `attempts`, each once, sorted.
pub(crate) fn worker_ids(attempts: &[AttemptRecord]) -> Vec<&str> {
    let mut ids: Vec<&str> = attempts
        .iter()
        .filter_map(|a| a.worker_id.as_deref())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}
