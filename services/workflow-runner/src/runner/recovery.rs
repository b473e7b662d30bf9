//! Work that keeps runs moving when a message was lost or left behind: firing due timers,
//! reclaiming inbox entries of replicas that stopped, the sweep that wakes runs whose wake-up
//! never came, and the reconciler that dispatches again steps whose job was lost. Runs whose
//! start was lost are started by admission ([`super::admission`]).

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use baton_engine::now_micros;
use baton_proto::v1::{self, runner_message::Message};
use baton_queue::JobKey;
use baton_store::StepLease;
use tokio_util::sync::CancellationToken;

use super::Runner;
use crate::RunnerError;

/// Most overdue runs woken by one sweep.
const SWEEP_LIMIT: i64 = 500;
/// Most timers moved into the inbox at a time.
const TIMER_BATCH: usize = 1_000;
/// Most expired leases looked at by one pass of the reconciler.
const RECONCILE_LIMIT: i64 = 1_000;

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
        let mut reconcile = tokio::time::interval(self.config.reconcile_interval);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = reclaim.tick() => self.reclaim().await,
                _ = sweep.tick() => {
                    if let Err(e) = self.sweep().await {
                        tracing::warn!(error = %e, "sweep failed");
                    }
                }
                _ = reconcile.tick() => {
                    if let Err(e) = self.reconcile().await {
                        tracing::warn!(error = %e, "cannot look for lost jobs");
                    }
                }
            }
        }
    }

    /// Repairs from the truth: each step whose lease ran out in the store is looked for in the
    /// queue. Still there (waiting, running, or reported in the inbox): its lease is extended.
    /// Gone (Redis lost it: restarted empty, flushed, a stream deleted): the step is dispatched
    /// again under a new lease, through the inbox like every change, so a late result of the
    /// lost job is fenced off.
    #[tracing::instrument(name = "reconcile", skip_all, fields(expired, renewed, lost))]
    pub async fn reconcile(&self) -> Result<(), RunnerError> {
        let expired = self.store.expired_leases(RECONCILE_LIMIT).await?;
        if expired.is_empty() {
            return Ok(());
        }
        let span = tracing::Span::current();
        span.record("expired", expired.len());
        let mut by_kind: BTreeMap<&str, Vec<&StepLease>> = BTreeMap::new();
        for lease in &expired {
            by_kind.entry(lease.kind.as_str()).or_default().push(lease);
        }
        let (mut present, mut lost) = (Vec::new(), Vec::new());
        for (kind, leases) in by_kind {
            let keys: Vec<JobKey> = leases.iter().map(|l| job_key(l)).collect();
            let found = self.queue.jobs_present(kind, &keys).await?;
            for (lease, found) in leases.into_iter().zip(found) {
                if found {
                    present.push(lease.clone());
                } else {
                    lost.push(lease);
                }
            }
        }
        if !present.is_empty() {
            let ttl = i64::try_from(self.config.lease_ttl.as_micros()).unwrap_or(i64::MAX);
            let renewed = self.store.renew_leases(&present, ttl).await?;
            self.metrics.leases_renewed(renewed);
            span.record("renewed", renewed);
        }
        span.record("lost", lost.len());
        if !lost.is_empty() {
            tracing::warn!(
                steps = lost.len(),
                "jobs are missing from the queue; dispatching their steps again"
            );
            let messages: Vec<v1::RunnerMessage> = lost
                .iter()
                .map(|lease| v1::RunnerMessage {
                    message: Some(Message::RedispatchStep(v1::RedispatchStepCommand {
                        run_id: lease.run_id.to_string(),
                        step_id: lease.step_id.clone(),
                        attempt: lease.attempt,
                        lease: lease.lease,
                    })),
                })
                .collect();
            self.queue.send_to_runner(&messages).await?;
        }
        Ok(())
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
            .map(|id| v1::RunnerMessage {
                message: Some(Message::WakeRun(v1::WakeRunCommand {
                    run_id: id.to_string(),
                    reason: v1::WakeReason::Sweep as i32,
                    due_at: None,
                })),
            })
            .collect();
        self.queue.send_to_runner(&messages).await?;
        Ok(())
    }
}

fn job_key(lease: &StepLease) -> JobKey {
    JobKey {
        run_id: lease.run_id.to_string(),
        step_id: lease.step_id.clone(),
        lease: lease.lease,
    }
}
