//! Runs driven through the store as the runner drives them (lock, change with the engine,
//! commit, publish), so the checks get real events without a runner.

use std::{future::Future, sync::Arc, time::Duration};

use baton_engine::{
    Effects, EngineConfig, RunState, RunStatus, abort_run, apply_job_result, apply_job_started,
    now_micros, start_run,
};
use baton_events::{EventsConfig, EventsError, RunEvents};
use baton_proto::v1;
use baton_queue::{BatchOutcome, Queue};
use baton_store::{NewRun, NewWorkflow, Store};
use baton_workflow::{CompiledWorkflow, DefinitionFormat, compile, parse_definition};
use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The kind every step runs as: a worker's, so nothing but the checks moves it.
const KIND: &str = "work";

/// How long a check waits for something that should happen at once.
pub const SOON: Duration = Duration::from_secs(20);

/// A store and a queue on one fresh backend, as a process sees them.
#[derive(Clone)]
pub struct Backend {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
}

impl Backend {
    /// Event streams over this backend; stopped by cancelling the returned token.
    pub fn events(&self, config: EventsConfig) -> (RunEvents, CancellationToken) {
        let shutdown = CancellationToken::new();
        let events = RunEvents::start_with(
            self.store.clone(),
            self.queue.clone(),
            shutdown.clone(),
            config,
        );
        (events, shutdown)
    }

    /// Registers `steps` independent steps `s0`, `s1`, ... under `name`.
    pub async fn fan_out(&self, name: &str, steps: usize) -> Arc<CompiledWorkflow> {
        let mut yaml = format!(
            "owner: events\nname: {name}\nversion: 1\n\
             execution: {{ concurrency: {{ maxParallel: {steps} }} }}\nsteps:\n"
        );
        for i in 0..steps {
            yaml.push_str(&format!("  - {{ id: s{i}, kind: {KIND} }}\n"));
        }
        let definition =
            parse_definition(&yaml, DefinitionFormat::Yaml).expect("the definition parses");
        let wf = compile(definition, &[KIND.to_owned()]).expect("the definition compiles");
        let d = &wf.definition;
        self.store
            .put_workflow(NewWorkflow {
                tenant: "default".to_owned(),
                owner: d.owner.clone(),
                name: d.name.clone(),
                version: d.version,
                digest: wf.digest(),
                definition: serde_json::to_value(d).expect("a definition serialises"),
            })
            .await
            .expect("put_workflow");
        Arc::new(wf)
    }

    /// Creates a queued run of `wf` in `tenant` and publishes its first event.
    pub async fn create_run(&self, wf: &CompiledWorkflow, tenant: &str) -> Uuid {
        let d = &wf.definition;
        let id = Uuid::new_v4();
        let created = self
            .store
            .create_runs(vec![NewRun {
                id,
                tenant: tenant.to_owned(),
                workflow_ref: format!("{}/{}@{}", d.owner, d.name, d.version),
                inputs: serde_json::json!({}),
                idempotency_key: None,
                created_at: now_micros(),
                trace_context: Default::default(),
            }])
            .await
            .expect("create_runs");
        let (run, fresh) = created
            .into_iter()
            .next()
            .expect("one result")
            .expect("the run is created");
        assert!(fresh, "a run without a key is new");
        let first = self
            .store
            .list_events(id, 0, 10)
            .await
            .expect("list_events");
        self.publish(
            first
                .iter()
                .map(|e| run.event_to_proto(&e.record))
                .collect(),
        )
        .await;
        id
    }

    /// Locks the run, lets `f` change it, commits, and publishes the new events when `publish`;
    /// returns them.
    pub async fn change<F>(&self, id: Uuid, publish: bool, f: F) -> Vec<v1::RunEvent>
    where
        F: FnOnce(&mut RunState, &mut Effects) + Send,
    {
        let mut batch = self.store.lock_runs(&[id]).await.expect("lock_runs");
        let mut fx = Effects::default();
        {
            let runs = batch.runs();
            assert_eq!(runs.len(), 1, "the run is loaded");
            f(&mut runs[0], &mut fx);
        }
        let committed = batch.commit().await.expect("commit");
        let run = &committed[0];
        let events: Vec<_> = run
            .new_events
            .iter()
            .map(|e| run.event_to_proto(e))
            .collect();
        assert!(!events.is_empty(), "the change records events");
        if publish {
            self.publish(events.clone()).await;
        }
        events
    }

    pub async fn publish(&self, events: Vec<v1::RunEvent>) {
        self.queue
            .complete_batch(BatchOutcome {
                events,
                ..BatchOutcome::default()
            })
            .await
            .expect("complete_batch");
    }

    /// Starts the run: `RunStarted` and a `StepQueued` per step.
    pub async fn start(&self, id: Uuid, wf: &CompiledWorkflow) -> Vec<v1::RunEvent> {
        self.change(id, true, |r, fx| {
            start_run(r, wf, &EngineConfig::default(), now_micros(), fx)
        })
        .await
    }

    /// Step `step`'s first attempt starts, published.
    pub async fn step_started(&self, id: Uuid, step: &str) -> Vec<v1::RunEvent> {
        let msg = v1::JobStarted {
            run_id: id.to_string(),
            step_id: step.to_owned(),
            attempt: 1,
            worker_id: "w1".to_owned(),
            started_at: Some(baton_proto::timestamp_from_micros(now_micros())),
            lease: 1,
            delivery: 1,
            parked: false,
        };
        self.change(id, true, |r, fx| {
            apply_job_started(r, &EngineConfig::default(), &msg, now_micros(), fx)
        })
        .await
    }

    /// Step `step`'s first attempt succeeds, published; the last one also ends the run.
    pub async fn step_succeeded(
        &self,
        id: Uuid,
        wf: &CompiledWorkflow,
        step: &str,
    ) -> Vec<v1::RunEvent> {
        let now = now_micros();
        let result = v1::JobResult {
            run_id: id.to_string(),
            step_id: step.to_owned(),
            attempt: 1,
            outcome: v1::JobOutcome::Succeeded as i32,
            output_json: serde_json::json!({ "step": step }).to_string(),
            worker_id: "w1".to_owned(),
            started_at: Some(baton_proto::timestamp_from_micros(now - 1_000)),
            finished_at: Some(baton_proto::timestamp_from_micros(now)),
            lease: 1,
            ..Default::default()
        };
        self.change(id, true, |r, fx| {
            apply_job_result(r, wf, &EngineConfig::default(), &result, now, fx)
        })
        .await
    }

    /// Cancels the run; publishes its end only when `publish`.
    pub async fn cancel(&self, id: Uuid, publish: bool) -> Vec<v1::RunEvent> {
        self.change(id, publish, |r, fx| {
            abort_run(
                r,
                RunStatus::Cancelled,
                "cancelled by the check",
                now_micros(),
                fx,
            );
        })
        .await
    }

    /// Starts and finishes every step of a started run, publishing as it goes.
    pub async fn finish(
        &self,
        id: Uuid,
        wf: &CompiledWorkflow,
        steps: impl IntoIterator<Item = usize>,
    ) {
        for i in steps {
            let step = format!("s{i}");
            self.step_started(id, &step).await;
            self.step_succeeded(id, wf, &step).await;
        }
    }

    /// The run's events as the store holds them.
    pub async fn stored(&self, id: Uuid) -> Vec<v1::RunEvent> {
        let run = self
            .store
            .find_run(id)
            .await
            .expect("find_run")
            .expect("the run exists");
        self.store
            .list_events(id, 0, 100_000)
            .await
            .expect("list_events")
            .iter()
            .map(|e| run.event_to_proto(&e.record))
            .collect()
    }
}

/// The next item, or a failure naming `what` if none comes within [`SOON`].
pub async fn next<S>(stream: &mut S, what: &str) -> Option<Result<v1::RunEvent, EventsError>>
where
    S: Stream<Item = Result<v1::RunEvent, EventsError>> + Unpin,
{
    tokio::time::timeout(SOON, stream.next())
        .await
        .unwrap_or_else(|_| panic!("no item within {SOON:?} while waiting for {what}"))
}

/// Every event until the stream ends; fails on an error item or a stall.
pub async fn collect<S>(stream: S, what: &str) -> Vec<v1::RunEvent>
where
    S: Stream<Item = Result<v1::RunEvent, EventsError>>,
{
    let mut stream = std::pin::pin!(stream);
    let mut events = Vec::new();
    while let Some(item) = next(&mut stream, what).await {
        events.push(item.unwrap_or_else(|e| panic!("{what}: the stream failed: {e}")));
    }
    events
}

/// Polls `condition` until it holds, or fails naming `what` after [`SOON`].
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + SOON;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {SOON:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn sequences(events: &[v1::RunEvent]) -> Vec<i64> {
    events.iter().map(|e| e.sequence).collect()
}

/// What identifies an event: everything but its labels.
pub fn essence(events: &[v1::RunEvent]) -> Vec<(String, i64, i32, String, u32, String)> {
    events
        .iter()
        .map(|e| {
            (
                e.run_id.clone(),
                e.sequence,
                e.r#type,
                e.step_id.clone(),
                e.attempt,
                e.output_json.clone(),
            )
        })
        .collect()
}
