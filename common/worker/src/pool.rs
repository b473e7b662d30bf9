//! A pool of workers for one or more step kinds. Per kind: a reader that takes as many jobs as it
//! has free slots, a task per job, a heartbeat that keeps running jobs claimed, a reclaimer that
//! takes over jobs of dead workers, and a reporter that batches results.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use baton_proto::{
    prost_types::Timestamp,
    v1::{self, runner_message::Message},
};
use baton_queue::{Delivery, JobStream, QueueError, StreamName, WorkerHeartbeat, WorkerQueue};
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{
    StepExecutor, StepFailure,
    host::host_facts,
    reporter::{Report, run_reporter},
    usage::ProcessSampler,
};

/// How long a cancelled run is remembered, so its queued jobs are skipped.
const CANCEL_MEMORY: Duration = Duration::from_secs(600);
/// Longest time between a worker's heartbeats; a worker silent for three of these is gone.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// How long a job runs before the worker reports it started; see `KindWorker::handle`.
const STARTED_REPORT_DELAY: Duration = Duration::from_millis(10);
/// Most jobs taken in one read.
const MAX_READ: usize = 256;

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The consumer name in the job streams' groups; unique per process.
    pub worker_id: String,
    /// Most jobs of one kind running at once.
    pub concurrency: usize,
    /// A job unacknowledged this long is taken over by another worker.
    pub visibility_timeout: Duration,
    /// A job delivered more often than this goes to the dead-letter stream.
    pub max_deliveries: u32,
    /// How long one read waits for jobs.
    pub poll_block: Duration,
    /// How long shutdown waits for running jobs before leaving them to be reclaimed.
    pub shutdown_grace: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            worker_id: format!("worker-{}", std::process::id()),
            concurrency: 256,
            visibility_timeout: Duration::from_secs(30),
            max_deliveries: 5,
            poll_block: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Runs until shutdown; see the module docs.
pub struct WorkerPool {
    queue: Arc<dyn WorkerQueue>,
    executors: Vec<(String, Arc<dyn StepExecutor>)>,
    config: WorkerConfig,
}

/// Runs known to be cancelled, and the cancel tokens of running jobs by run.
#[derive(Default)]
struct Cancels {
    cancelled: HashMap<String, Instant>,
    /// Run id → job entry id → that job's cancel token.
    running: HashMap<String, HashMap<String, CancellationToken>>,
}

type SharedCancels = Arc<Mutex<Cancels>>;

impl WorkerPool {
    pub fn new(queue: Arc<dyn WorkerQueue>, config: WorkerConfig) -> Self {
        Self {
            queue,
            executors: Vec::new(),
            config,
        }
    }

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

    /// Works until `shutdown`, then lets running jobs finish within the grace period.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), QueueError> {
        self.queue.join_kinds(&self.kinds()).await?;
        let cancels: SharedCancels = Arc::default();
        let sampler = ProcessSampler::start();
        let host = Arc::new(Mutex::new(Some(host_facts(&self.config.worker_id))));
        // Every task below belongs to this future: dropping it (a process dying, a test aborting
        // a worker) stops them all, leaving unfinished jobs unacknowledged for reclaiming.
        let _listener = AbortOnDrop(tokio::spawn(listen_for_cancels(
            self.queue.clone(),
            cancels.clone(),
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
                in_flight: Arc::default(),
                sampler: sampler.clone(),
                host: host.clone(),
            };
            kinds.spawn(worker.run(shutdown.clone()));
        }
        while kinds.join_next().await.is_some() {}
        Ok(())
    }
}

async fn listen_for_cancels(
    queue: Arc<dyn WorkerQueue>,
    cancels: SharedCancels,
    shutdown: CancellationToken,
) {
    loop {
        match queue.subscribe_cancels().await {
            Ok(mut notices) => loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    notice = notices.next() => match notice {
                        Some(n) => cancel_run(&cancels, &n.run_id),
                        None => break,
                    },
                }
            },
            Err(e) => tracing::warn!(error = %e, "cannot subscribe to cancel notices"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

fn cancel_run(cancels: &SharedCancels, run_id: &str) {
    let mut c = cancels.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    c.cancelled
        .retain(|_, at| now.duration_since(*at) < CANCEL_MEMORY);
    c.cancelled.insert(run_id.to_owned(), now);
    for token in c.running.remove(run_id).unwrap_or_default().into_values() {
        token.cancel();
    }
}

/// Aborts a task when dropped, so tasks never outlive the future that started them.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct KindWorker {
    queue: Arc<dyn WorkerQueue>,
    kind: String,
    executor: Arc<dyn StepExecutor>,
    config: WorkerConfig,
    cancels: SharedCancels,
    /// Entry ids of jobs running here, for the heartbeat.
    in_flight: Arc<Mutex<HashSet<String>>>,
    sampler: ProcessSampler,
    /// This worker's host facts, until a report has carried them.
    host: Arc<Mutex<Option<v1::WorkerHost>>>,
}

fn now_ts() -> Timestamp {
    baton_proto::timestamp_from_micros(chrono::Utc::now().timestamp_micros())
}

impl KindWorker {
    async fn run(self, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let (tx, rx) = mpsc::channel(8_192);
        let mut reporter = AbortOnDrop(tokio::spawn(run_reporter(
            this.queue.clone() as Arc<dyn JobStream>,
            this.kind.clone(),
            rx,
        )));
        let slots = Arc::new(Semaphore::new(this.config.concurrency));
        let background = CancellationToken::new();
        let _heartbeat = AbortOnDrop(tokio::spawn(this.clone().heartbeat(background.clone())));
        let _reclaimer = AbortOnDrop(tokio::spawn(this.clone().reclaimer(
            slots.clone(),
            tx.clone(),
            background.clone(),
        )));
        let mut jobs = tokio::task::JoinSet::new();

        let mut backoff = Duration::from_millis(50);
        while !shutdown.is_cancelled() {
            let acquired = tokio::select! {
                _ = shutdown.cancelled() => break,
                p = slots.clone().acquire_owned() => p,
            };
            let Ok(first) = acquired else { break };
            let want = (slots.available_permits() + 1).min(MAX_READ);
            let read = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = this.queue.read_jobs(&this.kind, &this.config.worker_id, want, this.config.poll_block) => r,
            };
            drop(first);
            while jobs.try_join_next().is_some() {}
            match read {
                Ok(deliveries) => {
                    backoff = Duration::from_millis(50);
                    for delivery in deliveries {
                        let Ok(permit) = slots.clone().acquire_owned().await else {
                            break;
                        };
                        let this = this.clone();
                        let tx = tx.clone();
                        jobs.spawn(async move {
                            this.handle(delivery, &tx).await;
                            drop(permit);
                        });
                    }
                }
                Err(e) => {
                    tracing::warn!(kind = %this.kind, error = %e, "cannot read jobs");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        // Let running jobs finish; whatever does not finish in time stays unacknowledged and is
        // reclaimed by another worker.
        let all = u32::try_from(this.config.concurrency).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(this.config.shutdown_grace, slots.acquire_many(all)).await;
        background.cancel();
        drop(tx);
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut reporter.0).await;
    }

    /// Keeps running jobs claimed, and tells operators this worker is alive.
    async fn heartbeat(self: Arc<Self>, stop: CancellationToken) {
        let every =
            (self.config.visibility_timeout / 3).clamp(Duration::from_millis(50), HEARTBEAT_EVERY);
        let now_ms = || chrono::Utc::now().timestamp_millis();
        let mut alive = WorkerHeartbeat {
            id: format!("{}:{}", self.config.worker_id, self.kind),
            worker_id: self.config.worker_id.clone(),
            kind: self.kind.clone(),
            pid: std::process::id(),
            hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_default(),
            started_at_ms: now_ms(),
            last_heartbeat_ms: now_ms(),
        };
        loop {
            alive.last_heartbeat_ms = now_ms();
            if let Err(e) = self.queue.worker_heartbeat(&alive).await {
                tracing::warn!(kind = %self.kind, error = %e, "cannot record the worker heartbeat");
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let ids: Vec<String> = self
                .in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned()
                .collect();
            if let Err(e) = self
                .queue
                .touch_jobs(&self.kind, &self.config.worker_id, &ids)
                .await
            {
                tracing::warn!(kind = %self.kind, error = %e, "cannot extend running jobs");
            }
        }
    }

    async fn reclaimer(
        self: Arc<Self>,
        slots: Arc<Semaphore>,
        tx: mpsc::Sender<Report>,
        stop: CancellationToken,
    ) {
        let every = (self.config.visibility_timeout / 2).max(Duration::from_millis(50));
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
            let reclaimed = self
                .queue
                .reclaim_jobs(
                    &self.kind,
                    &self.config.worker_id,
                    self.config.visibility_timeout,
                    want,
                )
                .await;
            match reclaimed {
                Ok(deliveries) => {
                    for delivery in deliveries {
                        tracing::info!(kind = %self.kind, entry = %delivery.id, deliveries = delivery.deliveries, "reclaimed a job from a worker that stopped answering");
                        let Ok(permit) = slots.clone().acquire_owned().await else {
                            return;
                        };
                        let this = self.clone();
                        let tx = tx.clone();
                        jobs.spawn(async move {
                            this.handle(delivery, &tx).await;
                            drop(permit);
                        });
                    }
                }
                Err(e) => tracing::warn!(kind = %self.kind, error = %e, "cannot reclaim jobs"),
            }
        }
    }

    async fn dead_letter(&self, delivery: &Delivery<v1::Job>, reason: String) {
        tracing::error!(kind = %self.kind, entry = %delivery.id, %reason, "moving job to the dead-letter stream");
        let letter = v1::DeadLetter {
            stream: StreamName::jobs(self.kind.as_str()).to_string(),
            entry_id: delivery.id.clone(),
            reason,
            payload: delivery.payload.clone(),
            dead_at: Some(now_ts()),
        };
        if let Err(e) = self.queue.dead_letter_job(&self.kind, letter).await {
            tracing::error!(kind = %self.kind, error = %e, "cannot dead-letter job");
        }
    }

    async fn handle(&self, delivery: Delivery<v1::Job>, tx: &mpsc::Sender<Report>) {
        let job = match &delivery.message {
            Ok(job) => job.clone(),
            Err(e) => {
                self.dead_letter(&delivery, e.clone()).await;
                return;
            }
        };
        // One span per attempt, in the run's trace when the job carries one.
        let span = tracing::info_span!(
            "job",
            otel.name = %format!("step {}", job.step_id),
            run.id = %job.run_id,
            workflow.definition = %job.workflow_ref,
            tenant = %job.tenant,
            step.id = %job.step_id,
            step.kind = %self.kind,
            attempt = job.attempt,
            otel.status_code = tracing::field::Empty,
            otel.status_description = tracing::field::Empty,
        );
        baton_telemetry::set_parent(&span, &job.trace_context);
        self.handle_job(delivery, job, tx).instrument(span).await;
    }

    async fn handle_job(
        &self,
        delivery: Delivery<v1::Job>,
        job: v1::Job,
        tx: &mpsc::Sender<Report>,
    ) {
        if delivery.deliveries > self.config.max_deliveries {
            let reason = format!(
                "job was delivered {} times without a result; its workers may be crashing",
                delivery.deliveries
            );
            self.dead_letter(&delivery, reason.clone()).await;
            let result = self.result(
                &job,
                v1::JobOutcome::Failed,
                String::new(),
                reason,
                false,
                None,
            );
            let _ = tx
                .send(Report {
                    message: result,
                    ack: None,
                })
                .await;
            return;
        }

        let token = CancellationToken::new();
        let already_cancelled = {
            let mut c = self.cancels.lock().unwrap_or_else(|e| e.into_inner());
            let cancelled = c.cancelled.contains_key(&job.run_id);
            if !cancelled {
                c.running
                    .entry(job.run_id.clone())
                    .or_default()
                    .insert(delivery.id.clone(), token.clone());
            }
            cancelled
        };
        if already_cancelled {
            let result = self.result(
                &job,
                v1::JobOutcome::Cancelled,
                String::new(),
                "run cancelled".into(),
                false,
                None,
            );
            let _ = tx
                .send(Report {
                    message: result,
                    ack: Some(delivery.id),
                })
                .await;
            return;
        }

        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(delivery.id.clone());
        let started = now_ts();
        let (sample, clock) = (self.sampler.latest(), std::time::Instant::now());
        let start_msg = v1::RunnerMessage {
            message: Some(Message::JobStarted(v1::JobStarted {
                run_id: job.run_id.clone(),
                step_id: job.step_id.clone(),
                attempt: job.attempt,
                worker_id: self.config.worker_id.clone(),
                started_at: Some(started),
            })),
        };
        // Most jobs finish in well under STARTED_REPORT_DELAY; their result says when they
        // started, so the runner gets one message instead of two. Longer jobs report `started`
        // once the delay passes, so watchers see them running.
        let execution = self.execute(&job, token.clone());
        tokio::pin!(execution);
        let (outcome, output, error, retryable) = tokio::select! {
            biased;
            finished = &mut execution => finished,
            _ = tokio::time::sleep(STARTED_REPORT_DELAY) => {
                let _ = tx.send(Report { message: start_msg, ack: None }).await;
                execution.await
            }
        };
        let execution_ms = clock.elapsed().as_millis() as i64;
        let queue_ms = job.enqueued_at.as_ref().map_or(0, |e| {
            (baton_proto::timestamp_to_micros(&started) - baton_proto::timestamp_to_micros(e))
                / 1_000
        });
        let usage = self
            .sampler
            .usage_since(sample, clock.elapsed())
            .to_proto(queue_ms, execution_ms);
        let mut result = self.result(&job, outcome, output, error, retryable, Some(started));
        if let Some(Message::JobResult(r)) = &mut result.message {
            r.usage = Some(usage);
        }
        {
            let mut c = self.cancels.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(tokens) = c.running.get_mut(&job.run_id) {
                tokens.remove(&delivery.id);
                if tokens.is_empty() {
                    c.running.remove(&job.run_id);
                }
            }
        }
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&delivery.id);
        let _ = tx
            .send(Report {
                message: result,
                ack: Some(delivery.id),
            })
            .await;
    }

    async fn execute(
        &self,
        job: &v1::Job,
        cancel: CancellationToken,
    ) -> (v1::JobOutcome, String, String, bool) {
        let input = match job.input_json.as_str() {
            "" => serde_json::Value::Null,
            text => match serde_json::from_str(text) {
                Ok(v) => v,
                Err(e) => {
                    return (
                        v1::JobOutcome::Failed,
                        String::new(),
                        format!("input is not JSON: {e}"),
                        false,
                    );
                }
            },
        };
        let executor = self.executor.clone();
        let job_owned = job.clone();
        let cancel_inner = cancel.clone();
        // Its own task, so a panicking executor fails the attempt instead of the worker.
        let mut work = AbortOnDrop(tokio::spawn(async move {
            executor.execute(&job_owned, input, cancel_inner).await
        }));
        let timeout = (job.timeout_ms > 0).then(|| Duration::from_millis(job.timeout_ms));
        let joined = match timeout {
            Some(limit) => match tokio::time::timeout(limit, &mut work.0).await {
                Ok(joined) => joined,
                Err(_) => {
                    let text = format!("step timed out after {}", humanize(limit));
                    return (v1::JobOutcome::TimedOut, String::new(), text, true);
                }
            },
            None => (&mut work.0).await,
        };
        match joined {
            Ok(Ok(output)) => (
                v1::JobOutcome::Succeeded,
                output.to_string(),
                String::new(),
                false,
            ),
            Ok(Err(StepFailure { message, .. })) if cancel.is_cancelled() => {
                (v1::JobOutcome::Cancelled, String::new(), message, false)
            }
            Ok(Err(StepFailure { message, retryable })) => {
                (v1::JobOutcome::Failed, String::new(), message, retryable)
            }
            Err(e) => (
                v1::JobOutcome::Failed,
                String::new(),
                format!("step executor crashed: {e}"),
                true,
            ),
        }
    }

    fn result(
        &self,
        job: &v1::Job,
        outcome: v1::JobOutcome,
        output_json: String,
        error: String,
        retryable: bool,
        started_at: Option<Timestamp>,
    ) -> v1::RunnerMessage {
        if outcome != v1::JobOutcome::Succeeded {
            let span = tracing::Span::current();
            span.record("otel.status_code", "ERROR");
            span.record("otel.status_description", error.as_str());
            tracing::warn!(kind = %self.kind, run.id = %job.run_id, step.id = %job.step_id, attempt = job.attempt, %error, "step attempt did not succeed");
        }
        v1::RunnerMessage {
            message: Some(Message::JobResult(v1::JobResult {
                run_id: job.run_id.clone(),
                step_id: job.step_id.clone(),
                attempt: job.attempt,
                outcome: outcome as i32,
                output_json,
                error,
                retryable,
                worker_id: self.config.worker_id.clone(),
                started_at,
                finished_at: Some(now_ts()),
                usage: None,
                host: self.host.lock().unwrap_or_else(|e| e.into_inner()).take(),
            })),
        }
    }
}

fn humanize(d: Duration) -> String {
    if d.as_millis() < 1_000 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}
