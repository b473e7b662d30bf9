//! Rows of the SQLite schema decoded into the store's model: times are integer microseconds,
//! JSON is TEXT (SQL NULL is no value, the text `null` is JSON null). A column that does not
//! decode is named in the error.

use baton_engine::{AttemptRecord, EventRecord, RunState, RunStatus, StepState, StepStatus};
use baton_proto::v1::RunEventType;
use sqlx::{Decode, Row, Sqlite, Type, sqlite::SqliteRow};

use crate::{
    ApiKeyRecord, StoreError, StoredEvent, StoredWorkflow,
    codec::usage_from_json,
    db_error::{column, corrupt},
};

pub(super) fn get<'r, T>(row: &'r SqliteRow, name: &str) -> Result<T, StoreError>
where
    T: Decode<'r, Sqlite> + Type<Sqlite>,
{
    row.try_get(name).map_err(|e| column(name, e))
}

/// A JSON column that may hold no value.
pub(super) fn optional_json(
    row: &SqliteRow,
    name: &str,
) -> Result<Option<serde_json::Value>, StoreError> {
    get::<Option<&str>>(row, name)?
        .map(|text| {
            serde_json::from_str(text)
                .map_err(|e| StoreError::Corrupt(format!("column `{name}` is not JSON: {e}")))
        })
        .transpose()
}

fn json(row: &SqliteRow, name: &str) -> Result<serde_json::Value, StoreError> {
    optional_json(row, name)?.ok_or_else(|| StoreError::Corrupt(format!("column `{name}` is NULL")))
}

fn usage(row: &SqliteRow) -> Result<Option<baton_proto::v1::ResourceUsage>, StoreError> {
    Ok(optional_json(row, "usage")?.as_ref().map(usage_from_json))
}

fn small(row: &SqliteRow, name: &str) -> Result<Option<u32>, StoreError> {
    Ok(u32::try_from(get::<i64>(row, name)?).ok())
}

pub(super) fn run_from_row(row: &SqliteRow) -> Result<RunState, StoreError> {
    let status: &str = get(row, "status")?;
    Ok(RunState {
        id: get(row, "id")?,
        tenant: get(row, "tenant")?,
        workflow_ref: get(row, "workflow_ref")?,
        status: status.parse::<RunStatus>().map_err(corrupt)?,
        inputs: json(row, "inputs")?,
        output: optional_json(row, "output")?,
        error: get(row, "error")?,
        idempotency_key: get(row, "idempotency_key")?,
        max_parallel: small(row, "max_parallel")?.unwrap_or(1),
        deadline: get(row, "deadline")?,
        created_at: get(row, "created_at")?,
        started_at: get(row, "started_at")?,
        ended_at: get(row, "ended_at")?,
        last_sequence: get(row, "last_sequence")?,
        trace_context: serde_json::from_value(json(row, "trace_context")?).unwrap_or_default(),
        steps: Vec::new(),
        dirty: false,
        steps_created: false,
        new_events: Vec::new(),
        new_attempts: Vec::new(),
    })
}

pub(super) fn step_from_row(row: &SqliteRow) -> Result<StepState, StoreError> {
    let status: &str = get(row, "status")?;
    Ok(StepState {
        step_id: get(row, "step_id")?,
        kind: get(row, "kind")?,
        status: status.parse::<StepStatus>().map_err(corrupt)?,
        attempt: small(row, "attempt")?.unwrap_or(0),
        output: optional_json(row, "output")?,
        error: get(row, "error")?,
        queued_at: get(row, "queued_at")?,
        started_at: get(row, "started_at")?,
        ended_at: get(row, "ended_at")?,
        next_attempt_at: get(row, "next_attempt_at")?,
        worker_id: get(row, "worker_id")?,
        usage: usage(row)?,
        lease: u64::try_from(get::<i64>(row, "lease")?).unwrap_or(0),
        lease_holder: small(row, "lease_holder")?.unwrap_or(0),
        lease_ttl: 0,
        dirty: false,
    })
}

pub(super) fn attempt_from_row(row: &SqliteRow) -> Result<AttemptRecord, StoreError> {
    let status: &str = get(row, "status")?;
    Ok(AttemptRecord {
        step_id: get(row, "step_id")?,
        attempt: small(row, "attempt")?.unwrap_or(0),
        status: status.parse::<StepStatus>().map_err(corrupt)?,
        error: get(row, "error")?,
        worker_id: get(row, "worker_id")?,
        queued_at: get(row, "queued_at")?,
        started_at: get(row, "started_at")?,
        ended_at: get(row, "ended_at")?,
        usage: usage(row)?,
    })
}

pub(super) fn workflow_from_row(row: &SqliteRow) -> Result<StoredWorkflow, StoreError> {
    Ok(StoredWorkflow {
        tenant: get(row, "tenant")?,
        owner: get(row, "owner")?,
        name: get(row, "name")?,
        version: small(row, "version")?
            .ok_or_else(|| corrupt("column `version` is out of range"))?,
        digest: get(row, "digest")?,
        definition: json(row, "definition")?,
        created_at: get(row, "created_at")?,
    })
}

pub(super) fn api_key_from_row(row: &SqliteRow) -> Result<ApiKeyRecord, StoreError> {
    Ok(ApiKeyRecord {
        id: get(row, "id")?,
        tenant: get(row, "tenant")?,
        role: get(row, "role")?,
        name: get(row, "name")?,
        secret_hash: get(row, "secret_hash")?,
        created_by: get(row, "created_by")?,
        created_at_micros: get(row, "created_at")?,
        revoked_at_micros: get(row, "revoked_at")?,
    })
}

pub(super) fn event_from_row(row: &SqliteRow) -> Result<StoredEvent, StoreError> {
    let event_type: &str = get(row, "event_type")?;
    Ok(StoredEvent {
        run_id: get(row, "run_id")?,
        record: EventRecord {
            sequence: get(row, "sequence")?,
            event_type: RunEventType::from_str_name(event_type)
                .ok_or_else(|| corrupt(format!("unknown event type {event_type}")))?,
            step_id: get(row, "step_id")?,
            attempt: small(row, "attempt")?.unwrap_or(0),
            time: get(row, "time")?,
            message: get(row, "message")?,
            output: optional_json(row, "output")?,
        },
    })
}
