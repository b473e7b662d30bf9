//! Live run events for `WatchRun`: one reader per orchestrator follows the events stream and fans
//! events out in memory. Watchers treat it as a hint and read Postgres, the source of truth,
//! whenever they might have missed something.

use std::{sync::Arc, time::Duration};

use baton_proto::v1;
use baton_queue::{EventCursor, EventLog};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

/// Events buffered per watcher before it falls back to Postgres.
const BUFFER: usize = 16_384;

#[derive(Clone)]
pub struct EventHub {
    tx: broadcast::Sender<Arc<v1::RunEvent>>,
    /// Wakes the reader when the first watcher arrives.
    watched: Arc<Notify>,
}

impl EventHub {
    /// Follows the events stream while anyone watches. With no watchers it reads nothing, and
    /// a watcher that arrives later replays what it needs from Postgres.
    pub fn start(queue: Arc<dyn EventLog>, shutdown: CancellationToken) -> Self {
        let (tx, _) = broadcast::channel(BUFFER);
        let watched = Arc::new(Notify::new());
        let (sender, wake) = (tx.clone(), watched.clone());
        tokio::spawn(async move {
            let mut last = EventCursor::start();
            let mut positioned = false;
            loop {
                if sender.receiver_count() == 0 {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = wake.notified() => {}
                        // In case a notification raced with the count.
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    if sender.receiver_count() == 0 {
                        continue;
                    }
                    positioned = false;
                }
                if !positioned {
                    match queue.tail().await {
                        Ok(tail) => {
                            last = tail;
                            positioned = true;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot find the end of the event log");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                            continue;
                        }
                    }
                }
                let read = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    r = queue.read_events(&last, 1_024, Duration::from_millis(500)) => r,
                };
                match read {
                    Ok(events) => {
                        for (id, event) in events {
                            last = id;
                            // Watchers that left meanwhile are not an error.
                            let _ = sender.send(Arc::new(event));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read run events");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        });
        Self { tx, watched }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<v1::RunEvent>> {
        let rx = self.tx.subscribe();
        self.watched.notify_one();
        rx
    }
}
