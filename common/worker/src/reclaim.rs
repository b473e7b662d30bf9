//! Takes over a kind's jobs whose worker stopped answering: every half visibility timeout, as
//! many as there are free slots, run here as if freshly read.

use std::{sync::Arc, time::Duration};

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::{
    kind::{KindWorker, MAX_READ},
    reporter::Report,
};

/// Reclaims for `worker` until `stop`.
pub(crate) async fn reclaim(
    worker: Arc<KindWorker>,
    slots: Arc<Semaphore>,
    tx: mpsc::Sender<Report>,
    stop: CancellationToken,
) {
    let every = (worker.config.visibility_timeout / 2).max(Duration::from_millis(50));
    let mut jobs = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        while jobs.try_join_next().is_some() {}
        let want = slots.available_permits().min(MAX_READ);
        if want == 0 {
            continue;
        }
        let reclaimed = worker
            .queue
            .reclaim_jobs(
                &worker.kind,
                &worker.config.worker_id,
                worker.config.visibility_timeout,
                want,
            )
            .await;
        let deliveries = match reclaimed {
            Ok(deliveries) => deliveries,
            Err(e) => {
                tracing::warn!(kind = %worker.kind, error = %e, "cannot reclaim jobs");
                continue;
            }
        };
        for delivery in deliveries {
            tracing::info!(kind = %worker.kind, entry = %delivery.id, deliveries = delivery.deliveries, "reclaimed a job from a worker that stopped answering");
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let (worker, tx) = (worker.clone(), tx.clone());
            jobs.spawn(async move {
                worker.handle(delivery, &tx).await;
                drop(permit);
            });
        }
    }
}
