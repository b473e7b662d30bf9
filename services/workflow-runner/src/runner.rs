//! The runner loop: take a batch from the inbox, lock its runs, let the engine decide, enqueue the
//! jobs and timers, commit, then publish events and acknowledge. Jobs go out before the commit so
//! a crash in between can only leave a job whose result is ignored (its attempt is not recorded
//! as in flight), never a step recorded as queued with no job behind it.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use baton_engine::{
    Effects, EngineConfig, RunState, RunStatus, abort_run, apply_job_result, apply_job_started,
    now_micros, start_run, wake_run,
};
use baton_metrics::{Metrics, RunOutcome};
use baton_proto::v1::{self, runner_message::Message};
use baton_queue::{BatchOutcome, Delivery, RunnerQueue, StreamName, TimerEntry};
use baton_store::{Store, WakeCandidate};
use baton_workflow::{CompiledWorkflow, WorkflowRef, compile_registered};
use prost::Message as _;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{RunnerConfig, RunnerError};

/// Compiled definitions by `owner/name@version`. Registered versions never change, so entries
/// never go stale.
#[derive(Default)]
struct WorkflowCache {
    compiled: Mutex<HashMap<String, Arc<CompiledWorkflow>>>,
}

/// Most definitions kept compiled.
const WORKFLOW_CACHE_LIMIT: usize = 10_000;

impl WorkflowCache {
    async fn get(
        &self,
        store: &dyn Store,
        workflow_ref: &str,
    ) -> Result<Arc<CompiledWorkflow>, String> {
        if let Some(wf) = self
            .compiled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(workflow_ref)
        {
            return Ok(wf.clone());
        }
        let r: WorkflowRef = workflow_ref.parse()?;
        let stored = store
            .get_workflow(&r.owner, &r.name, r.version)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("workflow {workflow_ref} is not registered"))?;
        let definition = serde_json::from_value(stored.definition).map_err(|e| e.to_string())?;
        let compiled = Arc::new(compile_registered(definition).map_err(|e| e.to_string())?);
        let mut cache = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= WORKFLOW_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(workflow_ref.to_owned(), compiled.clone());
        Ok(compiled)
    }
}

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
}

fn run_id_of(message: &Message) -> &str {
    match message {
        Message::StartRun(m) => &m.run_id,
        Message::JobStarted(m) => &m.run_id,
        Message::JobResult(m) => &m.run_id,
        Message::WakeRun(m) => &m.run_id,
    }
}

fn dead_letter_for(
    stream: &str,
    delivery_id: &str,
    reason: String,
    payload: Vec<u8>,
) -> v1::DeadLetter {
    v1::DeadLetter {
        stream: stream.to_owned(),
        entry_id: delivery_id.to_owned(),
        reason,
        payload,
        dead_at: Some(baton_proto::timestamp_from_micros(now_micros())),
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
        };
        Self {
            store,
            queue,
            config,
            engine,
            workflows: WorkflowCache::default(),
            timer_set: tokio::sync::Notify::new(),
            metrics,
        }
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
                Ok(batch) if batch.is_empty() => {}
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
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        // Finish what was taken; anything cut short is reclaimed by another replica.
        while in_flight.join_next().await.is_some() {}
    }

    /// Applies a batch; when it fails as a whole, applies it run by run so one bad run cannot
    /// hold back the others. What still fails stays unacknowledged and is retried on reclaim.
    pub async fn process(&self, batch: Vec<Delivery<v1::RunnerMessage>>) {
        let mut by_run: HashMap<Uuid, Vec<(String, Message)>> = HashMap::new();
        let mut dead = Vec::new();
        for delivery in batch {
            let message = match delivery.message {
                Ok(v1::RunnerMessage { message: Some(m) }) => m,
                Ok(_) => {
                    dead.push((
                        delivery.id,
                        "runner message is empty".to_owned(),
                        delivery.payload,
                    ));
                    continue;
                }
                Err(reason) => {
                    dead.push((delivery.id, reason, delivery.payload));
                    continue;
                }
            };
            if delivery.deliveries > self.config.max_deliveries {
                let reason = format!("runner message failed {} times", delivery.deliveries - 1);
                dead.push((delivery.id, reason, delivery.payload));
                continue;
            }
            match run_id_of(&message).parse::<Uuid>() {
                Ok(id) => by_run.entry(id).or_default().push((delivery.id, message)),
                Err(_) => dead.push((
                    delivery.id,
                    format!("`{}` is not a run id", run_id_of(&message)),
                    delivery.payload,
                )),
            }
        }
        for (id, reason, payload) in dead {
            tracing::error!(entry = %id, %reason, "moving runner message to the dead-letter stream");
            let letter = dead_letter_for(&StreamName::Runner.to_string(), &id, reason, payload);
            if let Err(e) = self.queue.dead_letter_runner(letter).await {
                tracing::error!(error = %e, "cannot dead-letter runner message");
            }
        }
        if by_run.is_empty() {
            return;
        }
        let runs = by_run.len();
        if let Err(e) = self.apply(&by_run).await {
            if runs == 1 {
                tracing::error!(error = %e, "cannot apply runner messages; they will be retried");
                return;
            }
            tracing::warn!(error = %e, runs, "batch failed; applying it run by run");
            for (id, messages) in by_run {
                let single = HashMap::from([(id, messages)]);
                if let Err(e) = self.apply(&single).await {
                    tracing::error!(run.id = %id, error = %e, "cannot apply runner messages; they will be retried");
                }
            }
        }
    }

    #[tracing::instrument(name = "runner_batch", skip_all, fields(runs = by_run.len(), messages))]
    async fn apply(
        &self,
        by_run: &HashMap<Uuid, Vec<(String, Message)>>,
    ) -> Result<(), RunnerError> {
        let ids: Vec<Uuid> = by_run.keys().copied().collect();
        let acks: Vec<String> = by_run
            .values()
            .flatten()
            .map(|(id, _)| id.clone())
            .collect();
        tracing::Span::current().record("messages", acks.len());
        let began = std::time::Instant::now();
        let mut batch = self.store.lock_runs(&ids).await?;
        let locked = began.elapsed();

        let refs: HashSet<String> = batch
            .runs()
            .iter()
            .map(|r| r.workflow_ref.clone())
            .collect();
        let mut workflows = HashMap::with_capacity(refs.len());
        for r in refs {
            let wf = self.workflows.get(self.store.as_ref(), &r).await;
            workflows.insert(r, wf);
        }

        let now = now_micros();
        let mut fx = Effects::default();
        let mut found = HashSet::with_capacity(ids.len());
        for run in batch.runs() {
            found.insert(run.id);
            let Some(messages) = by_run.get(&run.id) else {
                continue;
            };
            let wf = match &workflows[&run.workflow_ref] {
                Ok(wf) => wf.clone(),
                Err(reason) => {
                    tracing::error!(run.id = %run.id, %reason, "cannot load the run's workflow; failing the run");
                    abort_run(run, RunStatus::Failed, reason, now, &mut fx);
                    continue;
                }
            };
            // With tracing on, the run's work here joins the run's trace, and its jobs carry
            // this span's context to the workers.
            let span = (!run.trace_context.is_empty()).then(|| {
                let span = tracing::info_span!(
                    "runner.apply",
                    run.id = %run.id,
                    workflow.definition = %run.workflow_ref,
                    tenant = %run.tenant,
                    messages = messages.len(),
                );
                baton_telemetry::set_parent(&span, &run.trace_context);
                span
            });
            let _entered = span.as_ref().map(tracing::Span::enter);
            let first_job = fx.jobs.len();
            for (_, message) in messages {
                match message {
                    Message::StartRun(_) => start_run(run, &wf, &self.engine, now, &mut fx),
                    Message::JobStarted(m) => apply_job_started(run, m, now),
                    Message::JobResult(m) => apply_job_result(run, &wf, m, now, &mut fx),
                    Message::WakeRun(_) => wake_run(run, &wf, now, &mut fx),
                }
            }
            if let Some(span) = &span {
                let context = baton_telemetry::inject_context(span);
                for job in &mut fx.jobs[first_job..] {
                    job.trace_context.clone_from(&context);
                }
            }
        }
        for id in ids.iter().filter(|id| !found.contains(id)) {
            tracing::warn!(run.id = %id, "messages for an unknown run; dropping them");
        }

        let timers: Vec<TimerEntry> = fx
            .timers
            .iter()
            .map(|t| TimerEntry {
                due_ms: t.due_at / 1_000,
                wake: v1::WakeRunCommand {
                    run_id: t.run_id.to_string(),
                    reason: t.reason as i32,
                    due_at: Some(baton_proto::timestamp_from_micros(t.due_at)),
                },
            })
            .collect();
        let decided = began.elapsed();
        // Jobs and timers must be out before the commit (see the module docs); the batch's
        // writes go to Postgres meanwhile.
        let dispatch = async {
            let sent = std::time::Instant::now();
            let result = self.queue.dispatch(&fx.jobs, &timers).await;
            (result, sent.elapsed())
        };
        let ((dispatched, dispatch_time), written) = tokio::join!(dispatch, batch.write());
        dispatched?;
        written?;
        let dispatched = began.elapsed();
        if !timers.is_empty() {
            self.timer_set.notify_one();
        }
        let runs = batch.commit().await?;
        let committed = began.elapsed();
        self.metrics
            .observe_postgres("lock_runs", locked.as_secs_f64());
        self.metrics
            .observe_redis("dispatch", dispatch_time.as_secs_f64());
        self.metrics
            .observe_postgres("write_and_commit", (committed - decided).as_secs_f64());
        record_metrics(&self.metrics, &runs);
        let hosts: Vec<v1::WorkerHost> = by_run
            .values()
            .flatten()
            .filter_map(|(_, m)| match m {
                Message::JobResult(r) => r.host.clone(),
                _ => None,
            })
            .collect();
        if !hosts.is_empty()
            && let Err(e) = self.store.record_workers(&hosts).await
        {
            tracing::warn!(error = %e, "cannot record worker hosts");
        }

        let mut outcome = BatchOutcome {
            ack: acks,
            ..BatchOutcome::default()
        };
        for run in &runs {
            outcome
                .events
                .extend(run.new_events.iter().map(|e| run.event_to_proto(e)));
            if run.status.is_terminal() && run.new_events.iter().any(|e| e.step_id.is_none()) {
                tracing::info!(run.id = %run.id, workflow = %run.workflow_ref, status = %run.status, "run ended");
            }
        }
        outcome.cancels = fx
            .cancelled_runs
            .iter()
            .map(|(id, reason)| v1::CancelNotice {
                run_id: id.to_string(),
                reason: reason.clone(),
            })
            .collect();
        outcome.dead_letters = fx
            .exhausted
            .iter()
            .map(|r| {
                let kind = runs
                    .iter()
                    .find(|run| run.id.to_string() == r.run_id)
                    .and_then(|run| run.steps.iter().find(|s| s.step_id == r.step_id))
                    .map(|s| s.kind.clone())
                    .unwrap_or_default();
                let reason = format!(
                    "step `{}` failed on its last attempt ({}): {}",
                    r.step_id, r.attempt, r.error
                );
                dead_letter_for(
                    &StreamName::jobs(kind).to_string(),
                    "",
                    reason,
                    r.encode_to_vec(),
                )
            })
            .collect();
        let publishing = std::time::Instant::now();
        self.queue.complete_batch(outcome).await?;
        self.metrics
            .observe_redis("complete_batch", publishing.elapsed().as_secs_f64());
        tracing::debug!(
            lock_us = locked.as_micros() as u64,
            decide_us = (decided - locked).as_micros() as u64,
            dispatch_us = (dispatched - decided).as_micros() as u64,
            commit_us = (committed - dispatched).as_micros() as u64,
            publish_us = (began.elapsed() - committed).as_micros() as u64,
            "batch applied"
        );
        Ok(())
    }

    /// Moves due timers into the inbox until `shutdown`. It sleeps until the earliest timer is
    /// due (at most `timer_poll`), and wakes early when this replica sets an earlier one.
    pub async fn run_timers(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let now_ms = now_micros() / 1_000;
            let wait = match self.queue.fire_due_timers(now_ms, 1_000).await {
                Ok(fired) if fired.moved >= 1_000 => Duration::ZERO,
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
                _ = reclaim.tick() => {
                    match self.queue.reclaim_runner(&self.config.consumer, self.config.inbox_visibility, self.config.batch_size).await {
                        Ok(batch) if !batch.is_empty() => {
                            tracing::info!(messages = batch.len(), "reclaimed runner messages left unfinished");
                            self.process(batch).await;
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "cannot reclaim runner messages"),
                    }
                }
                _ = sweep.tick() => {
                    if let Err(e) = self.sweep().await {
                        tracing::warn!(error = %e, "sweep failed");
                    }
                }
            }
        }
    }

    async fn sweep(&self) -> Result<(), RunnerError> {
        let grace = i64::try_from(self.config.sweep_grace.as_micros()).unwrap_or(i64::MAX);
        let candidates = self.store.overdue_runs(now_micros(), grace, 500).await?;
        if candidates.is_empty() {
            return Ok(());
        }
        tracing::info!(
            runs = candidates.len(),
            "waking runs whose wake-up was lost"
        );
        let messages: Vec<v1::RunnerMessage> = candidates
            .into_iter()
            .map(|c| {
                let message = match c {
                    WakeCandidate::NotStarted(id) => Message::StartRun(v1::StartRunCommand {
                        run_id: id.to_string(),
                        ..Default::default()
                    }),
                    WakeCandidate::Overdue(id) => Message::WakeRun(v1::WakeRunCommand {
                        run_id: id.to_string(),
                        reason: v1::WakeReason::Sweep as i32,
                        due_at: None,
                    }),
                };
                v1::RunnerMessage {
                    message: Some(message),
                }
            })
            .collect();
        self.queue.send_to_runner(&messages).await?;
        Ok(())
    }
}

/// Orchestration metrics from what a committed batch changed: each event says what ended and
/// the step or run says when it began.
fn record_metrics(metrics: &Metrics, runs: &[RunState]) {
    use baton_proto::v1::RunEventType as Ev;
    let secs = |from: Option<i64>, to: Option<i64>| match (from, to) {
        (Some(a), Some(b)) => Some((b - a).max(0) as f64 / 1e6),
        _ => None,
    };
    for run in runs {
        let definition = run.workflow_ref.as_str();
        for event in &run.new_events {
            let step = event
                .step_id
                .as_deref()
                .and_then(|id| run.steps.iter().find(|s| s.step_id == id));
            match (event.event_type, step) {
                (Ev::RunStarted, _) => metrics.run_started(definition),
                (Ev::RunCompleted | Ev::RunFailed | Ev::RunCancelled | Ev::RunTimedOut, _) => {
                    let outcome = match event.event_type {
                        Ev::RunCompleted => RunOutcome::Completed,
                        Ev::RunFailed => RunOutcome::Failed,
                        Ev::RunCancelled => RunOutcome::Cancelled,
                        _ => RunOutcome::TimedOut,
                    };
                    let started = run.started_at.unwrap_or(run.created_at);
                    metrics.run_ended(
                        definition,
                        outcome,
                        secs(Some(started), Some(event.time)).unwrap_or(0.0),
                    );
                }
                (Ev::StepStarted, Some(s)) => {
                    if let Some(queued) = secs(s.queued_at, s.started_at) {
                        metrics.step_queued_for(definition, &s.step_id, queued);
                    }
                }
                (Ev::StepCompleted | Ev::StepFailed | Ev::StepRetrying, Some(s)) => {
                    if let Some(ran) = secs(s.started_at, Some(event.time)) {
                        metrics.step_ended(
                            definition,
                            &s.step_id,
                            event.event_type == Ev::StepCompleted,
                            ran,
                        );
                    }
                }
                _ => {}
            }
        }
    }
}
