//! The column lists every backend's schema shares, so each selects and writes the same fields
//! in the same order.

pub(crate) const RUN_COLUMNS: &str = "id, tenant, workflow_ref, status, inputs, output, error, idempotency_key, \
     max_parallel, deadline, created_at, started_at, ended_at, last_sequence, trace_context";
pub(crate) const STEP_COLUMNS: &str = "run_id, position, step_id, kind, status, attempt, output, error, worker_id, \
     queued_at, started_at, ended_at, next_attempt_at, usage, lease, lease_holder";
pub(crate) const WORKFLOW_COLUMNS: &str =
    "tenant, owner, name, version, digest, definition, created_at";
pub(crate) const API_KEY_COLUMNS: &str =
    "id, tenant, role, name, secret_hash, created_by, created_at, revoked_at";
pub(crate) const EVENT_COLUMNS: &str =
    "run_id, sequence, event_type, step_id, attempt, message, output, time";
pub(crate) const ATTEMPT_COLUMNS: &str =
    "step_id, attempt, status, error, worker_id, queued_at, started_at, ended_at, usage";

/// SQL assembled only from this crate's constants, never from input.
pub(crate) fn trusted(sql: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql)
}
