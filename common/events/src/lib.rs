//! Run event streams: a run's history replayed from the store, then its live events, with no gap
//! and no duplicate across the seam, ending after the run's last event. `WatchRun` and fanout
//! both serve it, so the hard part (what to do on a gap, a lag or a lost event) is written once.
//!
//! One reader per process follows the queue's event log, and only while someone watches; it
//! hands each event to the watchers of its run alone. The store is the source of truth: live
//! events are only taken while they arrive in order, and a watcher re-reads the store on a gap,
//! when it fell behind, or when its run has been quiet for a while (a live event can be lost).

mod error;
mod reader;
mod registry;
mod watch;

use std::{sync::Arc, time::Duration};

use baton_proto::v1;
use baton_queue::EventLog;
use baton_store::Store;
use futures::Stream;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use error::EventsError;

use registry::Registry;
use watch::{Labels, Watcher};

/// How watchers behave; [`EventsConfig::default`] is what services use.
#[derive(Clone, Debug)]
pub struct EventsConfig {
    /// How long a watcher waits for an event of its run before it reads the store again, in case
    /// a live event was lost. One second: a lost end of a run shows soon, and an idle watcher
    /// costs one small query a second.
    pub quiet_poll: Duration,
    /// Live events buffered per watcher. A watcher further behind is dropped by the reader and
    /// catches up from the store, so a slow client never holds up anyone else.
    pub buffer: usize,
    /// Events read from the store at a time while replaying.
    pub replay_page: i64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            quiet_poll: Duration::from_secs(1),
            buffer: 4_096,
            replay_page: 500,
        }
    }
}

/// Run event streams over one store and event log. Cheap to clone; clones share the reader.
#[derive(Clone)]
pub struct RunEvents {
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    config: Arc<EventsConfig>,
    shutdown: CancellationToken,
}

impl RunEvents {
    /// Starts the log reader (on the current Tokio runtime) with the default settings. It stops,
    /// and every stream ends with [`EventsError::ShuttingDown`], once `shutdown` is cancelled.
    pub fn start(
        store: Arc<dyn Store>,
        log: Arc<dyn EventLog>,
        shutdown: CancellationToken,
    ) -> Self {
        Self::start_with(store, log, shutdown, EventsConfig::default())
    }

    /// [`RunEvents::start`] with other settings.
    pub fn start_with(
        store: Arc<dyn Store>,
        log: Arc<dyn EventLog>,
        shutdown: CancellationToken,
        config: EventsConfig,
    ) -> Self {
        let registry = Arc::new(Registry::new(config.buffer));
        reader::spawn(registry.clone(), log, shutdown.clone());
        Self {
            store,
            registry,
            config: Arc::new(config),
            shutdown,
        }
    }

    /// The events of run `run_id` after `after_sequence` (0: all of them), in order, each once,
    /// each labelled with the run's workflow and tenant; the stream ends after the run's end
    /// event, or at once if the run ended at or before `after_sequence`. An item is an error only
    /// as the last one. Live events published from the moment this returns are not missed.
    #[tracing::instrument(skip(self), fields(run.id = %run_id))]
    pub async fn watch(
        &self,
        run_id: Uuid,
        after_sequence: i64,
    ) -> Result<impl Stream<Item = Result<v1::RunEvent, EventsError>> + Send + 'static, EventsError>
    {
        if self.shutdown.is_cancelled() {
            return Err(EventsError::ShuttingDown);
        }
        let run = self
            .store
            .find_run(run_id)
            .await?
            .ok_or(EventsError::NotFound(run_id))?;
        let after_sequence = after_sequence.max(0);
        // A run that has ended has all its events in the store: no need to watch it live.
        let live = if run.status.is_terminal() {
            None
        } else {
            Some(
                watch::subscribe(
                    &self.registry,
                    run_id,
                    self.config.quiet_poll,
                    &self.shutdown,
                )
                .await,
            )
        };
        let caught_up = run.status.is_terminal() && after_sequence >= run.last_sequence;
        let watcher = Watcher {
            store: self.store.clone(),
            registry: self.registry.clone(),
            shutdown: self.shutdown.clone(),
            labels: Labels {
                run_id,
                workflow_ref: run.workflow_ref,
                tenant: run.tenant,
            },
            last: after_sequence,
            live,
            quiet_poll: self.config.quiet_poll,
            replay_page: self.config.replay_page.max(1),
        };
        Ok(watcher.into_stream(caught_up))
    }

    /// How many watchers are following live events now (not those only replaying an ended run).
    pub fn watchers(&self) -> usize {
        self.registry.watchers()
    }
}
