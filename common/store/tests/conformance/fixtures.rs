//! Definitions, runs and worker messages the checks share, and the few steps every check takes
//! (create a run, change it under a batch, read every page or event).

use std::{collections::HashSet, future::Future};

use baton_engine::{
    Effects, EngineConfig, RunState, RunStatus, StepState, abort_run, apply_job_result,
    apply_job_started, start_run, wake_run,
};
use baton_proto::v1::{self, RunEventType};
use baton_store::{
    NewRun, NewWorkflow, Page, PageRequest, Store, StoreError, StoredEvent, StoredWorkflow,
};
use baton_workflow::{CompiledWorkflow, DefinitionFormat, compile, parse_definition};
use serde_json::json;
use uuid::Uuid;

/// The kind every fixture step runs as: a worker's, not a built-in.
pub const KIND: &str = "work";

/// Backoff of `fetch` in [`pipeline`], exactly (no jitter).
pub const RETRY_DELAY_MICROS: i64 = 10_000_000;

/// Deadline of a [`pipeline`] run after it starts.
pub const DEADLINE_MICROS: i64 = 3_600_000_000;

pub fn compiled(yaml: &str) -> CompiledWorkflow {
    let definition =
        parse_definition(yaml, DefinitionFormat::Yaml).expect("fixture definition parses");
    compile(definition, &[KIND.to_owned()]).expect("fixture definition compiles")
}

/// `fetch`, tried up to 3 times 10 s apart, then `report`; a run-wide deadline of an hour.
pub fn pipeline(owner: &str, name: &str, version: u32) -> CompiledWorkflow {
    compiled(&format!(
        "owner: {owner}
name: {name}
version: {version}
execution: {{ concurrency: {{ maxParallel: 2 }}, timeout: 1h }}
steps:
  - id: fetch
    kind: {KIND}
    input: {{ url: https://example.test/data }}
    retry: {{ max_attempts: 3, initial: 10s, max: 10s, jitter: 0 }}
  - id: report
    kind: {KIND}
    needs: [fetch]
"
    ))
}

/// `steps` independent steps `s0`, `s1`, ..., all dispatched when the run starts.
pub fn fan_out(steps: usize) -> CompiledWorkflow {
    let mut yaml = format!(
        "owner: conformance\nname: fan-out\nversion: 1\n\
         execution: {{ concurrency: {{ maxParallel: {steps} }} }}\nsteps:\n"
    );
    for i in 0..steps {
        yaml.push_str(&format!("  - {{ id: s{i}, kind: {KIND} }}\n"));
    }
    compiled(&yaml)
}

/// The tenant fixture workflows are registered in, and fixture runs started in.
pub const TENANT: &str = "t";

/// `wf`, to register in [`TENANT`].
pub fn new_workflow(wf: &CompiledWorkflow) -> NewWorkflow {
    new_workflow_in(TENANT, wf)
}

/// `wf`, to register in `tenant`.
pub fn new_workflow_in(tenant: &str, wf: &CompiledWorkflow) -> NewWorkflow {
    let d = &wf.definition;
    NewWorkflow {
        tenant: tenant.to_owned(),
        owner: d.owner.clone(),
        name: d.name.clone(),
        version: d.version,
        digest: wf.digest(),
        definition: serde_json::to_value(d).expect("a definition serialises"),
    }
}

pub fn new_run(tenant: &str, workflow_ref: &str, created_at: i64) -> NewRun {
    NewRun {
        id: Uuid::new_v4(),
        tenant: tenant.to_owned(),
        workflow_ref: workflow_ref.to_owned(),
        inputs: json!({ "url": "https://example.test/data" }),
        idempotency_key: None,
        created_at,
        trace_context: Default::default(),
    }
}

pub fn keyed(mut run: NewRun, key: &str) -> NewRun {
    run.idempotency_key = Some(key.to_owned());
    run
}

/// Creates one run that must be new.
pub async fn create(store: &dyn Store, run: NewRun) -> RunState {
    let mut created = store.create_runs(vec![run]).await.expect("create_runs");
    assert_eq!(created.len(), 1, "one result per run");
    let (state, fresh) = created
        .pop()
        .expect("one result")
        .expect("the run is created");
    assert!(fresh, "a run without a taken key is new");
    state
}

/// Locks one run, lets `f` change it, commits; returns the run as committed and the effects.
pub async fn change<F>(store: &dyn Store, id: Uuid, f: F) -> (RunState, Effects)
where
    F: FnOnce(&mut RunState, &mut Effects) + Send,
{
    let mut batch = store.lock_runs(&[id]).await.expect("lock_runs");
    let mut fx = Effects::default();
    {
        let runs = batch.runs();
        assert_eq!(runs.len(), 1, "the locked run is loaded");
        f(&mut runs[0], &mut fx);
    }
    let mut committed = batch.commit().await.expect("commit");
    assert_eq!(committed.len(), 1, "commit returns the locked run");
    (committed.pop().expect("one run"), fx)
}

/// The run as a fresh batch loads it (and drops, changing nothing).
pub async fn load(store: &dyn Store, id: Uuid) -> RunState {
    let mut batch = store.lock_runs(&[id]).await.expect("lock_runs");
    let mut runs = batch.runs().to_vec();
    assert_eq!(runs.len(), 1, "the locked run is loaded");
    runs.pop().expect("one run")
}

pub async fn events(store: &dyn Store, id: Uuid) -> Vec<StoredEvent> {
    store
        .list_events(id, 0, 100_000)
        .await
        .expect("list_events")
}

pub fn step<'a>(run: &'a RunState, id: &str) -> &'a StepState {
    run.steps
        .iter()
        .find(|s| s.step_id == id)
        .unwrap_or_else(|| panic!("run has no step `{id}`: {:?}", run.steps))
}

pub fn started(run: Uuid, step: &str, attempt: u32, worker: &str, at: i64) -> v1::JobStarted {
    v1::JobStarted {
        run_id: run.to_string(),
        step_id: step.to_owned(),
        attempt,
        worker_id: worker.to_owned(),
        started_at: Some(baton_proto::timestamp_from_micros(at)),
        // One dispatch per attempt: the lease numbers them alike.
        lease: u64::from(attempt),
        delivery: 1,
        parked: false,
    }
}

/// A successful attempt that started a millisecond before it finished.
pub fn succeeded(
    run: Uuid,
    step: &str,
    attempt: u32,
    worker: &str,
    output: serde_json::Value,
    finished: i64,
) -> v1::JobResult {
    v1::JobResult {
        run_id: run.to_string(),
        step_id: step.to_owned(),
        attempt,
        outcome: v1::JobOutcome::Succeeded as i32,
        output_json: output.to_string(),
        worker_id: worker.to_owned(),
        started_at: Some(baton_proto::timestamp_from_micros(finished - 1_000)),
        finished_at: Some(baton_proto::timestamp_from_micros(finished)),
        usage: Some(v1::ResourceUsage {
            queue_time_ms: 3,
            execution_time_ms: 1,
            total_duration_ms: 4,
            memory_start_mb: 10.5,
            memory_peak_mb: 12.25,
            memory_end_mb: 11.0,
            cpu_percent: 42.5,
            thread_count: 7,
        }),
        lease: u64::from(attempt),
        ..Default::default()
    }
}

/// A failed attempt that may be retried.
pub fn failed(
    run: Uuid,
    step: &str,
    attempt: u32,
    worker: &str,
    error: &str,
    finished: i64,
) -> v1::JobResult {
    v1::JobResult {
        run_id: run.to_string(),
        step_id: step.to_owned(),
        attempt,
        outcome: v1::JobOutcome::Failed as i32,
        error: error.to_owned(),
        retryable: true,
        worker_id: worker.to_owned(),
        started_at: Some(baton_proto::timestamp_from_micros(finished - 1_000)),
        finished_at: Some(baton_proto::timestamp_from_micros(finished)),
        lease: u64::from(attempt),
        ..Default::default()
    }
}

/// One message the runner applies to a run, as the runner applies it.
#[derive(Clone, Debug)]
pub enum Move {
    Start {
        now: i64,
    },
    Started(v1::JobStarted),
    Result {
        result: Box<v1::JobResult>,
        now: i64,
    },
    Wake {
        now: i64,
    },
    Abort {
        status: RunStatus,
        now: i64,
    },
}

impl Move {
    pub fn result(result: v1::JobResult, now: i64) -> Self {
        Self::Result {
            result: Box::new(result),
            now,
        }
    }

    pub fn apply(&self, run: &mut RunState, wf: &CompiledWorkflow, fx: &mut Effects) {
        match self {
            Self::Start { now } => start_run(run, wf, &EngineConfig::default(), *now, fx),
            Self::Started(m) => {
                let now = m
                    .started_at
                    .as_ref()
                    .map_or(0, baton_proto::timestamp_to_micros);
                apply_job_started(run, &EngineConfig::default(), m, now, fx);
            }
            Self::Result { result, now } => {
                apply_job_result(run, wf, &EngineConfig::default(), result, *now, fx)
            }
            Self::Wake { now } => wake_run(run, wf, &EngineConfig::default(), *now, fx),
            Self::Abort { status, now } => {
                abort_run(run, *status, "stopped by its owner", *now, fx);
            }
        }
    }
}

/// A [`pipeline`] run from start to completion, from `t0` (its creation): `fetch` fails once
/// on `w1` and succeeds on its retry on `w2`, then `report` succeeds on `w1`.
pub fn pipeline_to_completion(run: Uuid, t0: i64) -> Vec<Move> {
    let retry_due = t0 + 3_000 + RETRY_DELAY_MICROS;
    vec![
        Move::Start { now: t0 + 1_000 },
        Move::Started(started(run, "fetch", 1, "w1", t0 + 2_000)),
        Move::result(
            failed(run, "fetch", 1, "w1", "connection reset", t0 + 3_000),
            t0 + 3_000,
        ),
        Move::Wake { now: retry_due },
        Move::result(
            succeeded(
                run,
                "fetch",
                2,
                "w2",
                json!({ "rows": 3 }),
                retry_due + 5_000,
            ),
            retry_due + 5_000,
        ),
        Move::result(
            succeeded(run, "report", 1, "w1", json!("sent"), retry_due + 9_000),
            retry_due + 9_000,
        ),
    ]
}

/// What [`pipeline_to_completion`] records, in order: (type, step, attempt).
pub fn pipeline_events() -> Vec<(RunEventType, Option<&'static str>, u32)> {
    use RunEventType as E;
    vec![
        (E::RunQueued, None, 0),
        (E::RunStarted, None, 0),
        (E::StepQueued, Some("fetch"), 1),
        (E::StepStarted, Some("fetch"), 1),
        (E::StepRetrying, Some("fetch"), 1),
        (E::StepQueued, Some("fetch"), 2),
        (E::StepStarted, Some("fetch"), 2),
        (E::StepCompleted, Some("fetch"), 2),
        (E::StepQueued, Some("report"), 1),
        (E::StepStarted, Some("report"), 1),
        (E::StepCompleted, Some("report"), 1),
        (E::RunCompleted, None, 0),
    ]
}

/// Runs every future on its own task at once; their outputs in order. A panic in one is a
/// panic here.
pub async fn concurrently<T, F>(futures: impl IntoIterator<Item = F>) -> Vec<T>
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    let tasks: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        match task.await {
            Ok(v) => out.push(v),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("task failed: {e}"),
        }
    }
    out
}

/// Reads every page of `size`, checking the paging contract on the way: full pages carry a
/// token, the last page none, and no token comes back twice.
pub async fn all_pages<T, F, Fut>(size: u32, mut page: F) -> Vec<T>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: Future<Output = Result<Page<T>, StoreError>>,
{
    let mut items = Vec::new();
    let mut token = String::new();
    let mut seen = HashSet::new();
    loop {
        let p = page(PageRequest {
            size,
            token: token.clone(),
        })
        .await
        .expect("a page");
        assert!(
            p.items.len() <= size as usize,
            "a page of {} items for size {size}",
            p.items.len()
        );
        items.extend(p.items);
        if p.next_token.is_empty() {
            return items;
        }
        assert!(
            seen.insert(p.next_token.clone()),
            "page token {:?} came back twice",
            p.next_token
        );
        assert_eq!(
            items.len() % size as usize,
            0,
            "a page with a next token is full"
        );
        token = p.next_token;
    }
}

pub fn refs(workflows: &[StoredWorkflow]) -> Vec<String> {
    workflows.iter().map(StoredWorkflow::workflow_ref).collect()
}

/// What a store keeps of a run: everything but the change tracking.
#[derive(Debug, PartialEq)]
pub struct Persisted {
    pub id: Uuid,
    pub tenant: String,
    pub workflow_ref: String,
    pub status: RunStatus,
    pub inputs: serde_json::Value,
    pub output: Option<serde_json::Value>,
    pub error: Option<String>,
    pub idempotency_key: Option<String>,
    pub max_parallel: u32,
    pub deadline: Option<i64>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub last_sequence: i64,
    pub trace_context: std::collections::HashMap<String, String>,
    pub steps: Vec<StepState>,
}

impl From<&RunState> for Persisted {
    fn from(r: &RunState) -> Self {
        Self {
            id: r.id,
            tenant: r.tenant.clone(),
            workflow_ref: r.workflow_ref.clone(),
            status: r.status,
            inputs: r.inputs.clone(),
            output: r.output.clone(),
            error: r.error.clone(),
            idempotency_key: r.idempotency_key.clone(),
            max_parallel: r.max_parallel,
            deadline: r.deadline,
            created_at: r.created_at,
            started_at: r.started_at,
            ended_at: r.ended_at,
            last_sequence: r.last_sequence,
            trace_context: r.trace_context.clone(),
            steps: r
                .steps
                .iter()
                .map(|s| StepState {
                    dirty: false,
                    ..s.clone()
                })
                .collect(),
        }
    }
}
