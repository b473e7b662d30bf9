//! Which runs are cancelled, and the cancel tokens of their running jobs. The listener feeds it
//! from the cancel notices; every job checks it before it runs and holds a token while it runs.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use baton_proto::v1;
use baton_queue::{BoxStream, WorkerQueue};
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;

/// How long a cancelled run is remembered, so its queued jobs are skipped.
const CANCEL_MEMORY: Duration = Duration::from_secs(600);
/// How long the listener waits before subscribing again after the queue refused.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(1);

/// Shared by every kind of a pool.
#[derive(Default)]
pub(crate) struct CancelRegistry {
    inner: Mutex<Cancels>,
}

#[derive(Default)]
struct Cancels {
    cancelled: HashMap<String, Instant>,
    /// Run id → job entry id → that job's cancel token.
    running: HashMap<String, HashMap<String, CancellationToken>>,
}

impl CancelRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Cancels> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cancel token of job `entry_id` of `run_id`, about to run; `None` when the run is
    /// already cancelled and the job must not run.
    pub(crate) fn register(&self, run_id: &str, entry_id: &str) -> Option<CancellationToken> {
        let mut c = self.lock();
        if c.cancelled.contains_key(run_id) {
            return None;
        }
        let token = CancellationToken::new();
        c.running
            .entry(run_id.to_owned())
            .or_default()
            .insert(entry_id.to_owned(), token.clone());
        Some(token)
    }

    /// Forgets a job that stopped running.
    pub(crate) fn unregister(&self, run_id: &str, entry_id: &str) {
        let mut c = self.lock();
        if let Some(tokens) = c.running.get_mut(run_id) {
            tokens.remove(entry_id);
            if tokens.is_empty() {
                c.running.remove(run_id);
            }
        }
    }

    /// Cancels the run's running jobs and remembers the run, so its later jobs are skipped.
    pub(crate) fn cancel_run(&self, run_id: &str) {
        let mut c = self.lock();
        let now = Instant::now();
        c.cancelled
            .retain(|_, at| now.duration_since(*at) < CANCEL_MEMORY);
        c.cancelled.insert(run_id.to_owned(), now);
        for token in c.running.remove(run_id).unwrap_or_default().into_values() {
            token.cancel();
        }
    }
}

/// Applies cancel notices to `registry` until `shutdown`, starting with `first` (a subscription
/// made before the first job was read, so no cancel of a job this worker runs falls before it)
/// and subscribing again whenever the subscription ends or cannot be made.
pub(crate) async fn listen_for_cancels(
    queue: Arc<dyn WorkerQueue>,
    registry: Arc<CancelRegistry>,
    first: Option<BoxStream<v1::CancelNotice>>,
    shutdown: CancellationToken,
) {
    let mut first = first;
    loop {
        let subscribed = match first.take() {
            Some(notices) => Ok(notices),
            None => queue.subscribe_cancels().await,
        };
        match subscribed {
            Ok(mut notices) => loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    notice = notices.next() => match notice {
                        Some(n) => registry.cancel_run(&n.run_id),
                        None => break,
                    },
                }
            },
            Err(e) => tracing::warn!(error = %e, "cannot subscribe to cancel notices"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(RESUBSCRIBE_AFTER) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancel_stops_the_runs_jobs_and_skips_its_later_ones() {
        let registry = CancelRegistry::default();
        let running = registry.register("r1", "1-0").unwrap();
        let other = registry.register("r2", "2-0").unwrap();
        registry.cancel_run("r1");
        assert!(running.is_cancelled());
        assert!(!other.is_cancelled(), "another run is not touched");
        assert!(
            registry.register("r1", "3-0").is_none(),
            "a later job is skipped"
        );
        registry.unregister("r2", "2-0");
        assert!(registry.lock().running.is_empty());
    }

    #[test]
    fn a_finished_job_is_forgotten() {
        let registry = CancelRegistry::default();
        let token = registry.register("r1", "1-0").unwrap();
        registry.unregister("r1", "1-0");
        registry.cancel_run("r1");
        assert!(!token.is_cancelled(), "a job that ended is not cancelled");
    }
}
