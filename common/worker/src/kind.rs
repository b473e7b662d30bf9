//! One kind's worker: a read loop that takes as many jobs as it has free slots and spawns one
//! task per job, and what that task does with a job (skip, dead-letter, run, report, park).

use std::{sync::Arc, time::Duration};

use baton_proto::{
    prost_types::Timestamp,
    v1::{self, runner_message::Message},
};
use baton_queue::{Delivery, JobStream, StreamName, WorkerQueue};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{
    StepExecutor, WorkerConfig,
    attempt::{self, AttemptOutcome},
    cancels::CancelRegistry,
    heartbeat::{self, InFlight},
    reclaim,
    reporter::{Report, run_reporter},
    task::AbortOnDrop,
    usage::ProcessSampler,
};

/// How long a job runs before the worker reports it started. Most jobs finish well within it;
/// their result says when they started, so the runner gets one message instead of two. Longer
/// jobs report `started` once it passes, so watchers see them running.
const STARTED_REPORT_DELAY: Duration = Duration::from_millis(10);
/// Most jobs taken in one read.
pub(crate) const MAX_READ: usize = 256;
/// Reports waiting for the reporter before jobs wait to hand theirs over.
const REPORT_BUFFER: usize = 8_192;
/// How long shutdown waits for the reporter to send what is left.
const REPORTER_FLUSH: Duration = Duration::from_secs(5);

pub(crate) struct KindWorker {
    pub(crate) queue: Arc<dyn WorkerQueue>,
    pub(crate) kind: String,
    pub(crate) executor: Arc<dyn StepExecutor>,
    pub(crate) config: WorkerConfig,
    pub(crate) cancels: Arc<CancelRegistry>,
    /// Entry ids of jobs running here, for the heartbeat.
    pub(crate) in_flight: InFlight,
    pub(crate) sampler: ProcessSampler,
    /// This worker's host facts, until a report has carried them.
    pub(crate) host: Arc<std::sync::Mutex<Option<v1::WorkerHost>>>,
    pub(crate) metrics: Option<Arc<baton_metrics::Metrics>>,
}

/// When an attempt started.
#[derive(Clone, Copy)]
struct Start {
    at: Option<Timestamp>,
}

impl Start {
    /// For a job answered without running it.
    const NEVER: Self = Self { at: None };
}

fn now_ts() -> Timestamp {
    baton_proto::timestamp_from_micros(chrono::Utc::now().timestamp_micros())
}

impl KindWorker {
    /// Works until `shutdown`, then lets running jobs finish within the grace period; whatever
    /// does not finish in time stays unacknowledged and is reclaimed by another worker.
    pub(crate) async fn run(self, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let (tx, rx) = mpsc::channel(REPORT_BUFFER);
        let mut reporter = AbortOnDrop(tokio::spawn(run_reporter(
            this.queue.clone() as Arc<dyn JobStream>,
            this.kind.clone(),
            rx,
        )));
        let slots = Arc::new(Semaphore::new(this.config.concurrency));
        let background = CancellationToken::new();
        let _heartbeat = AbortOnDrop(tokio::spawn(heartbeat::beat(
            this.queue.clone(),
            this.kind.clone(),
            this.config.clone(),
            this.in_flight.clone(),
            this.metrics.clone(),
            background.clone(),
        )));
        let _reclaimer = AbortOnDrop(tokio::spawn(reclaim::reclaim(
            this.clone(),
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
        let all = u32::try_from(this.config.concurrency).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(this.config.shutdown_grace, slots.acquire_many(all)).await;
        background.cancel();
        drop(tx);
        let _ = tokio::time::timeout(REPORTER_FLUSH, &mut reporter.0).await;
    }

    /// Handles one delivery, in a span of the run's trace when the job carries one.
    pub(crate) async fn handle(&self, delivery: Delivery<v1::Job>, tx: &mpsc::Sender<Report>) {
        let job = match &delivery.message {
            Ok(job) => job.clone(),
            Err(e) => {
                self.dead_letter(&delivery, e.clone()).await;
                return;
            }
        };
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
            let error = format!(
                "job was delivered {} times without a result; its workers may be crashing",
                delivery.deliveries
            );
            // Moving it to the dead letters acknowledges it.
            self.dead_letter(&delivery, error.clone()).await;
            let failed = AttemptOutcome::Failed {
                error,
                retryable: false,
                retry_after: None,
            };
            let report = self.report(&job, delivery.deliveries, failed, Start::NEVER, None);
            let _ = tx.send(report).await;
            return;
        }
        let Some(cancel) = self.cancels.register(&job.run_id, &delivery.id) else {
            let cancelled = AttemptOutcome::Cancelled {
                error: "run cancelled".into(),
            };
            let report = self.report(
                &job,
                delivery.deliveries,
                cancelled,
                Start::NEVER,
                Some(delivery.id),
            );
            let _ = tx.send(report).await;
            return;
        };

        self.in_flight.insert(&delivery.id);
        let started = now_ts();
        let (sample, clock) = (self.sampler.latest(), std::time::Instant::now());
        let start = Start { at: Some(started) };
        let max_output = self.config.max_output_bytes;
        let attempt = attempt::run(self.executor.as_ref(), &job, cancel, max_output);
        tokio::pin!(attempt);
        let outcome = tokio::select! {
            biased;
            outcome = &mut attempt => outcome,
            _ = tokio::time::sleep(STARTED_REPORT_DELAY) => {
                let message = self.started(&job, delivery.deliveries, started, false);
                let _ = tx.send(Report { message: Some(message), ack: None }).await;
                attempt.await
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
        self.cancels.unregister(&job.run_id, &delivery.id);
        self.in_flight.remove(&delivery.id);
        let mut report = self.report(&job, delivery.deliveries, outcome, start, Some(delivery.id));
        if let Some(v1::RunnerMessage {
            message: Some(Message::JobResult(result)),
        }) = &mut report.message
        {
            result.usage = Some(usage);
        }
        let _ = tx.send(report).await;
    }

    /// What to send for an attempt's outcome, acknowledging `ack` with it: the result; or, for a
    /// parked attempt, a start that says it is parked, so the step shows running while no worker
    /// holds it and the runner does not look for its job.
    fn report(
        &self,
        job: &v1::Job,
        delivery: u32,
        outcome: AttemptOutcome,
        start: Start,
        ack: Option<String>,
    ) -> Report {
        if let AttemptOutcome::Parked { reason } = &outcome {
            tracing::info!(kind = %self.kind, %reason, "step parked; its result arrives later");
            let started = start.at.unwrap_or_else(now_ts);
            let message = Some(self.started(job, delivery, started, true));
            return Report { message, ack };
        }
        let mut result = v1::JobResult {
            run_id: job.run_id.clone(),
            step_id: job.step_id.clone(),
            attempt: job.attempt,
            worker_id: self.config.worker_id.clone(),
            started_at: start.at,
            finished_at: Some(now_ts()),
            host: self.host.lock().unwrap_or_else(|e| e.into_inner()).take(),
            lease: job.lease,
            delivery,
            ..Default::default()
        };
        outcome.write_result(&mut result);
        if result.outcome != v1::JobOutcome::Succeeded as i32 {
            let span = tracing::Span::current();
            span.record("otel.status_code", "ERROR");
            span.record("otel.status_description", result.error.as_str());
            tracing::warn!(kind = %self.kind, run.id = %job.run_id, step.id = %job.step_id, attempt = job.attempt, error = %result.error, "step attempt did not succeed");
        }
        Report {
            message: Some(v1::RunnerMessage {
                message: Some(Message::JobResult(result)),
            }),
            ack,
        }
    }

    fn started(
        &self,
        job: &v1::Job,
        delivery: u32,
        started_at: Timestamp,
        parked: bool,
    ) -> v1::RunnerMessage {
        v1::RunnerMessage {
            message: Some(Message::JobStarted(v1::JobStarted {
                run_id: job.run_id.clone(),
                step_id: job.step_id.clone(),
                attempt: job.attempt,
                worker_id: self.config.worker_id.clone(),
                started_at: Some(started_at),
                lease: job.lease,
                delivery,
                parked,
            })),
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
}
