//! Bounded growth: every `BATON_RETENTION_INTERVAL`, finished runs that ended longer ago than
//! `BATON_RETENTION` are deleted in small batches, and consumers that replicas which are gone
//! left in the queue's groups are removed. Batches are paced so the hot path keeps the database.

use std::{sync::Arc, time::Duration};

use baton_engine::now_micros;
use baton_queue::QueueAdmin;
use tokio_util::sync::CancellationToken;

use super::Runner;

/// The shortest pause between two batches; otherwise as long as the last batch took.
const MIN_BATCH_PAUSE: Duration = Duration::from_millis(50);

impl Runner {
    /// Deletes expired runs and removes idle consumers every `retention_interval` until
    /// `shutdown`. A failure is logged and tried again next round.
    pub async fn run_retention(
        self: Arc<Self>,
        queue: Arc<dyn QueueAdmin>,
        shutdown: CancellationToken,
    ) {
        if self.config.retention.is_none() && self.config.consumer_idle_remove.is_none() {
            return;
        }
        let mut every = tokio::time::interval(self.config.retention_interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            if let Some(keep) = self.config.retention {
                self.delete_expired_runs(keep, &shutdown).await;
            }
            if let Some(idle) = self.config.consumer_idle_remove {
                self.remove_idle_consumers(queue.as_ref(), idle).await;
            }
        }
    }

    /// Deletes, a batch at a time, the runs that ended more than `keep` ago; returns how many.
    #[tracing::instrument(name = "retention", skip_all, fields(deleted = tracing::field::Empty))]
    pub async fn delete_expired_runs(&self, keep: Duration, shutdown: &CancellationToken) -> u64 {
        let keep_micros = i64::try_from(keep.as_micros()).unwrap_or(i64::MAX);
        let ended_before = now_micros().saturating_sub(keep_micros);
        let batch = self.config.retention_batch;
        let mut deleted = 0;
        loop {
            let began = tokio::time::Instant::now();
            let n = match self.store.delete_finished_runs(ended_before, batch).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot delete expired runs; trying again next round");
                    break;
                }
            };
            self.metrics
                .observe_postgres("delete_finished_runs", began.elapsed().as_secs_f64());
            self.metrics.runs_deleted(n);
            deleted += n;
            if n < u64::try_from(batch).unwrap_or(u64::MAX) {
                break;
            }
            let pause = began.elapsed().max(MIN_BATCH_PAUSE);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
            }
        }
        tracing::Span::current().record("deleted", deleted);
        if deleted > 0 {
            tracing::info!(
                deleted,
                retention = %humantime::format_duration(keep),
                "deleted finished runs past their retention"
            );
        }
        deleted
    }

    /// Removes consumers idle longer than `idle` that hold no pending entry.
    async fn remove_idle_consumers(&self, queue: &dyn QueueAdmin, idle: Duration) {
        match queue.remove_idle_consumers(idle).await {
            Ok(removed) if removed.is_empty() => {}
            Ok(removed) => {
                self.metrics.consumers_removed(removed.len() as u64);
                tracing::info!(
                    removed = removed.len(),
                    consumers = ?removed,
                    "removed idle consumers without pending entries"
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot remove idle consumers; trying again next round")
            }
        }
    }
}
