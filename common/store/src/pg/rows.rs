//! Rows of the Postgres schema decoded into the store's model; timestamps are `timestamptz`
//! and JSON is `jsonb`. A column that does not decode is named in the error.

use baton_engine::{AttemptRecord, EventRecord, RunState, RunStatus, StepState, StepStatus};
use baton_proto::v1::RunEventType;
use chrono::{DateTime, Utc};
use sqlx::{Decode, Postgres, Row, Type, postgres::PgRow};

use crate::{
    ApiKeyRecord, StoreError, StoredEvent, StoredWorkflow,
    codec::usage_from_json,
    db_error::{column, corrupt},
};

pub(super) fn ts(micros: Option<i64>) -> Option<DateTime<Utc>> {
    micros.and_then(DateTime::from_timestamp_micros)
}

fn micros(dt: Option<DateTime<Utc>>) -> Option<i64> {
    dt.map(|d| d.timestamp_micros())
}

pub(super) fn get<'r, T>(row: &'r PgRow, name: &str) -> Result<T, StoreError>
where
    T: Decode<'r, Postgres> + Type<Postgres>,
{
    row.try_get(name).map_err(|e| column(name, e))
}

fn time(row: &PgRow, name: &str) -> Result<i64, StoreError> {
    Ok(get::<DateTime<Utc>>(row, name)?.timestamp_micros())
}

fn optional_time(row: &PgRow, name: &str) -> Result<Option<i64>, StoreError> {
    Ok(micros(get(row, name)?))
}

pub(super) fn run_from_row(row: &PgRow) -> Result<RunState, StoreError> {
    let status: String = get(row, "status")?;
    Ok(RunState {
        id: get(row, "id")?,
        tenant: get(row, "tenant")?,
        workflow_ref: get(row, "workflow_ref")?,
        status: status.parse::<RunStatus>().map_err(corrupt)?,
        inputs: get(row, "inputs")?,
        output: get(row, "output")?,
        error: get(row, "error")?,
        idempotency_key: get(row, "idempotency_key")?,
        max_parallel: u32::try_from(get::<i32>(row, "max_parallel")?).unwrap_or(1),
        deadline: optional_time(row, "deadline")?,
        created_at: time(row, "created_at")?,
        started_at: optional_time(row, "started_at")?,
        ended_at: optional_time(row, "ended_at")?,
        last_sequence: get(row, "last_sequence")?,
        trace_context: serde_json::from_value(get(row, "trace_context")?).unwrap_or_default(),
        steps: Vec::new(),
        dirty: false,
        steps_created: false,
        new_events: Vec::new(),
        new_attempts: Vec::new(),
    })
}

pub(super) fn step_from_row(row: &PgRow) -> Result<StepState, StoreError> {
    let status: String = get(row, "status")?;
    Ok(StepState {
        step_id: get(row, "step_id")?,
        kind: get(row, "kind")?,
        status: status.parse::<StepStatus>().map_err(corrupt)?,
        attempt: u32::try_from(get::<i32>(row, "attempt")?).unwrap_or(0),
        output: get(row, "output")?,
        error: get(row, "error")?,
        queued_at: optional_time(row, "queued_at")?,
        started_at: optional_time(row, "started_at")?,
        ended_at: optional_time(row, "ended_at")?,
        next_attempt_at: optional_time(row, "next_attempt_at")?,
        worker_id: get(row, "worker_id")?,
        usage: get::<Option<serde_json::Value>>(row, "usage")?
            .as_ref()
            .map(usage_from_json),
        lease: u64::try_from(get::<i64>(row, "lease")?).unwrap_or(0),
        lease_holder: u32::try_from(get::<i32>(row, "lease_holder")?).unwrap_or(0),
        lease_ttl: 0,
        dirty: false,
    })
}

pub(super) fn attempt_from_row(row: &PgRow) -> Result<AttemptRecord, StoreError> {
    let status: String = get(row, "status")?;
    Ok(AttemptRecord {
        step_id: get(row, "step_id")?,
        attempt: u32::try_from(get::<i32>(row, "attempt")?).unwrap_or(0),
        status: status.parse::<StepStatus>().map_err(corrupt)?,
        error: get(row, "error")?,
        worker_id: get(row, "worker_id")?,
        queued_at: optional_time(row, "queued_at")?,
        started_at: optional_time(row, "started_at")?,
        ended_at: time(row, "ended_at")?,
        usage: get::<Option<serde_json::Value>>(row, "usage")?
            .as_ref()
            .map(usage_from_json),
    })
}

pub(super) fn workflow_from_row(row: &PgRow) -> Result<StoredWorkflow, StoreError> {
    Ok(StoredWorkflow {
        tenant: get(row, "tenant")?,
        owner: get(row, "owner")?,
        name: get(row, "name")?,
        version: u32::try_from(get::<i32>(row, "version")?).map_err(corrupt)?,
        digest: get(row, "digest")?,
        definition: get(row, "definition")?,
        created_at: time(row, "created_at")?,
    })
}

pub(super) fn api_key_from_row(row: &PgRow) -> Result<ApiKeyRecord, StoreError> {
    Ok(ApiKeyRecord {
        id: get(row, "id")?,
        tenant: get(row, "tenant")?,
        role: get(row, "role")?,
        name: get(row, "name")?,
        secret_hash: get(row, "secret_hash")?,
        created_by: get(row, "created_by")?,
        created_at_micros: time(row, "created_at")?,
        revoked_at_micros: optional_time(row, "revoked_at")?,
    })
}

pub(super) fn event_from_row(row: &PgRow) -> Result<StoredEvent, StoreError> {
    let event_type: String = get(row, "event_type")?;
    Ok(StoredEvent {
        run_id: get(row, "run_id")?,
        record: EventRecord {
            sequence: get(row, "sequence")?,
            event_type: RunEventType::from_str_name(&event_type)
                .ok_or_else(|| corrupt(format!("unknown event type {event_type}")))?,
            step_id: get(row, "step_id")?,
            attempt: u32::try_from(get::<i32>(row, "attempt")?).unwrap_or(0),
            time: time(row, "time")?,
            message: get(row, "message")?,
            output: get(row, "output")?,
        },
    })
}
