//! Who watches which run. Each watcher has a bounded buffer of its own, kept under its run's id,
//! so the reader hands an event only to that run's watchers and never waits for a slow one: a
//! watcher whose buffer is full is dropped, and it catches up from the store.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

use baton_proto::v1;
use tokio::sync::{Notify, mpsc, watch};
use uuid::Uuid;

/// A live event, shared by every watcher of its run.
pub(crate) type LiveEvent = Arc<v1::RunEvent>;

pub(crate) struct Registry {
    runs: Mutex<Watched>,
    /// Live events buffered per watcher.
    buffer: usize,
    /// Whether the reader has found the end of the log since the current watchers arrived; a new
    /// watcher replays the store only once it has, so nothing published later escapes both.
    positioned: watch::Sender<bool>,
    /// Wakes an idle reader when a watcher arrives.
    arrived: Notify,
}

#[derive(Default)]
struct Watched {
    by_run: HashMap<Uuid, Vec<Watcher>>,
    watchers: usize,
    next_id: u64,
}

struct Watcher {
    id: u64,
    tx: mpsc::Sender<LiveEvent>,
}

/// What one routing pass did, for the reader's logs.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct Routed {
    pub delivered: usize,
    /// Watchers dropped because their buffer was full.
    pub lagged: usize,
}

/// One watcher's live events. Dropping it stops routing to it. The receiver ends (after what it
/// buffered) when the reader dropped this watcher for lagging.
pub(crate) struct Subscription {
    registry: Arc<Registry>,
    run_id: Uuid,
    id: u64,
    pub(crate) live: mpsc::Receiver<LiveEvent>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.registry.unsubscribe(self.run_id, self.id);
    }
}

impl Registry {
    pub(crate) fn new(buffer: usize) -> Self {
        Self {
            runs: Mutex::new(Watched::default()),
            buffer: buffer.max(1),
            positioned: watch::Sender::new(false),
            arrived: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Watched> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a watcher of `run_id`. The receiver tells when the reader is positioned; until
    /// then, events published now might reach neither the reader nor an earlier store read.
    pub(crate) fn subscribe(
        self: &Arc<Self>,
        run_id: Uuid,
    ) -> (Subscription, watch::Receiver<bool>) {
        let (tx, live) = mpsc::channel(self.buffer);
        let id = {
            let mut runs = self.lock();
            let id = runs.next_id;
            runs.next_id += 1;
            runs.watchers += 1;
            runs.by_run
                .entry(run_id)
                .or_default()
                .push(Watcher { id, tx });
            id
        };
        // The reader cannot mark itself unpositioned while this watcher is registered, so
        // reading the flag after the lock is released is still accurate.
        let positioned = self.positioned.subscribe();
        self.arrived.notify_one();
        let subscription = Subscription {
            registry: self.clone(),
            run_id,
            id,
            live,
        };
        (subscription, positioned)
    }

    fn unsubscribe(&self, run_id: Uuid, id: u64) {
        let mut runs = self.lock();
        let Some(watchers) = runs.by_run.get_mut(&run_id) else {
            return;
        };
        let before = watchers.len();
        watchers.retain(|w| w.id != id);
        let removed = before - watchers.len();
        if watchers.is_empty() {
            runs.by_run.remove(&run_id);
        }
        runs.watchers -= removed;
    }

    /// Hands each event to the watchers of its run, without waiting: a watcher with a full
    /// buffer, or one that left, is dropped.
    pub(crate) fn route(&self, events: impl IntoIterator<Item = v1::RunEvent>) -> Routed {
        let mut routed = Routed::default();
        let mut runs = self.lock();
        let Watched {
            by_run, watchers, ..
        } = &mut *runs;
        for event in events {
            let Ok(run_id) = event.run_id.parse::<Uuid>() else {
                tracing::debug!(run.id = %event.run_id, "an event of the log names no run");
                continue;
            };
            let Some(run_watchers) = by_run.get_mut(&run_id) else {
                continue;
            };
            let event = Arc::new(event);
            let before = run_watchers.len();
            run_watchers.retain(|w| match w.tx.try_send(event.clone()) {
                Ok(()) => {
                    routed.delivered += 1;
                    true
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    routed.lagged += 1;
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
            *watchers -= before - run_watchers.len();
            if run_watchers.is_empty() {
                by_run.remove(&run_id);
            }
        }
        routed
    }

    /// Marks the reader unpositioned if no one watches, atomically with registration; returns
    /// whether it did, so the reader can stop reading.
    pub(crate) fn idle_if_unwatched(&self) -> bool {
        let runs = self.lock();
        if runs.watchers > 0 {
            return false;
        }
        self.positioned.send_replace(false);
        true
    }

    pub(crate) fn mark_positioned(&self) {
        self.positioned.send_replace(true);
    }

    /// Resolves once a watcher has arrived since the last call (or already had).
    pub(crate) async fn arrival(&self) {
        self.arrived.notified().await;
    }

    pub(crate) fn watchers(&self) -> usize {
        self.lock().watchers
    }
}
