//! Keeps a kind's running jobs claimed, so they are not reclaimed while they run, and tells
//! operators the worker is alive.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use baton_metrics::Metrics;
use baton_queue::{JobStream, WorkerHeartbeat};
use tokio_util::sync::CancellationToken;

use crate::WorkerConfig;

/// Longest time between a worker's heartbeats; a worker silent for three of these is gone.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

/// Entry ids of one kind's jobs running in this process.
#[derive(Clone, Default)]
pub(crate) struct InFlight(Arc<Mutex<HashSet<String>>>);

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn insert(&self, entry_id: &str) {
        self.lock().insert(entry_id.to_owned());
    }

    pub(crate) fn remove(&self, entry_id: &str) {
        self.lock().remove(entry_id);
    }

    fn ids(&self) -> Vec<String> {
        self.lock().iter().cloned().collect()
    }
}

/// Beats for `kind` until `stop`: the liveness record first, then every third of the visibility
/// timeout (at most [`HEARTBEAT_EVERY`]) the running jobs' claims and the record again.
pub(crate) async fn beat(
    queue: Arc<dyn JobStream>,
    kind: String,
    config: WorkerConfig,
    in_flight: InFlight,
    metrics: Option<Arc<Metrics>>,
    stop: CancellationToken,
) {
    let every = (config.visibility_timeout / 3).clamp(Duration::from_millis(50), HEARTBEAT_EVERY);
    let now_ms = || chrono::Utc::now().timestamp_millis();
    let mut alive = WorkerHeartbeat {
        id: format!("{}:{kind}", config.worker_id),
        worker_id: config.worker_id.clone(),
        kind: kind.clone(),
        pid: std::process::id(),
        hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default(),
        started_at_ms: now_ms(),
        last_heartbeat_ms: now_ms(),
    };
    loop {
        alive.last_heartbeat_ms = now_ms();
        if let Err(e) = queue.worker_heartbeat(&alive).await {
            tracing::warn!(%kind, error = %e, "cannot record the worker heartbeat");
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let ids = in_flight.ids();
        match queue.touch_jobs(&kind, &config.worker_id, &ids).await {
            Ok(touched) if touched < ids.len() => {
                // Another worker reclaimed them while this one was paused or cut off: they are
                // its now, and this worker's reports about them will be fenced off.
                let lost = ids.len() - touched;
                if let Some(metrics) = &metrics {
                    metrics.reports_fenced("heartbeat", lost as u64);
                }
                tracing::warn!(%kind, jobs = lost, "jobs running here were taken over by another worker");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(%kind, error = %e, "cannot extend running jobs"),
        }
    }
}
