//! A pool of workers for one or more step kinds in one process: it joins the kinds' streams,
//! listens for cancel notices once for all of them, and runs each kind's worker until shutdown.

use std::sync::{Arc, Mutex};

use baton_metrics::Metrics;
use baton_queue::{QueueError, WorkerQueue};
use tokio_util::sync::CancellationToken;

use crate::{
    StepExecutor, WorkerConfig,
    cancels::{CancelRegistry, listen_for_cancels},
    host::host_facts,
    kind::KindWorker,
    task::AbortOnDrop,
    usage::ProcessSampler,
};

/// The kinds a process serves, and how; see the module docs.
pub struct WorkerPool {
    queue: Arc<dyn WorkerQueue>,
    executors: Vec<(String, Arc<dyn StepExecutor>)>,
    config: WorkerConfig,
    metrics: Option<Arc<Metrics>>,
}

impl WorkerPool {
    pub fn new(queue: Arc<dyn WorkerQueue>, config: WorkerConfig) -> Self {
        Self {
            queue,
            executors: Vec::new(),
            config,
            metrics: None,
        }
    }

    /// Records the pool's figures (heartbeats of jobs taken over, ...) in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Serves `kind` with `executor`.
    pub fn with_executor(
        mut self,
        kind: impl Into<String>,
        executor: Arc<dyn StepExecutor>,
    ) -> Self {
        self.executors.push((kind.into(), executor));
        self
    }

    pub fn kinds(&self) -> Vec<String> {
        self.executors.iter().map(|(k, _)| k.clone()).collect()
    }

    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    /// Works until `shutdown`, then lets running jobs finish within the grace period. Fails only
    /// when the kinds' streams cannot be joined.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), QueueError> {
        self.queue.join_kinds(&self.kinds()).await?;
        let cancels = Arc::new(CancelRegistry::default());
        let sampler = ProcessSampler::start();
        let host = Arc::new(Mutex::new(Some(host_facts(&self.config.worker_id))));
        // Every task below belongs to this future: dropping it stops them all, leaving
        // unfinished jobs unacknowledged for reclaiming.
        // Subscribed before any job is read, so a cancel of a job read here cannot be missed.
        let first = match self.queue.subscribe_cancels().await {
            Ok(notices) => Some(notices),
            Err(e) => {
                tracing::warn!(error = %e, "cannot subscribe to cancel notices yet; retrying");
                None
            }
        };
        let _listener = AbortOnDrop(tokio::spawn(listen_for_cancels(
            self.queue.clone(),
            cancels.clone(),
            first,
            shutdown.clone(),
        )));
        let mut kinds = tokio::task::JoinSet::new();
        for (kind, executor) in self.executors {
            let worker = KindWorker {
                queue: self.queue.clone(),
                kind,
                executor,
                config: self.config.clone(),
                cancels: cancels.clone(),
                in_flight: Default::default(),
                sampler: sampler.clone(),
                host: host.clone(),
                metrics: self.metrics.clone(),
            };
            kinds.spawn(worker.run(shutdown.clone()));
        }
        while kinds.join_next().await.is_some() {}
        Ok(())
    }
}
