//! Why a watch could not start or had to stop, in words the gRPC edge and fanout map to their own
//! statuses; no backend is named here.

use baton_store::StoreError;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// The run to watch does not exist.
    #[error("run {0} does not exist")]
    NotFound(Uuid),
    /// The store could not be read; the watcher may watch again from its last sequence.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The process is stopping; the watcher may watch again, elsewhere, from its last sequence.
    #[error("the event stream is shutting down")]
    ShuttingDown,
}
