//! The runner loop: take a batch from the inbox, lock its runs, let the engine decide, enqueue the
//! jobs and timers, commit, then publish events and acknowledge. Jobs go out before the commit so
//! a crash in between can only leave a job whose result is ignored (its attempt is not recorded
//! as in flight), never a step recorded as queued with no job behind it. The runner is the only
//! writer of run state: even a cancel reaches it as an inbox message.

mod admission;
mod apply;
mod inbox;
mod maintenance;
mod metrics;
mod recovery;
mod retention;
mod workflows;

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use baton_engine::{EngineConfig, now_micros};
use baton_metrics::Metrics;
use baton_proto::v1;
use baton_queue::{Delivery, RunnerQueue, StreamName};
use baton_store::Store;
use tokio_util::sync::CancellationToken;

use crate::{RunnerConfig, RunnerError};
use admission::Admission;
use inbox::{InboxEntry, Rejected, RunMessages, SortedBatch};
use workflows::WorkflowCache;

/// One runner replica. Any number may share a store and a queue.
pub struct Runner {
    store: Arc<dyn Store>,
    queue: Arc<dyn RunnerQueue>,
    config: RunnerConfig,
    engine: EngineConfig,
    workflows: WorkflowCache,
    /// Signals the timer loop that this replica set a timer.
    timer_set: tokio::sync::Notify,
    metrics: Arc<Metrics>,
    /// When the inbox loop last read, and applied what it read, without an outage.
    progress: Progress,
    /// How many runs may start now (`BATON_MAX_RUNNING_RUNS`).
    admission: Admission,
}

/// Whether work moves: the inbox loop records each read and each batch that applied, so health
/// says `SERVING` only while both the store and the queue carry work, not merely answer a ping.
#[derive(Debug)]
pub struct Progress {
    began: Instant,
    /// Milliseconds since `began` of the last read or apply that went through.
    last_ok_ms: AtomicU64,
    /// Whether the latest attempt met an outage.
    stalled: AtomicBool,
}

impl Progress {
    fn new() -> Self {
        Self {
            began: Instant::now(),
            last_ok_ms: AtomicU64::new(0),
            stalled: AtomicBool::new(false),
        }
    }

    fn ok(&self) {
        let ms = self.began.elapsed().as_millis() as u64;
        self.last_ok_ms.store(ms, Ordering::Relaxed);
        self.stalled.store(false, Ordering::Relaxed);
    }

    fn outage(&self) {
        self.stalled.store(true, Ordering::Relaxed);
    }

    /// `Err` with the reason unless the inbox moved within `window`.
    pub fn check(&self, window: Duration) -> Result<(), String> {
        let since = self.began.elapsed().saturating_sub(Duration::from_millis(
            self.last_ok_ms.load(Ordering::Relaxed),
        ));
        if self.stalled.load(Ordering::Relaxed) && since > window.min(Duration::from_secs(2)) {
            return Err("the runner cannot apply its inbox: a dependency is unavailable".into());
        }
        if since > window {
            return Err(format!(
                "the runner's inbox has not moved for {}s",
                since.as_secs()
            ));
        }
        Ok(())
    }
}

impl Runner {
    pub fn new(
        store: Arc<dyn Store>,
        queue: Arc<dyn RunnerQueue>,
        config: RunnerConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        let engine = EngineConfig {
            default_max_parallel: config.default_max_parallel,
            lease_ttl: i64::try_from(config.lease_ttl.as_micros()).unwrap_or(i64::MAX),
            limits: config.limits,
        };
        Self {
            admission: Admission::new(config.max_running_runs),
            store,
            queue,
            config,
            engine,
            workflows: WorkflowCache::default(),
            timer_set: tokio::sync::Notify::new(),
            metrics,
            progress: Progress::new(),
        }
    }

    /// Whether work moves through this replica (see [`Progress`]).
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Takes and applies inbox batches until `shutdown`.
    pub async fn run_inbox(self: Arc<Self>, shutdown: CancellationToken) {
        // Several batches in flight: while one waits on its commit, the next is read and
        // applied. Batches touching the same run take turns on the run's row lock.
        let slots = Arc::new(tokio::sync::Semaphore::new(self.config.pipelines.max(1)));
        let mut in_flight = tokio::task::JoinSet::new();
        let mut backoff = Duration::from_millis(50);
        while !shutdown.is_cancelled() {
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break,
                p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            };
            while in_flight.try_join_next().is_some() {}
            let read = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = self.queue.read_runner(&self.config.consumer, self.config.batch_size, Duration::from_secs(1)) => r,
            };
            match read {
                Ok(batch) if batch.is_empty() => self.progress.ok(),
                Ok(batch) => {
                    backoff = Duration::from_millis(50);
                    let this = self.clone();
                    in_flight.spawn(async move {
                        this.process(batch).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the runner inbox");
                    self.progress.outage();
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        // Finish what was taken; anything cut short is reclaimed by another replica.
        while in_flight.join_next().await.is_some() {}
    }

    /// Applies a batch: entries that can never apply go to the dead-letter stream, entries
    /// delivered too often are tried alone, the rest are applied together (see
    /// [`Runner::apply_isolating_runs`]).
    pub async fn process(&self, batch: Vec<Delivery<v1::RunnerMessage>>) {
        let mut sorted = SortedBatch::sort(batch, self.config.max_deliveries);
        self.dead_letter(sorted.rejected).await;
        for suspect in sorted.suspects {
            self.apply_suspect(suspect).await;
        }
        let admitted = self.admit_starts(&mut sorted.by_run).await;
        if !sorted.by_run.is_empty() {
            self.apply_isolating_runs(sorted.by_run).await;
        }
        self.admission.release(admitted);
    }

    /// Applies `by_run`, waiting out an outage of the store or the queue in place (with backoff,
    /// for up to half the inbox visibility timeout, so no other replica takes the messages over
    /// meanwhile and counts another delivery). Other errors are returned at once.
    async fn apply_waiting_out_outages(&self, by_run: &RunMessages) -> Result<(), RunnerError> {
        let patience = self.config.inbox_visibility / 2;
        let began = Instant::now();
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.apply(by_run).await {
                Ok(()) => {
                    self.progress.ok();
                    return Ok(());
                }
                Err(e) if e.is_outage() => {
                    self.progress.outage();
                    if began.elapsed() + backoff > patience {
                        return Err(e);
                    }
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot apply runner messages yet; waiting");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Applies one entry delivered more than `max_deliveries` times on its own: it goes to the
    /// dead letters only if it fails on its own content, never for an outage.
    async fn apply_suspect(&self, entry: InboxEntry) {
        let run_id = entry.run_id;
        let deliveries = entry.deliveries;
        let single = HashMap::from([(run_id, vec![entry])]);
        let Err(e) = self.apply_waiting_out_outages(&single).await else {
            return;
        };
        if e.is_outage() {
            tracing::warn!(run.id = %run_id, error = %e, deliveries, "cannot apply a runner message during an outage; it will be retried");
            return;
        }
        let Some(entry) = single.into_values().flatten().next() else {
            return;
        };
        let reason = format!(
            "runner message failed {} times; last: {e}",
            deliveries.saturating_sub(1).max(1)
        );
        self.dead_letter(vec![Rejected {
            id: entry.id.unwrap_or_default(),
            reason,
            payload: entry.payload,
        }])
        .await;
    }

    async fn dead_letter(&self, rejected: Vec<Rejected>) {
        for entry in rejected {
            tracing::error!(entry = %entry.id, reason = %entry.reason, "moving runner message to the dead-letter stream");
            if let Err(e) = self
                .queue
                .dead_letter_runner(entry.into_dead_letter())
                .await
            {
                tracing::error!(error = %e, "cannot dead-letter runner message");
            }
        }
    }

    /// Applies the runs' messages in one batch; when that fails, run by run, so one bad run
    /// cannot hold back the others. What still fails stays unacknowledged and is retried on
    /// reclaim.
    async fn apply_isolating_runs(&self, by_run: RunMessages) {
        let Err(e) = self.apply_waiting_out_outages(&by_run).await else {
            return;
        };
        if by_run.len() == 1 || e.is_outage() {
            tracing::error!(error = %e, "cannot apply runner messages; they will be retried");
            return;
        }
        tracing::warn!(error = %e, runs = by_run.len(), "batch failed; applying it run by run");
        for (id, entries) in by_run {
            let single = HashMap::from([(id, entries)]);
            if let Err(e) = self.apply_waiting_out_outages(&single).await {
                tracing::error!(run.id = %id, error = %e, "cannot apply runner messages; they will be retried");
            }
        }
    }
}

/// An entry of the dead-letter stream for a message taken from `stream`.
fn dead_letter(
    stream: &StreamName,
    entry_id: String,
    reason: String,
    payload: Vec<u8>,
) -> v1::DeadLetter {
    v1::DeadLetter {
        stream: stream.to_string(),
        entry_id,
        reason,
        payload,
        dead_at: Some(baton_proto::timestamp_from_micros(now_micros())),
    }
}
