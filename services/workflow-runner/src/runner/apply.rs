//! Applying one batch of inbox messages, a stage at a time: lock the runs and load their
//! workflows, let the engine decide, send the jobs and timers while the writes go to the store,
//! commit, then publish and acknowledge. A batch costs the same round trips whatever its size: one
//! lock, one dispatch beside one write, one commit, one publish.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use baton_engine::{
    Effects, EngineConfig, RunState, RunStatus, Timer, abort_run, apply_job_result,
    apply_job_started, now_micros, redispatch_step, start_run, wake_run,
};
use baton_metrics::Metrics;
use baton_proto::v1::{self, runner_message::Message};
use baton_queue::{BatchOutcome, StreamName, TimerEntry};
use baton_store::{RunBatch, WorkerHost};
use baton_workflow::CompiledWorkflow;
use prost::Message as _;

use super::{
    Runner,
    admission::RunningChange,
    dead_letter,
    inbox::{InboxEntry, RunMessages},
    metrics::record_metrics,
    workflows::LoadedWorkflow,
};
use crate::RunnerError;

/// A run's cancel reason when its cancel command gives none.
const DEFAULT_CANCEL_REASON: &str = "cancelled by request";

/// A batch's runs, locked in one transaction, with the workflows they run.
struct Locked {
    batch: Box<dyn RunBatch>,
    /// By tenant, then `owner/name@version`.
    workflows: HashMap<String, HashMap<String, LoadedWorkflow>>,
}

/// What the engine decided for a batch, for the queue and the store to carry out.
struct Decided {
    effects: Effects,
    /// `effects.timers` as the queue sets them.
    timers: Vec<TimerEntry>,
}

/// When each stage of a batch ended, counted from its start.
struct StageTimes {
    began: Instant,
    locked: Duration,
    decided: Duration,
    dispatched: Duration,
    committed: Duration,
    /// The queue's dispatch alone, which overlaps the store's write.
    dispatch: Duration,
}

impl Runner {
    /// Applies the messages of a batch's runs in one transaction; on error nothing is committed
    /// or acknowledged.
    #[tracing::instrument(name = "runner_batch", skip_all, fields(runs = by_run.len(), messages))]
    pub(super) async fn apply(&self, by_run: &RunMessages) -> Result<(), RunnerError> {
        let mut times = StageTimes::start();
        tracing::Span::current().record("messages", by_run.values().map(Vec::len).sum::<usize>());
        let ids: Vec<_> = by_run.keys().copied().collect();
        let mut batch = self.store.lock_runs(&ids).await?;
        times.locked = times.began.elapsed();
        let workflows = self.load_workflows(batch.runs()).await?;
        let mut locked = Locked { batch, workflows };
        let decided = decide(&self.engine, &mut locked, by_run, now_micros());
        times.decided = times.began.elapsed();
        times.dispatch = self
            .dispatch_and_write(&decided, locked.batch.as_mut())
            .await?;
        times.dispatched = times.began.elapsed();
        let runs = locked.batch.commit().await?;
        times.committed = times.began.elapsed();
        times.observe(&self.metrics);
        record_metrics(&self.metrics, &runs);
        self.admission.record(RunningChange::of(&runs));
        record_recovery(&self.metrics, &decided.effects);
        log_ended_runs(&runs);
        self.record_workers(by_run).await;
        self.publish(batch_outcome(by_run, &runs, decided.effects))
            .await?;
        times.log();
        Ok(())
    }

    /// The workflow of each locked run, each looked up once.
    async fn load_workflows(
        &self,
        runs: &[RunState],
    ) -> Result<HashMap<String, HashMap<String, LoadedWorkflow>>, RunnerError> {
        let refs: HashSet<(&str, &str)> = runs
            .iter()
            .map(|r| (r.tenant.as_str(), r.workflow_ref.as_str()))
            .collect();
        let mut workflows: HashMap<String, HashMap<String, LoadedWorkflow>> = HashMap::new();
        for (tenant, r) in refs {
            let wf = self.workflows.get(self.store.as_ref(), tenant, r).await?;
            workflows
                .entry(tenant.to_owned())
                .or_default()
                .insert(r.to_owned(), wf);
        }
        Ok(workflows)
    }

    /// Sends the batch's jobs and timers while its writes go to the store. Both must succeed
    /// before the commit (see the module docs of [`super`]); returns how long the dispatch took.
    async fn dispatch_and_write(
        &self,
        decided: &Decided,
        batch: &mut dyn RunBatch,
    ) -> Result<Duration, RunnerError> {
        let dispatch = async {
            let sent = Instant::now();
            self.queue
                .dispatch(&decided.effects.jobs, &decided.timers)
                .await
                .map(|()| sent.elapsed())
        };
        let (dispatched, written) = tokio::join!(dispatch, batch.write());
        let dispatch_time = dispatched?;
        written?;
        if !decided.timers.is_empty() {
            self.timer_set.notify_one();
        }
        Ok(dispatch_time)
    }

    /// Records the hosts workers sent with their first results. Losing them costs only the host
    /// facts shown with a run, so a failure is logged, not returned.
    async fn record_workers(&self, by_run: &RunMessages) {
        let hosts: Vec<WorkerHost> = by_run
            .values()
            .flatten()
            .filter_map(|entry| match &entry.message {
                Message::JobResult(r) => r.host.as_ref().map(WorkerHost::from),
                _ => None,
            })
            .collect();
        if !hosts.is_empty()
            && let Err(e) = self.store.record_workers(&hosts).await
        {
            tracing::warn!(error = %e, "cannot record worker hosts");
        }
    }

    /// Publishes a committed batch's events, cancel notices and dead letters, and acknowledges
    /// its inbox entries.
    async fn publish(&self, outcome: BatchOutcome) -> Result<(), RunnerError> {
        let publishing = Instant::now();
        self.queue.complete_batch(outcome).await?;
        self.metrics
            .observe_redis("complete_batch", publishing.elapsed().as_secs_f64());
        Ok(())
    }
}

/// Lets the engine apply each locked run's messages, in memory.
fn decide(engine: &EngineConfig, locked: &mut Locked, by_run: &RunMessages, now: i64) -> Decided {
    let Locked { batch, workflows } = locked;
    let mut effects = Effects::default();
    let mut found = HashSet::with_capacity(by_run.len());
    for run in batch.runs() {
        found.insert(run.id);
        let Some(entries) = by_run.get(&run.id) else {
            continue;
        };
        match &workflows[&run.tenant][&run.workflow_ref] {
            LoadedWorkflow::Ready(wf) => decide_run(engine, wf, run, entries, now, &mut effects),
            LoadedWorkflow::Unusable(reason) => {
                end_unrunnable(run, reason, entries, now, &mut effects)
            }
        }
    }
    for id in by_run.keys().filter(|id| !found.contains(id)) {
        tracing::warn!(run.id = %id, "messages for an unknown run; dropping them");
    }
    let timers = effects.timers.iter().map(timer_entry).collect();
    Decided { effects, timers }
}

/// Applies one run's messages in order. With tracing on, the run's work here joins the run's
/// trace, and its jobs carry this span's context to the workers.
fn decide_run(
    engine: &EngineConfig,
    wf: &CompiledWorkflow,
    run: &mut RunState,
    entries: &[InboxEntry],
    now: i64,
    fx: &mut Effects,
) {
    let span = run_span(run, entries.len());
    let _entered = span.as_ref().map(tracing::Span::enter);
    let first_job = fx.jobs.len();
    for entry in entries {
        match &entry.message {
            Message::StartRun(_) => start_run(run, wf, engine, now, fx),
            Message::JobStarted(m) => apply_job_started(run, engine, m, now, fx),
            Message::JobResult(m) => apply_job_result(run, wf, engine, m, now, fx),
            Message::WakeRun(_) => wake_run(run, wf, engine, now, fx),
            Message::CancelRun(m) => cancel(run, m, now, fx),
            Message::RedispatchStep(m) => redispatch_step(run, wf, engine, m, now, fx),
        }
    }
    if run.status.is_terminal() {
        // Ended within this batch (cancelled right after it started, say): its steps are
        // settled, so a job sent now would only run for nothing.
        fx.jobs.truncate(first_job);
    } else if let Some(span) = &span {
        let context = baton_telemetry::inject_context(span);
        for job in &mut fx.jobs[first_job..] {
            job.trace_context.clone_from(&context);
        }
    }
}

/// The span a run's messages are applied in, when the run carries a trace to join.
fn run_span(run: &RunState, messages: usize) -> Option<tracing::Span> {
    if run.trace_context.is_empty() {
        return None;
    }
    let span = tracing::info_span!(
        "runner.apply",
        run.id = %run.id,
        workflow.definition = %run.workflow_ref,
        tenant = %run.tenant,
        messages,
    );
    baton_telemetry::set_parent(&span, &run.trace_context);
    Some(span)
}

/// Ends a run whose workflow cannot be loaded, as it can never go on: cancelled when one of its
/// messages asks for that, else failed with `reason`.
fn end_unrunnable(
    run: &mut RunState,
    reason: &str,
    entries: &[InboxEntry],
    now: i64,
    fx: &mut Effects,
) {
    let cancel_command = entries.iter().find_map(|entry| match &entry.message {
        Message::CancelRun(command) => Some(command),
        _ => None,
    });
    if let Some(command) = cancel_command {
        cancel(run, command, now, fx);
    } else if abort_run(run, RunStatus::Failed, reason, now, fx) {
        tracing::error!(run.id = %run.id, %reason, "cannot load the run's workflow; failing the run");
    }
}

/// Cancels a run that has not ended; a run that has is left as it is, so a repeated cancel
/// changes nothing.
fn cancel(run: &mut RunState, command: &v1::CancelRunCommand, now: i64, fx: &mut Effects) {
    let reason = match command.reason.trim() {
        "" => DEFAULT_CANCEL_REASON,
        reason => reason,
    };
    if abort_run(run, RunStatus::Cancelled, reason, now, fx) {
        let waited_ms = command
            .requested_at
            .as_ref()
            .map(|at| (now - baton_proto::timestamp_to_micros(at)).max(0) / 1_000);
        tracing::info!(run.id = %run.id, %reason, waited_ms, "run cancelled");
    }
}

fn timer_entry(timer: &Timer) -> TimerEntry {
    TimerEntry {
        due_ms: timer.due_at / 1_000,
        wake: v1::WakeRunCommand {
            run_id: timer.run_id.to_string(),
            reason: timer.reason as i32,
            due_at: Some(baton_proto::timestamp_from_micros(timer.due_at)),
        },
    }
}

/// Counts the batch's stale reports and re-dispatched steps.
fn record_recovery(metrics: &Metrics, effects: &Effects) {
    let fenced = effects.fenced;
    if fenced.started > 0 {
        metrics.reports_fenced("started", fenced.started);
    }
    if fenced.results > 0 {
        metrics.reports_fenced("result", fenced.results);
        tracing::info!(
            results = fenced.results,
            "ignored late results of stale leases"
        );
    }
    if effects.redispatched > 0 {
        metrics.steps_redispatched(effects.redispatched);
        tracing::info!(
            steps = effects.redispatched,
            "dispatched steps again whose job was lost"
        );
    }
}

fn log_ended_runs(runs: &[RunState]) {
    for run in runs {
        if run.status.is_terminal() && run.new_events.iter().any(|e| e.step_id.is_none()) {
            tracing::info!(run.id = %run.id, workflow = %run.workflow_ref, status = %run.status, "run ended");
        }
    }
}

/// What the queue publishes and acknowledges once a batch committed.
fn batch_outcome(by_run: &RunMessages, runs: &[RunState], effects: Effects) -> BatchOutcome {
    BatchOutcome {
        events: runs
            .iter()
            .flat_map(|run| run.new_events.iter().map(|e| run.event_to_proto(e)))
            .collect(),
        cancels: effects
            .cancelled_runs
            .into_iter()
            .map(|(id, reason)| v1::CancelNotice {
                run_id: id.to_string(),
                reason,
            })
            .collect(),
        dead_letters: effects
            .exhausted
            .iter()
            .map(|result| exhausted_letter(runs, result))
            .collect(),
        ack: by_run
            .values()
            .flatten()
            .filter_map(|e| e.id.clone())
            .collect(),
        drop_timers: ended_deadlines(runs),
    }
}

/// The deadline timers of the runs that ended in this batch, exactly as [`timer_entry`] set
/// them when the runs started, so they leave the queue now instead of waking a finished run.
fn ended_deadlines(runs: &[RunState]) -> Vec<TimerEntry> {
    runs.iter()
        .filter(|run| {
            run.status.is_terminal() && run.new_events.iter().any(|e| e.step_id.is_none())
        })
        .filter_map(|run| {
            let due_at = run.deadline?;
            Some(timer_entry(&Timer {
                run_id: run.id,
                due_at,
                reason: v1::WakeReason::RunDeadline,
            }))
        })
        .collect()
}

/// A dead letter for a job that failed on its last attempt, on its kind's stream, so operators
/// can replay it.
fn exhausted_letter(runs: &[RunState], result: &v1::JobResult) -> v1::DeadLetter {
    let kind = runs
        .iter()
        .find(|run| run.id.to_string() == result.run_id)
        .and_then(|run| run.steps.iter().find(|s| s.step_id == result.step_id))
        .map(|s| s.kind.clone())
        .unwrap_or_default();
    let reason = format!(
        "step `{}` failed on its last attempt ({}): {}",
        result.step_id, result.attempt, result.error
    );
    dead_letter(
        &StreamName::jobs(kind),
        String::new(),
        reason,
        result.encode_to_vec(),
    )
}

impl StageTimes {
    fn start() -> Self {
        Self {
            began: Instant::now(),
            locked: Duration::ZERO,
            decided: Duration::ZERO,
            dispatched: Duration::ZERO,
            committed: Duration::ZERO,
            dispatch: Duration::ZERO,
        }
    }

    fn observe(&self, metrics: &Metrics) {
        metrics.observe_postgres("lock_runs", self.locked.as_secs_f64());
        metrics.observe_redis("dispatch", self.dispatch.as_secs_f64());
        metrics.observe_postgres(
            "write_and_commit",
            (self.committed - self.decided).as_secs_f64(),
        );
    }

    fn log(&self) {
        tracing::debug!(
            lock_us = self.locked.as_micros() as u64,
            decide_us = (self.decided - self.locked).as_micros() as u64,
            dispatch_us = (self.dispatched - self.decided).as_micros() as u64,
            commit_us = (self.committed - self.dispatched).as_micros() as u64,
            publish_us = (self.began.elapsed() - self.committed).as_micros() as u64,
            "batch applied"
        );
    }
}
