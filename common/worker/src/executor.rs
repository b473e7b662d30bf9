//! What a worker kind implements: one attempt of a step, which ends done, failed, or parked until
//! its result arrives through the API. Everything else (queues, timeouts, reports) is the runtime's.

use async_trait::async_trait;
use baton_proto::v1;
use tokio_util::sync::CancellationToken;

/// What a finished or parked attempt produced.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutput {
    /// The step is done; this is its output (`null` for none).
    Done(serde_json::Value),
    /// The step waits on something outside the worker (a person's decision, a callback). See
    /// [`StepExecutor`] for what the runtime does with a parked attempt.
    Parked {
        /// Why the step waits, for logs: `awaiting approval by ops`.
        reason: String,
    },
}

impl StepOutput {
    /// A parked attempt: its result arrives later through the API.
    pub fn parked(reason: impl Into<String>) -> Self {
        Self::Parked {
            reason: reason.into(),
        }
    }
}

/// Simple executors write `Ok(output.into())`.
impl From<serde_json::Value> for StepOutput {
    fn from(output: serde_json::Value) -> Self {
        Self::Done(output)
    }
}

/// Why an attempt failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct StepFailure {
    pub message: String,
    /// False when another attempt cannot help (bad input).
    pub retryable: bool,
    /// The least the next attempt should wait, when the executor was told (an HTTP
    /// `Retry-After`); the runner waits the longer of this and the step's backoff.
    pub retry_after: Option<std::time::Duration>,
}

impl StepFailure {
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
            retry_after: None,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
            retry_after: None,
        }
    }

    /// The next attempt should wait at least `wait`.
    pub fn with_retry_after(mut self, wait: std::time::Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }
}

/// Runs the steps of one kind.
///
/// An attempt ends one of three ways:
/// - `Ok(StepOutput::Done(output))`: the step succeeded.
/// - `Err(StepFailure)`: the attempt failed; the runner retries it if `retryable` and the step
///   has attempts left. A failure after the run's cancel is reported as cancelled.
/// - `Ok(StepOutput::Parked { .. })`: the step waits on something outside the worker. The
///   runtime reports the attempt started (so the step shows running), acknowledges the job (no
///   worker holds it, nothing reclaims it, a worker restart loses nothing) and reports no
///   result. Whoever decides the step later sends its `JobResult` (same run, step and attempt)
///   to the runner inbox, as the API does for approvals. The job's `timeout_ms` bounds only the
///   time until the executor parks; a parked step's own deadline is its decider's business.
#[async_trait]
pub trait StepExecutor: Send + Sync + 'static {
    /// Runs one attempt. `input` is the job's rendered input (`null` when it had none).
    /// `cancel` fires when the run is cancelled; executors that wait should stop early.
    async fn execute(
        &self,
        job: &v1::Job,
        input: serde_json::Value,
        cancel: CancellationToken,
    ) -> Result<StepOutput, StepFailure>;
}
