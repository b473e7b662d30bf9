//! Live run events for `WatchRun`: one reader per orchestrator follows the events stream and fans
//! events out in memory. Watchers treat it as a hint and read Postgres, the source of truth,
//! whenever they might have missed something.

use std::{sync::Arc, time::Duration};

use baton_proto::v1;
use baton_queue::JobQueue;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Events buffered per watcher before it falls back to Postgres.
const BUFFER: usize = 16_384;

#[derive(Clone)]
pub struct EventHub {
    tx: broadcast::Sender<Arc<v1::RunEvent>>,
}

impl EventHub {
    /// Starts following the events stream from now.
    pub fn start(queue: Arc<dyn JobQueue>, shutdown: CancellationToken) -> Self {
        let (tx, _) = broadcast::channel(BUFFER);
        let sender = tx.clone();
        tokio::spawn(async move {
            let now_ms = baton_engine::now_micros() / 1_000;
            let mut last = format!("{now_ms}-0");
            loop {
                let read = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    r = queue.read_events(&last, 1_024, Duration::from_secs(1)) => r,
                };
                match read {
                    Ok(events) => {
                        for (id, event) in events {
                            last = id;
                            // No watchers is not an error.
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
        Self { tx }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<v1::RunEvent>> {
        self.tx.subscribe()
    }
}
