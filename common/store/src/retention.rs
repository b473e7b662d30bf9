//! What both backends' retention shares: which runs count as finished. A run in any other status
//! is still owed work and is never deleted, however old.

use baton_engine::RunStatus;

/// The statuses a run ends in, as stored.
pub(crate) fn finished_statuses() -> Vec<&'static str> {
    [
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::Cancelled,
        RunStatus::TimedOut,
    ]
    .into_iter()
    .inspect(|status| debug_assert!(status.is_terminal()))
    .map(RunStatus::as_str)
    .collect()
}
