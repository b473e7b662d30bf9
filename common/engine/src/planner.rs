//! Planning: given a run's state and a message (start, job started, job result, wake, abort),
//! change the state and say what must happen outside it: jobs to enqueue, timers to set, workers
//! to tell. Every transition is guarded, so a message applied twice changes nothing.

use baton_proto::v1::{self, RunEventType as Ev};
use baton_workflow::{
    CompiledWorkflow, RetryPolicy, SECRET_KINDS, TemplateContext, eval_condition, render_input,
    render_input_with_secrets,
};
use serde_json::Value as Json;

use crate::{
    AttemptRecord, RunState, RunStatus, StepState, StepStatus,
    storable::{find_nul, without_nul},
};

/// Runner-wide settings the engine needs.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// `maxParallel` for definitions that do not set it.
    pub default_max_parallel: u32,
    /// How long a dispatched step's lease lives in the store without news of its job
    /// (microseconds); once it runs out, the reconciler looks for the job.
    pub lease_ttl: i64,
    /// How large a step's input and output may be, and what a template may do.
    pub limits: crate::Limits,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            default_max_parallel: 1,
            lease_ttl: DEFAULT_LEASE_TTL,
            limits: crate::Limits::default(),
        }
    }
}

/// [`EngineConfig::lease_ttl`] unless configured: 30 s.
pub const DEFAULT_LEASE_TTL: i64 = 30_000_000;

/// A wake-up the runner must schedule for a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Timer {
    pub run_id: uuid::Uuid,
    pub due_at: i64,
    pub reason: v1::WakeReason,
}

/// What the engine asks the outside world to do after its changes are stored.
#[derive(Debug, Default)]
pub struct Effects {
    pub jobs: Vec<v1::Job>,
    pub timers: Vec<Timer>,
    /// Runs whose workers must stop their jobs.
    pub cancelled_runs: Vec<(uuid::Uuid, String)>,
    /// Jobs that failed past their last attempt.
    pub exhausted: Vec<v1::JobResult>,
    /// Reports that changed nothing because their lease was stale.
    pub fenced: Fenced,
    /// Steps dispatched again because their job was lost.
    pub redispatched: u64,
}

/// Reports fenced off by their lease, by what they reported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fenced {
    pub started: u64,
    pub results: u64,
}

/// Whether a report about a step's job may change the step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Holder {
    /// From the step's current dispatch, by its latest delivery or a newer one.
    Current,
    /// From an older dispatch, or from a delivery that a newer one took over from.
    Stale,
}

/// Judges a report's `lease` and `delivery` against the step's current lease. Delivery 0 is a
/// report that does not know its delivery; it is judged by the lease alone.
fn holder(step: &StepState, lease: u64, delivery: u32) -> Holder {
    if lease != step.lease || (delivery != 0 && delivery < step.lease_holder) {
        Holder::Stale
    } else {
        Holder::Current
    }
}

/// Begins a queued run: creates its steps and dispatches the ready ones.
pub fn start_run(
    run: &mut RunState,
    wf: &CompiledWorkflow,
    cfg: &EngineConfig,
    now: i64,
    fx: &mut Effects,
) {
    if run.status != RunStatus::Queued {
        return;
    }
    run.status = RunStatus::Running;
    run.started_at = Some(now);
    run.max_parallel = wf
        .definition
        .execution
        .concurrency
        .as_ref()
        .and_then(|c| c.max_parallel)
        .unwrap_or(cfg.default_max_parallel)
        .max(1);
    run.dirty = true;
    run.steps = wf
        .steps()
        .iter()
        .map(|s| StepState::new(s.id.clone(), s.kind.clone()))
        .collect();
    run.steps_created = true;
    if let Some(timeout) = wf.definition.execution.timeout {
        let deadline = now + i64::try_from(timeout.0.as_micros()).unwrap_or(i64::MAX / 2);
        run.deadline = Some(deadline);
        fx.timers.push(Timer {
            run_id: run.id,
            due_at: deadline,
            reason: v1::WakeReason::RunDeadline,
        });
    }
    run.push_event(Ev::RunStarted, None, now, None, None);
    advance(run, wf, cfg, now, fx);
}

/// A worker began an attempt, or parked it. A later delivery of the same job (reclaimed from a
/// worker that stopped answering) takes the attempt over, so the earlier worker's reports are
/// fenced off from then on.
pub fn apply_job_started(
    run: &mut RunState,
    cfg: &EngineConfig,
    msg: &v1::JobStarted,
    now: i64,
    fx: &mut Effects,
) {
    let Some(i) = find_attempt(run, &msg.step_id, msg.attempt) else {
        return;
    };
    let step = &run.steps[i];
    if !step.status.is_in_flight() {
        return;
    }
    if holder(step, msg.lease, msg.delivery) == Holder::Stale {
        fx.fenced.started += 1;
        return;
    }
    let started = msg
        .started_at
        .as_ref()
        .map(baton_proto::timestamp_to_micros)
        .unwrap_or(now);
    let ttl = if msg.parked { 0 } else { cfg.lease_ttl };
    if step.status == StepStatus::Queued {
        mark_running(run, i, started, &msg.worker_id, msg.delivery, ttl);
        return;
    }
    if msg.delivery > step.lease_holder || (msg.parked && step.lease_ttl != 0) {
        let previous = step.worker_id.clone().unwrap_or_default();
        let worker = without_nul(&msg.worker_id).into_owned();
        let step = &mut run.steps[i];
        step.lease_holder = step.lease_holder.max(msg.delivery);
        step.lease_ttl = ttl;
        step.dirty = true;
        let message = if msg.parked {
            "parked; its result arrives later".to_owned()
        } else {
            step.worker_id = (!worker.is_empty()).then(|| worker.clone());
            format!("taken over by worker `{worker}` from `{previous}`, which stopped answering")
        };
        run.push_event(Ev::StepStarted, Some(i), now, Some(message), None);
    }
}

fn mark_running(
    run: &mut RunState,
    i: usize,
    started: i64,
    worker_id: &str,
    delivery: u32,
    lease_ttl: i64,
) {
    let step = &mut run.steps[i];
    step.status = StepStatus::Running;
    step.started_at = Some(started);
    step.worker_id = (!worker_id.is_empty()).then(|| without_nul(worker_id).into_owned());
    step.lease_holder = step.lease_holder.max(delivery);
    step.lease_ttl = lease_ttl;
    step.dirty = true;
    run.push_event(Ev::StepStarted, Some(i), started, None, None);
}

/// The reconciler found the step's job gone: dispatch it again under a new lease, on the same
/// attempt (losing a job is not the step's failure). Applies only while the step is still in
/// flight on that attempt and lease, so a late or repeated command changes nothing.
pub fn redispatch_step(
    run: &mut RunState,
    wf: &CompiledWorkflow,
    cfg: &EngineConfig,
    msg: &v1::RedispatchStepCommand,
    now: i64,
    fx: &mut Effects,
) {
    let Some(i) = find_attempt(run, &msg.step_id, msg.attempt) else {
        return;
    };
    let step = &run.steps[i];
    if !step.status.is_in_flight() || step.lease != msg.lease {
        return;
    }
    let ctx = template_context(run, wf);
    let def = &wf.steps()[i];
    // It rendered when first dispatched, and the steps it reads have not changed since.
    let (input, nonce) = match render_step_input(def, &ctx, cfg) {
        Ok(rendered) => rendered,
        Err(e) => {
            fail_without_attempt(run, i, e.to_string(), now);
            advance(run, wf, cfg, now, fx);
            return;
        }
    };
    let step = &mut run.steps[i];
    step.status = StepStatus::Queued;
    step.started_at = None;
    step.worker_id = None;
    step.dirty = true;
    fx.redispatched += 1;
    let job = new_job(run, wf, cfg, i, &input, nonce, now);
    fx.jobs.push(job);
    run.push_event(
        Ev::StepQueued,
        Some(i),
        now,
        Some("dispatched again: its job was lost".to_owned()),
        None,
    );
}

fn find_attempt(run: &RunState, step_id: &str, attempt: u32) -> Option<usize> {
    if run.status != RunStatus::Running {
        return None;
    }
    run.steps
        .iter()
        .position(|s| s.step_id == step_id && s.attempt == attempt)
}

/// An attempt ended. A result for an attempt that is not the step's current one, or for a step
/// that is not queued or running, is a duplicate and changes nothing.
pub fn apply_job_result(
    run: &mut RunState,
    wf: &CompiledWorkflow,
    cfg: &EngineConfig,
    result: &v1::JobResult,
    now: i64,
    fx: &mut Effects,
) {
    let Some(i) = find_attempt(run, &result.step_id, result.attempt) else {
        return;
    };
    if !run.steps[i].status.is_in_flight() {
        return;
    }
    if holder(&run.steps[i], result.lease, result.delivery) == Holder::Stale {
        fx.fenced.results += 1;
        return;
    }
    let started = result
        .started_at
        .as_ref()
        .map(baton_proto::timestamp_to_micros);
    let finished = result
        .finished_at
        .as_ref()
        .map(baton_proto::timestamp_to_micros)
        .unwrap_or(now);
    if run.steps[i].status == StepStatus::Queued {
        mark_running(
            run,
            i,
            started.unwrap_or(finished),
            &result.worker_id,
            result.delivery,
            0,
        );
    }
    let worker_id =
        (!result.worker_id.is_empty()).then(|| without_nul(&result.worker_id).into_owned());
    let def = &wf.steps()[i];
    let step = &mut run.steps[i];
    step.dirty = true;
    if worker_id.is_some() {
        // The worker that finished it, which is not the one that started it when a job was
        // reclaimed from a dead worker.
        step.worker_id.clone_from(&worker_id);
    }
    step.usage.clone_from(&result.usage);
    step.ended_at = Some(finished);
    let attempt_status;
    match ending(result, &cfg.limits) {
        Ending::Output(output) => {
            step.status = StepStatus::Completed;
            step.error = None;
            step.output = Some(output.clone());
            attempt_status = StepStatus::Completed;
            run.push_event(Ev::StepCompleted, Some(i), finished, None, Some(output));
        }
        Ending::Failure { error, retryable } => {
            step.error = Some(error.clone());
            attempt_status = StepStatus::Failed;
            let policy = def.retry.clone().unwrap_or(RetryPolicy {
                max_attempts: 1,
                ..RetryPolicy::default()
            });
            if retryable && step.attempt < policy.max_attempts {
                // The longer of the backoff and what the callee asked for (bounded, so an
                // answer cannot park a step for good).
                let asked =
                    std::time::Duration::from_millis(result.retry_after_ms).min(MAX_RETRY_AFTER);
                let delay = policy
                    .backoff(step.attempt + 1, rand::random::<f64>())
                    .max(asked);
                let due = now + i64::try_from(delay.as_micros()).unwrap_or(i64::MAX / 2);
                step.status = StepStatus::Retrying;
                step.next_attempt_at = Some(due);
                fx.timers.push(Timer {
                    run_id: run.id,
                    due_at: due,
                    reason: v1::WakeReason::RetryDue,
                });
                let message = format!(
                    "{error}; attempt {} of {} in {}ms",
                    step.attempt + 1,
                    policy.max_attempts,
                    delay.as_millis()
                );
                run.push_event(Ev::StepRetrying, Some(i), finished, Some(message), None);
            } else {
                step.status = StepStatus::Failed;
                fx.exhausted.push(v1::JobResult {
                    error: error.clone(),
                    ..result.clone()
                });
                run.push_event(Ev::StepFailed, Some(i), finished, Some(error), None);
            }
        }
    }
    // The step's row keeps its current attempt; an attempt is written to the history only
    // when a retry replaces it. Readers see both through the store.
    let step = &run.steps[i];
    if step.status == StepStatus::Retrying {
        run.new_attempts.push(AttemptRecord {
            step_id: step.step_id.clone(),
            attempt: step.attempt,
            status: attempt_status,
            error: step.error.clone(),
            worker_id,
            queued_at: step.queued_at,
            started_at: step.started_at,
            ended_at: finished,
            usage: step.usage,
        });
    }
    advance(run, wf, cfg, now, fx);
}

/// How an attempt ended, in the form the store can hold.
/// The longest a result's `retry_after_ms` may hold back the next attempt.
const MAX_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(3_600);

enum Ending {
    Output(Json),
    Failure { error: String, retryable: bool },
}

/// Reads a result's output or error. An output the store cannot hold or that is over the output
/// limit fails the attempt for good, as running it again would only produce it again; an error
/// loses its NULs instead, and is cut to the output limit.
fn ending(result: &v1::JobResult, limits: &crate::Limits) -> Ending {
    let outcome = v1::JobOutcome::try_from(result.outcome).unwrap_or(v1::JobOutcome::Failed);
    if outcome == v1::JobOutcome::Succeeded {
        // Measured before it is parsed, so a huge output costs no copy of itself.
        if let Err(too_large) = limits.check_output(&result.output_json) {
            return Ending::Failure {
                error: too_large,
                retryable: false,
            };
        }
        let output = match result.output_json.as_str() {
            "" => Json::Null,
            text => serde_json::from_str(text).unwrap_or_else(|_| Json::String(text.to_owned())),
        };
        return match find_nul(&output, "$") {
            None => Ending::Output(output),
            Some(at) => Ending::Failure {
                error: format!("step output cannot be stored: {at}"),
                retryable: false,
            },
        };
    }
    let error = match (outcome, result.error.as_str()) {
        (v1::JobOutcome::TimedOut, "") => "attempt timed out".to_owned(),
        (_, "") => "attempt failed".to_owned(),
        (_, e) => without_nul(&limits.bound_error(e)).into_owned(),
    };
    Ending::Failure {
        error,
        retryable: result.retryable,
    }
}

/// A timer fired: a retry came due, or the run's deadline passed.
pub fn wake_run(
    run: &mut RunState,
    wf: &CompiledWorkflow,
    cfg: &EngineConfig,
    now: i64,
    fx: &mut Effects,
) {
    if run.status != RunStatus::Running {
        return;
    }
    if run.deadline.is_some_and(|d| d <= now) {
        abort_run(
            run,
            RunStatus::TimedOut,
            "run exceeded its timeout",
            now,
            fx,
        );
        return;
    }
    advance(run, wf, cfg, now, fx);
}

/// Ends an active run as `cancelled`, `timed_out` or `failed`: every unfinished step is cancelled.
/// Returns false when the run had already ended.
pub fn abort_run(
    run: &mut RunState,
    status: RunStatus,
    reason: &str,
    now: i64,
    fx: &mut Effects,
) -> bool {
    if run.status.is_terminal() {
        return false;
    }
    // A cancel's reason comes from whoever asked.
    let reason = without_nul(reason);
    let reason = reason.as_ref();
    for i in 0..run.steps.len() {
        let step = &mut run.steps[i];
        if step.status.is_terminal() {
            continue;
        }
        step.status = StepStatus::Cancelled;
        step.ended_at = Some(now);
        step.error = Some(reason.to_owned());
        step.dirty = true;
        run.push_event(
            Ev::StepCancelled,
            Some(i),
            now,
            Some(reason.to_owned()),
            None,
        );
    }
    let event = match status {
        RunStatus::TimedOut => Ev::RunTimedOut,
        RunStatus::Failed => Ev::RunFailed,
        _ => Ev::RunCancelled,
    };
    finish(run, status, Some(reason.to_owned()), now);
    run.push_event(event, None, now, Some(reason.to_owned()), None);
    fx.cancelled_runs.push((run.id, reason.to_owned()));
    true
}

fn finish(run: &mut RunState, status: RunStatus, error: Option<String>, now: i64) {
    run.status = status;
    run.error = error;
    run.ended_at = Some(now);
    run.dirty = true;
}

/// Settles what can be settled: skips, condition checks, dispatch up to `maxParallel`, and the
/// run's end. A step that fails at dispatch (its input cannot render) settles its dependents in
/// turn, so passes repeat until none does; each repeat fails a step for good, so they end.
fn advance(
    run: &mut RunState,
    wf: &CompiledWorkflow,
    cfg: &EngineConfig,
    now: i64,
    fx: &mut Effects,
) {
    while settle_and_dispatch(run, wf, cfg, now, fx) {}
    if run.steps.iter().all(|s| s.status.is_terminal()) {
        complete(run, wf, now);
    }
}

/// One pass of [`advance`]; true when a step failed at dispatch.
fn settle_and_dispatch(
    run: &mut RunState,
    wf: &CompiledWorkflow,
    cfg: &EngineConfig,
    now: i64,
    fx: &mut Effects,
) -> bool {
    let mut ctx: Option<TemplateContext> = None;
    // Skips cascade, so repeat until nothing more settles. Each pass settles at least one step
    // or stops, so this ends within `steps` passes.
    loop {
        let mut settled = false;
        for i in 0..run.steps.len() {
            if run.steps[i].status != StepStatus::Pending {
                continue;
            }
            let Some(blocker) = blocked_by(run, wf, i) else {
                continue;
            };
            if let Some(reason) = blocker {
                skip(run, i, reason, now);
                settled = true;
            } else if let Some(when) = &wf.steps()[i].when {
                let ctx = ctx.get_or_insert_with(|| template_context(run, wf));
                match eval_condition(when, ctx, &cfg.limits.template) {
                    Ok(true) => {}
                    Ok(false) => {
                        skip(run, i, format!("condition `{when}` is false"), now);
                        settled = true;
                    }
                    Err(e) => {
                        fail_without_attempt(run, i, format!("{e}"), now);
                        settled = true;
                    }
                }
            }
        }
        if !settled {
            break;
        }
        // Outputs may have changed the context only through skips and failures, which templates
        // see as status; rebuild it lazily.
        ctx = None;
    }

    let in_flight = run.steps.iter().filter(|s| s.status.is_in_flight()).count() as u32;
    let mut slots = run.max_parallel.saturating_sub(in_flight);
    let mut failed = false;
    let mut i = 0;
    while slots > 0 && i < run.steps.len() {
        let ready = match run.steps[i].status {
            StepStatus::Pending => matches!(blocked_by(run, wf, i), Some(None)),
            StepStatus::Retrying => run.steps[i].next_attempt_at.is_none_or(|t| t <= now),
            _ => false,
        };
        if ready {
            let ctx = ctx.get_or_insert_with(|| template_context(run, wf));
            if dispatch(run, wf, cfg, i, ctx, now, fx) {
                slots -= 1;
            } else {
                failed = true;
            }
        }
        i += 1;
    }
    failed
}

/// `None` while some need is unfinished; `Some(Some(reason))` when a need ended so that this step
/// cannot run; `Some(None)` when it may run.
fn blocked_by(run: &RunState, wf: &CompiledWorkflow, i: usize) -> Option<Option<String>> {
    let mut reason = None;
    for &j in &wf.needs[i] {
        let need = &run.steps[j];
        if !need.status.is_terminal() {
            return None;
        }
        let tolerated = need.status == StepStatus::Failed && wf.steps()[j].continue_on_failure;
        if reason.is_none() && need.status != StepStatus::Completed && !tolerated {
            reason = Some(format!("needs `{}`, which {}", need.step_id, need.status));
        }
    }
    Some(reason)
}

fn skip(run: &mut RunState, i: usize, reason: String, now: i64) {
    let step = &mut run.steps[i];
    step.status = StepStatus::Skipped;
    step.ended_at = Some(now);
    step.error = Some(reason.clone());
    step.dirty = true;
    run.push_event(Ev::StepSkipped, Some(i), now, Some(reason), None);
}

/// A step that cannot start (a condition or input fails to render) fails without using a job.
fn fail_without_attempt(run: &mut RunState, i: usize, error: String, now: i64) {
    // Render errors may quote the values they could not use.
    let error = without_nul(&error).into_owned();
    let step = &mut run.steps[i];
    step.status = StepStatus::Failed;
    step.ended_at = Some(now);
    step.error = Some(error.clone());
    step.dirty = true;
    run.push_event(Ev::StepFailed, Some(i), now, Some(error), None);
}

fn dispatch(
    run: &mut RunState,
    wf: &CompiledWorkflow,
    cfg: &EngineConfig,
    i: usize,
    ctx: &TemplateContext,
    now: i64,
    fx: &mut Effects,
) -> bool {
    let def = &wf.steps()[i];
    let (input, nonce) = match render_step_input(def, ctx, cfg) {
        Ok(rendered) => rendered,
        Err(e) => {
            fail_without_attempt(run, i, e.to_string(), now);
            return false;
        }
    };
    if let Err(too_large) = cfg.limits.check_input(&input) {
        fail_without_attempt(run, i, too_large, now);
        return false;
    }
    if let Some(at) = find_nul(&input, "input") {
        fail_without_attempt(run, i, format!("step input cannot be used: {at}"), now);
        return false;
    }
    let step = &mut run.steps[i];
    step.status = StepStatus::Queued;
    step.attempt += 1;
    step.queued_at = Some(now);
    step.started_at = None;
    step.ended_at = None;
    step.next_attempt_at = None;
    step.usage = None;
    step.dirty = true;
    let job = new_job(run, wf, cfg, i, &input, nonce, now);
    fx.jobs.push(job);
    run.push_event(Ev::StepQueued, Some(i), now, None, None);
    true
}

/// A step's rendered input, and for kinds whose worker resolves secrets, the fresh nonce its
/// secret placeholders carry.
fn render_step_input(
    def: &baton_workflow::StepDefinition,
    ctx: &TemplateContext,
    cfg: &EngineConfig,
) -> Result<(Json, String), baton_workflow::TemplateError> {
    if SECRET_KINDS.contains(&def.kind.as_str()) {
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let input =
            render_input_with_secrets(&def.input, ctx, "input", &cfg.limits.template, &nonce)?;
        return Ok((input, nonce));
    }
    let input = render_input(&def.input, ctx, "input", &cfg.limits.template)?;
    Ok((input, String::new()))
}

/// The job for step `i`'s current attempt, under a new lease that the step now holds.
fn new_job(
    run: &mut RunState,
    wf: &CompiledWorkflow,
    cfg: &EngineConfig,
    i: usize,
    input: &Json,
    secret_nonce: String,
    now: i64,
) -> v1::Job {
    let def = &wf.steps()[i];
    let step = &mut run.steps[i];
    step.lease += 1;
    step.lease_holder = 0;
    step.lease_ttl = cfg.lease_ttl;
    v1::Job {
        run_id: run.id.to_string(),
        step_id: step.step_id.clone(),
        kind: def.kind.clone(),
        attempt: step.attempt,
        input_json: if input.is_null() {
            String::new()
        } else {
            input.to_string()
        },
        timeout_ms: def.timeout.map(|t| t.as_millis()).unwrap_or(0),
        enqueued_at: Some(baton_proto::timestamp_from_micros(now)),
        run_deadline: run.deadline.map(baton_proto::timestamp_from_micros),
        trace_context: Default::default(),
        workflow_ref: run.workflow_ref.clone(),
        tenant: run.tenant.clone(),
        lease: step.lease,
        secret_nonce,
    }
}

fn template_context(run: &RunState, _wf: &CompiledWorkflow) -> TemplateContext {
    let mut steps = serde_json::Map::new();
    for step in &run.steps {
        if step.status.is_terminal() {
            let mut entry = serde_json::Map::new();
            entry.insert("status".into(), Json::String(step.status.as_str().into()));
            entry.insert("output".into(), step.output.clone().unwrap_or(Json::Null));
            if let Some(e) = &step.error {
                entry.insert("error".into(), Json::String(e.clone()));
            }
            steps.insert(step.step_id.clone(), Json::Object(entry));
        }
    }
    TemplateContext {
        inputs: run.inputs.clone(),
        steps,
    }
}

fn complete(run: &mut RunState, wf: &CompiledWorkflow, now: i64) {
    let failed = run
        .steps
        .iter()
        .enumerate()
        .find(|(i, s)| s.status == StepStatus::Failed && !wf.steps()[*i].continue_on_failure);
    let mut output = serde_json::Map::new();
    for (i, step) in run.steps.iter().enumerate() {
        if wf.dependents[i].is_empty() && step.status == StepStatus::Completed {
            output.insert(
                step.step_id.clone(),
                step.output.clone().unwrap_or(Json::Null),
            );
        }
    }
    run.output = Some(Json::Object(output));
    match failed {
        Some((_, step)) => {
            let error = format!(
                "step `{}` failed: {}",
                step.step_id,
                step.error.as_deref().unwrap_or("failed")
            );
            finish(run, RunStatus::Failed, Some(error.clone()), now);
            run.push_event(Ev::RunFailed, None, now, Some(error), None);
        }
        None => {
            finish(run, RunStatus::Completed, None, now);
            run.push_event(Ev::RunCompleted, None, now, None, None);
        }
    }
}

#[cfg(test)]
mod limits_tests;
#[cfg(test)]
mod tests;
