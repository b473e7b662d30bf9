//! The `--output json` shape of Baton's messages, built by hand from the proto fields so it stays
//! stable and friendly to `jq`: enums as lower-case names (`"completed"`), times as RFC 3339,
//! embedded JSON strings (`inputs_json`, `output_json`, …) parsed back into values.

use baton_proto::v1::{
    ApiKey, GetInfoResponse, ResourceUsage, Role, Run, RunEvent, RunEventType, RunStatus,
    StepAttempt, StepRun, StepStatus, WorkerHost, Workflow,
};
use serde_json::{Value, json};

use crate::output::{enum_label, rfc3339, span_micros, unknown_label};

/// A run status as a label: `completed`, `timed_out`, …
pub fn run_status_label(value: i32) -> String {
    RunStatus::try_from(value)
        .map(|s| enum_label(s.as_str_name(), "RUN_STATUS_"))
        .unwrap_or_else(|_| unknown_label(value))
}

/// A step status as a label: `retrying`, `skipped`, …
pub fn step_status_label(value: i32) -> String {
    StepStatus::try_from(value)
        .map(|s| enum_label(s.as_str_name(), "STEP_STATUS_"))
        .unwrap_or_else(|_| unknown_label(value))
}

/// An event type as a label: `step_completed`, `run_started`, …
pub fn event_type_label(value: i32) -> String {
    RunEventType::try_from(value)
        .map(|t| enum_label(t.as_str_name(), "RUN_EVENT_TYPE_"))
        .unwrap_or_else(|_| unknown_label(value))
}

/// A role as a label: `admin`, `operator`, `viewer`.
pub fn role_label(value: i32) -> String {
    Role::try_from(value)
        .map(|r| enum_label(r.as_str_name(), "ROLE_"))
        .unwrap_or_else(|_| unknown_label(value))
}

/// An API key, never with a token (a key's token is not kept).
pub fn api_key(key: &ApiKey) -> Value {
    json!({
        "id": key.id,
        "tenant": key.tenant,
        "role": role_label(key.role),
        "name": key.name,
        "created_at": rfc3339(key.created_at.as_ref()),
        "created_by": key.created_by,
        "revoked_at": rfc3339(key.revoked_at.as_ref()),
    })
}

/// An embedded JSON text as a value: empty is `null`, and text that is not JSON stays a string.
pub fn embedded(text: &str) -> Value {
    if text.trim().is_empty() {
        return Value::Null;
    }
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// An optional string: empty is `null`.
fn opt(text: &str) -> Value {
    if text.is_empty() {
        Value::Null
    } else {
        Value::String(text.to_owned())
    }
}

pub fn workflow(wf: &Workflow) -> Value {
    json!({
        "workflow_ref": wf.workflow_ref,
        "owner": wf.owner,
        "name": wf.name,
        "version": wf.version,
        "digest": wf.digest,
        "created_at": rfc3339(wf.created_at.as_ref()),
        "steps": wf.steps.iter().map(|s| json!({
            "id": s.id,
            "kind": s.kind,
            "needs": s.needs,
        })).collect::<Vec<_>>(),
        "definition": embedded(&wf.definition_json),
    })
}

/// A run; `with_steps` is false for listings, whose runs carry no steps.
pub fn run(run: &Run, with_steps: bool) -> Value {
    let mut value = json!({
        "id": run.id,
        "workflow_ref": run.workflow_ref,
        "tenant": run.tenant,
        "status": run_status_label(run.status),
        "inputs": embedded(&run.inputs_json),
        "output": embedded(&run.output_json),
        "error": opt(&run.error),
        "idempotency_key": opt(&run.idempotency_key),
        "created_at": rfc3339(run.created_at.as_ref()),
        "started_at": rfc3339(run.started_at.as_ref()),
        "ended_at": rfc3339(run.ended_at.as_ref()),
        "duration_ms": span_micros(run.started_at.as_ref(), run.ended_at.as_ref()).map(|us| us / 1_000),
        "last_sequence": run.last_sequence,
    });
    if with_steps {
        value["steps"] = run.steps.iter().map(step).collect();
        value["workers"] = run.workers.iter().map(worker).collect();
    }
    value
}

pub fn step(step: &StepRun) -> Value {
    json!({
        "step_id": step.step_id,
        "kind": step.kind,
        "status": step_status_label(step.status),
        "attempt": step.attempt,
        "output": embedded(&step.output_json),
        "error": opt(&step.error),
        "queued_at": rfc3339(step.queued_at.as_ref()),
        "started_at": rfc3339(step.started_at.as_ref()),
        "ended_at": rfc3339(step.ended_at.as_ref()),
        "duration_ms": span_micros(step.started_at.as_ref(), step.ended_at.as_ref()).map(|us| us / 1_000),
        "attempts": step.attempts.iter().map(attempt).collect::<Vec<_>>(),
    })
}

fn attempt(attempt: &StepAttempt) -> Value {
    json!({
        "attempt": attempt.attempt,
        "status": step_status_label(attempt.status),
        "error": opt(&attempt.error),
        "worker_id": opt(&attempt.worker_id),
        "queued_at": rfc3339(attempt.queued_at.as_ref()),
        "started_at": rfc3339(attempt.started_at.as_ref()),
        "ended_at": rfc3339(attempt.ended_at.as_ref()),
        "queue_time_ms": attempt.queue_time_ms,
        "execution_time_ms": attempt.execution_time_ms,
        "usage": attempt.usage.as_ref().map(usage),
    })
}

fn usage(u: &ResourceUsage) -> Value {
    json!({
        "queue_time_ms": u.queue_time_ms,
        "execution_time_ms": u.execution_time_ms,
        "total_duration_ms": u.total_duration_ms,
        "memory_start_mb": u.memory_start_mb,
        "memory_peak_mb": u.memory_peak_mb,
        "memory_end_mb": u.memory_end_mb,
        "cpu_percent": u.cpu_percent,
        "thread_count": u.thread_count,
    })
}

/// A worker process and its host.
pub fn worker(h: &WorkerHost) -> Value {
    json!({
        "worker_id": h.worker_id,
        "os": h.os,
        "arch": h.arch,
        "hostname": h.hostname,
        "physical_cores": h.physical_cores,
        "logical_cores": h.logical_cores,
        "total_memory_mb": h.total_memory_mb,
        "runtime_version": h.runtime_version,
        "container_runtime": h.container_runtime,
        "pid": h.pid,
    })
}

/// An event; `duration_ms` is what the watcher measured from the matching start event, if any.
pub fn event(event: &RunEvent, duration_micros: Option<i64>) -> Value {
    json!({
        "run_id": event.run_id,
        "sequence": event.sequence,
        "type": event_type_label(event.r#type),
        "step_id": opt(&event.step_id),
        "attempt": event.attempt,
        "time": rfc3339(event.time.as_ref()),
        "message": opt(&event.message),
        "output": embedded(&event.output_json),
        "workflow_ref": event.workflow_ref,
        "tenant": event.tenant,
        "duration_ms": duration_micros.map(|us| us / 1_000),
    })
}

pub fn info(info: &GetInfoResponse) -> Value {
    json!({
        "service": info.service,
        "version": info.version,
        "git_revision": info.git_revision,
        "uptime_seconds": info.uptime_seconds,
        "auth_mode": info.auth_mode,
        "principal": info.principal,
        "tenant": info.tenant,
        "role": role_label(info.role),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(run_status_label(RunStatus::TimedOut as i32), "timed_out");
        assert_eq!(step_status_label(StepStatus::Retrying as i32), "retrying");
        assert_eq!(
            event_type_label(RunEventType::StepCompleted as i32),
            "step_completed"
        );
        assert_eq!(run_status_label(99), "unknown(99)");
    }

    #[test]
    fn runs_parse_embedded_json() {
        let r = Run {
            id: "r1".into(),
            status: RunStatus::Completed as i32,
            inputs_json: r#"{"count":3}"#.into(),
            started_at: Some(baton_proto::timestamp_from_micros(1_000_000)),
            ended_at: Some(baton_proto::timestamp_from_micros(1_412_000)),
            ..Run::default()
        };
        let value = run(&r, true);
        assert_eq!(value["status"], "completed");
        assert_eq!(value["inputs"], json!({"count": 3}));
        assert_eq!(value["output"], Value::Null);
        assert_eq!(value["error"], Value::Null);
        assert_eq!(value["duration_ms"], 412);
        assert_eq!(value["started_at"], "1970-01-01T00:00:01Z");
        assert_eq!(value["steps"], json!([]));
        assert!(run(&r, false).get("steps").is_none());
    }

    #[test]
    fn embedded_text() {
        assert_eq!(embedded(""), Value::Null);
        assert_eq!(embedded("[1]"), json!([1]));
        assert_eq!(embedded("not json"), json!("not json"));
    }
}
