//! Tasks that belong to the future that started them: dropping that future (a process dying, a
//! test aborting a worker) stops them, so nothing of a worker outlives it.

/// Aborts a task when dropped.
pub(crate) struct AbortOnDrop<T>(pub(crate) tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
