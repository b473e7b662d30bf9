//! The worker side of a job queue, shared by every kind of worker (built-ins in the runner, HTTP,
//! agents, approvals): take jobs, run them with a timeout and a cancel signal, report start and
//! result to the runner, keep long jobs from being reclaimed, and reclaim jobs of dead workers.

mod host;
mod pool;
mod reporter;
mod usage;

use async_trait::async_trait;
use baton_proto::v1;
use tokio_util::sync::CancellationToken;

pub use host::host_facts;
pub use pool::{HEARTBEAT_EVERY, WorkerConfig, WorkerPool};
pub use usage::{ProcessSampler, Usage};

/// Why an attempt failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct StepFailure {
    pub message: String,
    /// False when another attempt cannot help (bad input).
    pub retryable: bool,
}

impl StepFailure {
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
        }
    }
}

/// Runs the steps of one kind.
#[async_trait]
pub trait StepExecutor: Send + Sync + 'static {
    /// Runs one attempt. `input` is the job's rendered input (`null` when it had none).
    /// `cancel` fires when the run is cancelled; executors that wait should stop early.
    async fn execute(
        &self,
        job: &v1::Job,
        input: serde_json::Value,
        cancel: CancellationToken,
    ) -> Result<serde_json::Value, StepFailure>;
}
