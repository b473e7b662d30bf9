//! One watcher of one run: replays the store after its last sequence, then takes the run's live
//! events while they arrive in order. The store decides what is sent; a gap, a lag or a quiet
//! spell of this run only sends the watcher back to read it.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use baton_engine::EventRecord;
use baton_proto::v1::{self, RunEventType};
use baton_store::Store;
use futures::Stream;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    EventsError,
    registry::{Registry, Subscription},
};

/// What every event of the run carries, read once when the watch starts.
pub(crate) struct Labels {
    pub run_id: Uuid,
    pub workflow_ref: String,
    pub tenant: String,
}

impl Labels {
    fn event(&self, record: &EventRecord) -> v1::RunEvent {
        v1::RunEvent {
            run_id: self.run_id.to_string(),
            sequence: record.sequence,
            r#type: record.event_type as i32,
            step_id: record.step_id.clone().unwrap_or_default(),
            attempt: record.attempt,
            time: Some(baton_proto::timestamp_from_micros(record.time)),
            message: record.message.clone().unwrap_or_default(),
            output_json: record
                .output
                .as_ref()
                .map(|o| o.to_string())
                .unwrap_or_default(),
            workflow_ref: self.workflow_ref.clone(),
            tenant: self.tenant.clone(),
        }
    }

    fn relabel(&self, mut event: v1::RunEvent) -> v1::RunEvent {
        event.workflow_ref.clone_from(&self.workflow_ref);
        event.tenant.clone_from(&self.tenant);
        event
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    /// Reading the store after `last`.
    Replay,
    /// Taking live events.
    Follow,
    /// The run's end was sent, or the watch failed.
    Ended,
}

pub(crate) struct Watcher {
    pub store: Arc<dyn Store>,
    pub registry: Arc<Registry>,
    pub shutdown: CancellationToken,
    pub labels: Labels,
    /// The last sequence sent (or the one the caller had).
    pub last: i64,
    /// `None` until needed: a run that had ended when the watch started is only replayed.
    pub live: Option<Subscription>,
    pub quiet_poll: Duration,
    pub replay_page: i64,
}

/// A watcher's state between items of its stream.
struct Progress {
    watcher: Watcher,
    phase: Phase,
    ready: VecDeque<v1::RunEvent>,
}

impl Watcher {
    /// The watcher's events as a stream; empty when `caught_up` (the run ended at or before the
    /// caller's last sequence).
    pub(crate) fn into_stream(
        self,
        caught_up: bool,
    ) -> impl Stream<Item = Result<v1::RunEvent, EventsError>> + Send + 'static {
        let span = tracing::debug_span!("watch_run", run.id = %self.labels.run_id);
        let phase = if caught_up {
            Phase::Ended
        } else {
            Phase::Replay
        };
        let progress = Progress {
            watcher: self,
            phase,
            ready: VecDeque::new(),
        };
        futures::stream::unfold(progress, move |mut progress| {
            async move {
                let item = progress.next().await?;
                Some((item, progress))
            }
            .instrument(span.clone())
        })
    }
}

impl Progress {
    async fn next(&mut self) -> Option<Result<v1::RunEvent, EventsError>> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                if RunEventType::try_from(event.r#type).is_ok_and(is_run_end) {
                    self.end();
                }
                return Some(Ok(event));
            }
            let step = match self.phase {
                Phase::Ended => return None,
                Phase::Replay => self.replay_page().await,
                Phase::Follow => self.follow().await,
            };
            if let Err(e) = step {
                self.end();
                return Some(Err(e));
            }
        }
    }

    fn end(&mut self) {
        self.phase = Phase::Ended;
        self.ready.clear();
        // Stop routing to a watcher that takes nothing more.
        self.watcher.live = None;
    }

    /// Reads one page of the store after the last sequence; a short page means caught up.
    async fn replay_page(&mut self) -> Result<(), EventsError> {
        let w = &mut self.watcher;
        let page = tokio::select! {
            biased;
            _ = w.shutdown.cancelled() => return Err(EventsError::ShuttingDown),
            page = w.store.list_events(w.labels.run_id, w.last, w.replay_page) => page?,
        };
        if (page.len() as i64) < w.replay_page {
            self.phase = Phase::Follow;
        }
        for stored in page {
            let record = stored.record;
            if record.sequence <= w.last {
                continue;
            }
            w.last = record.sequence;
            self.ready.push_back(w.labels.event(&record));
        }
        Ok(())
    }

    /// Waits for the run's next live event. Anything but the next one in order, or nothing for
    /// `quiet_poll`, means the store may hold more: back to replaying.
    async fn follow(&mut self) -> Result<(), EventsError> {
        let w = &mut self.watcher;
        let Some(live) = w.live.as_mut() else {
            // Watch live from here on, then read what the store got meanwhile.
            w.live = Some(subscribe(&w.registry, w.labels.run_id, w.quiet_poll, &w.shutdown).await);
            self.phase = Phase::Replay;
            return Ok(());
        };
        let next = tokio::select! {
            biased;
            _ = w.shutdown.cancelled() => return Err(EventsError::ShuttingDown),
            next = tokio::time::timeout(w.quiet_poll, live.live.recv()) => next,
        };
        match next {
            Ok(Some(event)) if event.sequence <= w.last => {}
            Ok(Some(event)) if event.sequence == w.last + 1 => {
                w.last = event.sequence;
                self.ready.push_back(w.labels.relabel((*event).clone()));
            }
            Ok(Some(event)) => {
                tracing::debug!(
                    sequence = event.sequence,
                    last = w.last,
                    "a live event skipped ahead; reading the store"
                );
                self.phase = Phase::Replay;
            }
            Ok(None) => {
                // The reader dropped this watcher for lagging: subscribe again, then replay.
                tracing::debug!("fell behind the live events; reading the store");
                w.live = None;
            }
            Err(_quiet) => self.phase = Phase::Replay,
        }
        Ok(())
    }
}

/// Registers a watcher of `run_id` and waits (up to `within`) until the reader is positioned on
/// the log, so every event published after this returns reaches the watcher or a later store read.
pub(crate) async fn subscribe(
    registry: &Arc<Registry>,
    run_id: Uuid,
    within: Duration,
    shutdown: &CancellationToken,
) -> Subscription {
    let (subscription, mut positioned) = registry.subscribe(run_id);
    tokio::select! {
        _ = shutdown.cancelled() => {}
        waited = tokio::time::timeout(within, positioned.wait_for(|p| *p)) => {
            if waited.is_err() {
                // The log is not answering; the quiet poll reads the store meanwhile.
                tracing::debug!(run.id = %run_id, "the event log reader is not positioned yet");
            }
        }
    }
    subscription
}

pub(crate) fn is_run_end(t: RunEventType) -> bool {
    matches!(
        t,
        RunEventType::RunCompleted
            | RunEventType::RunFailed
            | RunEventType::RunCancelled
            | RunEventType::RunTimedOut
    )
}
