//! What the store takes and returns, beyond the engine's [`RunState`].

use baton_engine::{AttemptRecord, RunState};
use uuid::Uuid;

pub struct NewWorkflow {
    pub owner: String,
    pub name: String,
    pub version: u32,
    pub digest: String,
    pub definition: serde_json::Value,
}

#[derive(Clone, Debug)]
pub struct StoredWorkflow {
    pub owner: String,
    pub name: String,
    pub version: u32,
    pub digest: String,
    pub definition: serde_json::Value,
    pub created_at: i64,
}

impl StoredWorkflow {
    pub fn workflow_ref(&self) -> String {
        format!("{}/{}@{}", self.owner, self.name, self.version)
    }
}

#[derive(Debug)]
pub enum PutWorkflowOutcome {
    Created(StoredWorkflow),
    Unchanged(StoredWorkflow),
    /// The version exists with another digest.
    Conflict(StoredWorkflow),
}

pub struct NewRun {
    pub id: Uuid,
    pub tenant: String,
    pub workflow_ref: String,
    pub inputs: serde_json::Value,
    pub idempotency_key: Option<String>,
    pub created_at: i64,
    /// W3C trace context of the call that starts it.
    pub trace_context: std::collections::HashMap<String, String>,
}

/// A run with its steps and the history of finished attempts.
pub struct RunDetail {
    pub run: RunState,
    pub attempts: Vec<AttemptRecord>,
    /// The worker processes that ran its attempts.
    pub workers: Vec<baton_proto::v1::WorkerHost>,
}

#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    pub tenant: String,
    pub workflow_ref: Option<String>,
    pub status: Option<baton_engine::RunStatus>,
}

#[derive(Clone, Debug)]
pub struct PageRequest {
    pub size: u32,
    /// Opaque; empty for the first page.
    pub token: String,
}

#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Empty on the last page.
    pub next_token: String,
}

#[derive(Clone, Debug)]
pub struct StoredEvent {
    pub run_id: Uuid,
    pub record: baton_engine::EventRecord,
}

/// A run that should be woken, and why.
#[derive(Clone, Debug, PartialEq)]
pub enum WakeCandidate {
    /// Queued, but no runner took it.
    NotStarted(Uuid),
    /// A retry or the deadline is overdue.
    Overdue(Uuid),
}

/// Counts by status (`queued`, `running`, `completed`, ...), as the store holds them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatusCounts {
    pub runs: std::collections::BTreeMap<String, i64>,
    pub steps: std::collections::BTreeMap<String, i64>,
    /// Steps of runs that are still running.
    pub active_steps: std::collections::BTreeMap<String, i64>,
    /// Steps waiting for a retry, by kind.
    pub retrying_by_kind: std::collections::BTreeMap<String, i64>,
}
