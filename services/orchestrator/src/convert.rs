//! Stored state to wire messages.

use baton_engine::{AttemptRecord, RunState, StepStatus};
use baton_proto::{timestamp_from_micros, v1};
use baton_store::StoredWorkflow;
use baton_workflow::WorkflowDefinition;

fn json_text(v: &Option<serde_json::Value>) -> String {
    v.as_ref()
        .map(serde_json::Value::to_string)
        .unwrap_or_default()
}

pub fn workflow(w: &StoredWorkflow) -> v1::Workflow {
    let steps = serde_json::from_value::<WorkflowDefinition>(w.definition.clone())
        .map(|d| {
            d.steps
                .into_iter()
                .map(|s| v1::WorkflowStep {
                    id: s.id,
                    kind: s.kind,
                    needs: s.needs,
                })
                .collect()
        })
        .unwrap_or_default();
    v1::Workflow {
        owner: w.owner.clone(),
        name: w.name.clone(),
        version: w.version,
        workflow_ref: w.workflow_ref(),
        definition_json: w.definition.to_string(),
        digest: w.digest.clone(),
        steps,
        created_at: Some(timestamp_from_micros(w.created_at)),
    }
}

fn attempt(a: &AttemptRecord) -> v1::StepAttempt {
    v1::StepAttempt {
        attempt: a.attempt,
        status: a.status.to_proto() as i32,
        error: a.error.clone().unwrap_or_default(),
        worker_id: a.worker_id.clone().unwrap_or_default(),
        queued_at: a.queued_at.map(timestamp_from_micros),
        started_at: a.started_at.map(timestamp_from_micros),
        ended_at: Some(timestamp_from_micros(a.ended_at)),
        queue_time_ms: match (a.queued_at, a.started_at) {
            (Some(q), Some(s)) => (s - q).max(0) / 1_000,
            _ => 0,
        },
        execution_time_ms: a
            .started_at
            .map(|s| (a.ended_at - s).max(0) / 1_000)
            .unwrap_or(0),
        usage: a.usage,
    }
}

/// A run; with `attempts`, its steps carry their finished attempts.
pub fn run(r: &RunState, attempts: Option<&[AttemptRecord]>) -> v1::Run {
    let steps = r
        .steps
        .iter()
        .map(|s| v1::StepRun {
            step_id: s.step_id.clone(),
            kind: s.kind.clone(),
            status: s.status.to_proto() as i32,
            attempt: s.attempt,
            output_json: if s.status == StepStatus::Completed {
                json_text(&s.output)
            } else {
                String::new()
            },
            error: s.error.clone().unwrap_or_default(),
            queued_at: s.queued_at.map(timestamp_from_micros),
            started_at: s.started_at.map(timestamp_from_micros),
            ended_at: s.ended_at.map(timestamp_from_micros),
            attempts: attempts
                .unwrap_or_default()
                .iter()
                .filter(|a| a.step_id == s.step_id)
                .map(attempt)
                .collect(),
        })
        .collect();
    v1::Run {
        id: r.id.to_string(),
        workflow_ref: r.workflow_ref.clone(),
        tenant: r.tenant.clone(),
        status: r.status.to_proto() as i32,
        inputs_json: r.inputs.to_string(),
        output_json: json_text(&r.output),
        error: r.error.clone().unwrap_or_default(),
        idempotency_key: r.idempotency_key.clone().unwrap_or_default(),
        created_at: Some(timestamp_from_micros(r.created_at)),
        started_at: r.started_at.map(timestamp_from_micros),
        ended_at: r.ended_at.map(timestamp_from_micros),
        steps,
        last_sequence: r.last_sequence,
        workers: Vec::new(),
    }
}
