//! What the store takes and returns, beyond the engine's [`RunState`].

use baton_engine::{AttemptRecord, RunState};
use baton_proto::v1;
use uuid::Uuid;

pub struct NewWorkflow {
    /// The tenant whose namespace it is registered in.
    pub tenant: String,
    pub owner: String,
    pub name: String,
    pub version: u32,
    pub digest: String,
    pub definition: serde_json::Value,
}

#[derive(Clone, Debug)]
pub struct StoredWorkflow {
    pub tenant: String,
    pub owner: String,
    pub name: String,
    pub version: u32,
    pub digest: String,
    pub definition: serde_json::Value,
    pub created_at: i64,
}

impl StoredWorkflow {
    /// `owner/name@version`, without the tenant (a run names its workflow this way, beside its
    /// own tenant).
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

/// An API key to record. `id` is the public half callers present; only a hash of the secret is
/// kept.
#[derive(Clone, Debug)]
pub struct NewApiKey {
    pub id: String,
    pub tenant: String,
    pub role: String,
    /// What the key is for, as its creator described it; may be empty.
    pub name: String,
    pub secret_hash: String,
    /// The principal that created it.
    pub created_by: String,
    pub created_at_micros: i64,
}

/// A stored API key; revoked keys are kept, with when they were revoked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub tenant: String,
    pub role: String,
    pub name: String,
    pub secret_hash: String,
    pub created_by: String,
    pub created_at_micros: i64,
    pub revoked_at_micros: Option<i64>,
}

#[derive(Clone, Debug)]
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
    pub workers: Vec<WorkerHost>,
}

/// A worker process and the host it runs on, as the worker reported it with its first result.
/// The facts of one worker id are kept once; later reports replace earlier ones.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkerHost {
    /// The worker process, as attempts name it in their `worker_id`.
    pub worker_id: String,
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// CPU architecture, e.g. `x86_64`.
    pub arch: String,
    pub hostname: String,
    pub physical_cores: u32,
    pub logical_cores: u32,
    pub total_memory_mb: f64,
    /// Version of the worker's runtime (Rust, Python, ...).
    pub runtime_version: String,
    /// `docker`, `kubernetes` or `none`.
    pub container_runtime: String,
    /// Process id on its host.
    pub pid: i64,
}

impl From<&v1::WorkerHost> for WorkerHost {
    fn from(h: &v1::WorkerHost) -> Self {
        Self {
            worker_id: h.worker_id.clone(),
            os: h.os.clone(),
            arch: h.arch.clone(),
            hostname: h.hostname.clone(),
            physical_cores: h.physical_cores,
            logical_cores: h.logical_cores,
            total_memory_mb: h.total_memory_mb,
            runtime_version: h.runtime_version.clone(),
            container_runtime: h.container_runtime.clone(),
            pid: h.pid,
        }
    }
}

impl From<WorkerHost> for v1::WorkerHost {
    fn from(h: WorkerHost) -> Self {
        Self {
            worker_id: h.worker_id,
            os: h.os,
            arch: h.arch,
            hostname: h.hostname,
            physical_cores: h.physical_cores,
            logical_cores: h.logical_cores,
            total_memory_mb: h.total_memory_mb,
            runtime_version: h.runtime_version,
            container_runtime: h.container_runtime,
            pid: h.pid,
        }
    }
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

/// The lease of a step in flight: which dispatch of which attempt holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepLease {
    pub run_id: Uuid,
    pub step_id: String,
    /// The step's kind: the job stream its job is on.
    pub kind: String,
    pub attempt: u32,
    /// The dispatch's fencing token.
    pub lease: u64,
}

/// What one [`crate::Store::maintain`] pass did to Baton's tables.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MaintenanceReport {
    /// Another replica was maintaining the tables, so this pass did nothing.
    pub held_elsewhere: bool,
    /// The tables that needed upkeep and what was done to each, in the order done.
    pub tables: Vec<TableUpkeep>,
}

/// Upkeep done to one table: statistics refreshed (`analyzed`), dead rows cleared (`vacuumed`).
#[derive(Clone, Debug, PartialEq)]
pub struct TableUpkeep {
    pub table: String,
    pub analyzed: bool,
    pub vacuumed: bool,
    pub took: std::time::Duration,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_host_keeps_every_fact_through_the_proto() {
        let sent = v1::WorkerHost {
            worker_id: "w1".into(),
            os: "linux".into(),
            arch: "aarch64".into(),
            hostname: "node-7".into(),
            physical_cores: 4,
            logical_cores: 8,
            total_memory_mb: 15_872.5,
            runtime_version: "1.95.0".into(),
            container_runtime: "kubernetes".into(),
            pid: 4242,
        };
        let stored = WorkerHost::from(&sent);
        assert_eq!(stored.hostname, "node-7");
        assert_eq!(stored.pid, 4242);
        assert_eq!(v1::WorkerHost::from(stored), sent);
    }
}
