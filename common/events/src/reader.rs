//! The one reader of the event log in a process. It reads only while someone watches, starting
//! at the log's end when the first watcher arrives (earlier events are replayed from the store),
//! and hands what it reads to the registry.

use std::{sync::Arc, time::Duration};

use baton_queue::{EventCursor, EventLog};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::registry::Registry;

/// Events read from the log at a time.
const READ_BATCH: usize = 1_024;
/// How long one read waits for an event; also how soon the reader notices no one watches.
const READ_BLOCK: Duration = Duration::from_millis(500);
/// Pause after the log failed to answer, before trying again.
const RETRY_AFTER: Duration = Duration::from_millis(500);

pub(crate) fn spawn(registry: Arc<Registry>, log: Arc<dyn EventLog>, shutdown: CancellationToken) {
    let span = tracing::info_span!("run_events_reader");
    tokio::spawn(follow(registry, log, shutdown).instrument(span));
}

async fn follow(registry: Arc<Registry>, log: Arc<dyn EventLog>, shutdown: CancellationToken) {
    let mut cursor: Option<EventCursor> = None;
    loop {
        if registry.idle_if_unwatched() {
            cursor = None;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = registry.arrival() => continue,
            }
        }
        let Some(after) = &cursor else {
            let tail = tokio::select! {
                _ = shutdown.cancelled() => return,
                tail = log.tail() => tail,
            };
            match tail {
                Ok(tail) => {
                    cursor = Some(tail);
                    registry.mark_positioned();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot find the end of the event log");
                    pause(&shutdown).await;
                }
            }
            continue;
        };
        let read = tokio::select! {
            _ = shutdown.cancelled() => return,
            read = log.read_events(after, READ_BATCH, READ_BLOCK) => read,
        };
        match read {
            Ok(events) => {
                let Some((last, _)) = events.last() else {
                    continue;
                };
                cursor = Some(last.clone());
                let read = events.len();
                let routed = registry.route(events.into_iter().map(|(_, event)| event));
                if routed.lagged > 0 {
                    tracing::debug!(
                        read,
                        routed.delivered,
                        routed.lagged,
                        "watchers fell behind; they catch up from the store"
                    );
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the event log");
                pause(&shutdown).await;
            }
        }
    }
}

async fn pause(shutdown: &CancellationToken) {
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(RETRY_AFTER) => {}
    }
}
