//! Work that keeps runs moving when a message was lost or left behind: firing due timers,
//! reclaiming inbox entries of replicas that stopped, and the sweep that wakes runs whose wake-up
//! never came.

use std::{sync::Arc, time::Duration};

use baton_engine::now_micros;
use baton_proto::v1::{self, runner_message::Message};
use baton_store::WakeCandidate;
use tokio_util::sync::CancellationToken;

use super::Runner;
use crate::RunnerError;

/// Most overdue runs woken by one sweep.
const SWEEP_LIMIT: i64 = 500;
/// Most timers moved into the inbox at a time.
const TIMER_BATCH: usize = 1_000;

impl Runner {
    /// Moves due timers into the inbox until `shutdown`. It sleeps until the earliest timer is
    /// due (at most `timer_poll`), and wakes early when this replica sets an earlier one.
    pub async fn run_timers(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let now_ms = now_micros() / 1_000;
            let wait = match self.queue.fire_due_timers(now_ms, TIMER_BATCH).await {
                Ok(fired) if fired.moved >= TIMER_BATCH => Duration::ZERO,
                Ok(fired) => fired
                    .next_due_ms
                    .map(|due| Duration::from_millis((due - now_ms).max(1) as u64))
                    .unwrap_or(self.config.timer_poll)
                    .min(self.config.timer_poll),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot fire timers");
                    self.config.timer_poll
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
                _ = self.timer_set.notified() => {}
            }
        }
    }

    /// Takes over inbox messages of runners that stopped, and wakes runs whose wake-up was lost.
    pub async fn run_recovery(self: Arc<Self>, shutdown: CancellationToken) {
        let reclaim_every = (self.config.inbox_visibility / 2).max(Duration::from_millis(50));
        let mut reclaim = tokio::time::interval(reclaim_every);
        let mut sweep = tokio::time::interval(self.config.sweep_interval);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = reclaim.tick() => self.reclaim().await,
                _ = sweep.tick() => {
                    if let Err(e) = self.sweep().await {
                        tracing::warn!(error = %e, "sweep failed");
                    }
                }
            }
        }
    }

    async fn reclaim(&self) {
        let reclaimed = self
            .queue
            .reclaim_runner(
                &self.config.consumer,
                self.config.inbox_visibility,
                self.config.batch_size,
            )
            .await;
        match reclaimed {
            Ok(batch) if !batch.is_empty() => {
                tracing::info!(
                    messages = batch.len(),
                    "reclaimed runner messages left unfinished"
                );
                self.process(batch).await;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot reclaim runner messages"),
        }
    }

    async fn sweep(&self) -> Result<(), RunnerError> {
        let grace = i64::try_from(self.config.sweep_grace.as_micros()).unwrap_or(i64::MAX);
        let candidates = self
            .store
            .overdue_runs(now_micros(), grace, SWEEP_LIMIT)
            .await?;
        if candidates.is_empty() {
            return Ok(());
        }
        tracing::info!(
            runs = candidates.len(),
            "waking runs whose wake-up was lost"
        );
        let messages: Vec<v1::RunnerMessage> = candidates
            .into_iter()
            .map(|candidate| v1::RunnerMessage {
                message: Some(wake_up(candidate)),
            })
            .collect();
        self.queue.send_to_runner(&messages).await?;
        Ok(())
    }
}

fn wake_up(candidate: WakeCandidate) -> Message {
    match candidate {
        WakeCandidate::NotStarted(id) => Message::StartRun(v1::StartRunCommand {
            run_id: id.to_string(),
            ..Default::default()
        }),
        WakeCandidate::Overdue(id) => Message::WakeRun(v1::WakeRunCommand {
            run_id: id.to_string(),
            reason: v1::WakeReason::Sweep as i32,
            due_at: None,
        }),
    }
}
