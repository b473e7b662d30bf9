//! The limits against a real runner and real workers: a template, an output or an executor that
//! goes wrong fails its own step with the limit named, quickly, while the runs beside it finish.
//! Against the backend `BATON_TEST_BACKEND` names.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use baton_engine::{Limits, MAX_STEP_OUTPUT_BYTES_VAR};
use baton_proto::v1::{self, RunStatus, StepStatus};
use baton_queue::Queue;
use baton_testkit::{StackOptions, TestStack, status, step, step_status};
use baton_worker::{StepExecutor, StepFailure, StepOutput, WorkerConfig, WorkerPool};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Far below the inbox's visibility timeout, so a run that ended only by redeliveries fails.
const WAIT: Duration = Duration::from_secs(10);

const CLEAN: &str = "owner: t\nname: clean\nversion: 1\nsteps:\n\
                     - {id: greet, kind: echo, input: {text: 'hello {{ inputs.name }}'}}\n";

/// A worker kind for the tests: its input says what it does.
const KIND: &str = "scripted";

/// `{"bytes": n}` succeeds with an output of `n` bytes of text; `{"panic": msg}` panics;
/// `{"sleep_ms": n}` succeeds after `n` ms.
struct Scripted;

#[async_trait]
impl StepExecutor for Scripted {
    async fn execute(
        &self,
        _: &v1::Job,
        input: Value,
        _: CancellationToken,
    ) -> Result<StepOutput, StepFailure> {
        if let Some(message) = input["panic"].as_str() {
            panic!("{message}");
        }
        if let Some(ms) = input["sleep_ms"].as_u64() {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            return Ok(json!({"slept_ms": ms}).into());
        }
        let bytes = input["bytes"].as_u64().unwrap_or(0) as usize;
        Ok(json!({"text": "x".repeat(bytes)}).into())
    }
}

fn worker_config(max_output_bytes: usize) -> WorkerConfig {
    WorkerConfig {
        worker_id: "scripted-worker".into(),
        concurrency: 4,
        poll_block: Duration::from_millis(200),
        shutdown_grace: Duration::from_millis(100),
        max_output_bytes,
        ..WorkerConfig::default()
    }
}

/// A stack whose orchestrator accepts [`KIND`], with a [`Scripted`] worker whose output limit is
/// `max_output_bytes`.
async fn stack_with_worker(
    max_output_bytes: usize,
) -> (TestStack, CancellationToken, tokio::task::JoinHandle<()>) {
    let stack = TestStack::start_with(StackOptions {
        extra_kinds: vec![KIND.to_owned()],
        ..Default::default()
    })
    .await
    .unwrap();
    let queue: Arc<dyn Queue> = stack.queue.clone();
    let stop = CancellationToken::new();
    let pool = WorkerPool::new(queue, worker_config(max_output_bytes))
        .with_executor(KIND, Arc::new(Scripted));
    let token = stop.clone();
    let worker = tokio::spawn(async move { pool.run(token).await.unwrap() });
    (stack, stop, worker)
}

async fn stop(stack: TestStack, stop: CancellationToken, worker: tokio::task::JoinHandle<()>) {
    stop.cancel();
    worker.await.unwrap();
    stack.stop().await;
}

/// Asserts the run failed in step `id` with `error` on attempt `attempt`, and `after` was skipped.
fn assert_failed_with(run: &v1::Run, id: &str, error: &str, attempt: u32) {
    assert_eq!(status(run), RunStatus::Failed, "{run:?}");
    assert_eq!(run.error, format!("step `{id}` failed: {error}"));
    let failed = step(run, id);
    assert_eq!(step_status(failed), StepStatus::Failed);
    assert_eq!(failed.error, error);
    assert_eq!(failed.attempt, attempt, "{failed:?}");
    assert_eq!(step_status(step(run, "after")), StepStatus::Skipped);
}

#[tokio::test]
async fn a_huge_template_fails_its_step_quickly_while_a_neighbour_completes() {
    let stack = TestStack::start().await.unwrap();
    let huge = "owner: t\nname: huge\nversion: 1\nsteps:\n\
                - {id: render, kind: echo, retry: {max_attempts: 3}, input: {text: \"{{ 'x' * 100000000 }}\"}}\n\
                - {id: after, kind: noop, needs: [render]}\n";
    stack.register(huge).await.unwrap();
    stack.register(CLEAN).await.unwrap();

    let began = Instant::now();
    let (huge, clean) = tokio::join!(
        stack.start_run("t/huge@1", json!({})),
        stack.start_run("t/clean@1", json!({"name": "Ada"})),
    );
    let (huge, clean) = (huge.unwrap(), clean.unwrap());
    let (huge, clean) = tokio::join!(
        async {
            let run = stack.wait_for_end(&huge.id, WAIT).await;
            (run, began.elapsed())
        },
        async {
            let run = stack.wait_for_end(&clean.id, WAIT).await;
            (run, began.elapsed())
        },
    );
    let ((huge, huge_took), (clean, clean_took)) =
        ((huge.0.unwrap(), huge.1), (clean.0.unwrap(), clean.1));
    eprintln!(
        "the huge template's run failed after {huge_took:?}; its neighbour completed after {clean_took:?}"
    );

    let error =
        "input.text: template output exceeds 1048576 bytes (BATON_MAX_TEMPLATE_OUTPUT_BYTES)";
    assert_failed_with(&huge, "render", error, 0);
    assert!(huge_took < Duration::from_secs(5), "took {huge_took:?}");
    assert_eq!(status(&clean), RunStatus::Completed, "{clean:?}");
    assert_eq!(step(&clean, "greet").output_json, r#"{"text":"hello Ada"}"#);
    // The same run alone, for comparison.
    let alone = Instant::now();
    let run = stack
        .start_run("t/clean@1", json!({"name": "Bo"}))
        .await
        .unwrap();
    let run = stack.wait_for_end(&run.id, WAIT).await.unwrap();
    assert_eq!(status(&run), RunStatus::Completed, "{run:?}");
    eprintln!(
        "the same clean run alone completed after {:?}",
        alone.elapsed()
    );
    stack.stop().await;
}

#[tokio::test]
async fn an_output_over_the_limit_fails_its_step_at_the_worker_or_at_the_runner() {
    const BIG: &str = "owner: t\nname: big\nversion: 1\nsteps:\n\
                       - {id: emit, kind: scripted, retry: {max_attempts: 3}, input: {bytes: 2000000}}\n\
                       - {id: after, kind: noop, needs: [emit]}\n";
    const SMALL: &str = "owner: t\nname: small\nversion: 1\nsteps:\n\
                         - {id: emit, kind: scripted, input: {bytes: 1000}}\n";
    // 2,000,000 bytes of text and `{"text":""}` around them.
    let size = 2_000_000 + 11;

    // The worker keeps to the default: the output is refused before it is sent.
    let (stack, token, worker) = stack_with_worker(Limits::DEFAULT_MAX_STEP_OUTPUT_BYTES).await;
    stack.register(BIG).await.unwrap();
    stack.register(SMALL).await.unwrap();
    let big = stack.start_run("t/big@1", json!({})).await.unwrap();
    let small = stack.start_run("t/small@1", json!({})).await.unwrap();
    let big = stack.wait_for_end(&big.id, WAIT).await.unwrap();
    let error = format!(
        "step output exceeds 1048576 bytes (BATON_MAX_STEP_OUTPUT_BYTES): it is {size} bytes"
    );
    assert_failed_with(&big, "emit", &error, 1);
    let small = stack.wait_for_end(&small.id, WAIT).await.unwrap();
    assert_eq!(status(&small), RunStatus::Completed, "{small:?}");
    stop(stack, token, worker).await;

    // A worker configured above the runner sends it; the runner fails it the same way.
    let (stack, token, worker) = stack_with_worker(8 << 20).await;
    stack.register(BIG).await.unwrap();
    let big = stack.start_run("t/big@1", json!({})).await.unwrap();
    let big = stack.wait_for_end(&big.id, WAIT).await.unwrap();
    assert_failed_with(&big, "emit", &error, 1);
    stop(stack, token, worker).await;
}

#[tokio::test]
async fn a_panicking_executor_fails_its_step_and_its_worker_keeps_serving() {
    let (stack, token, worker) = stack_with_worker(Limits::DEFAULT_MAX_STEP_OUTPUT_BYTES).await;
    let panics = "owner: t\nname: panics\nversion: 1\nsteps:\n\
                  - {id: boom, kind: scripted, retry: {max_attempts: 2, initial: 10ms}, input: {panic: 'the tool broke'}}\n\
                  - {id: after, kind: noop, needs: [boom]}\n";
    let slow = "owner: t\nname: slow\nversion: 1\nsteps:\n\
                - {id: wait, kind: scripted, input: {sleep_ms: 500}}\n";
    stack.register(panics).await.unwrap();
    stack.register(slow).await.unwrap();

    // A job of the same worker is running while the other panics.
    let slow = stack.start_run("t/slow@1", json!({})).await.unwrap();
    let panicked = stack.start_run("t/panics@1", json!({})).await.unwrap();
    let panicked = stack.wait_for_end(&panicked.id, WAIT).await.unwrap();
    // A panic may be retried: the step's policy gave it 2 attempts, and both panicked.
    assert_failed_with(
        &panicked,
        "boom",
        "step executor panicked: the tool broke",
        2,
    );
    let slow = stack.wait_for_end(&slow.id, WAIT).await.unwrap();
    assert_eq!(status(&slow), RunStatus::Completed, "{slow:?}");
    assert_eq!(step(&slow, "wait").output_json, r#"{"slept_ms":500}"#);

    // And it takes new work after.
    let later = stack.start_run("t/slow@1", json!({})).await.unwrap();
    let later = stack.wait_for_end(&later.id, WAIT).await.unwrap();
    assert_eq!(status(&later), RunStatus::Completed, "{later:?}");
    assert!(!worker.is_finished(), "the worker still runs");
    stop(stack, token, worker).await;
}

#[test]
fn workers_and_the_runner_read_one_output_limit() {
    assert_eq!(
        MAX_STEP_OUTPUT_BYTES_VAR,
        baton_worker::MAX_STEP_OUTPUT_BYTES_VAR
    );
    assert_eq!(
        Limits::default().max_step_output_bytes,
        WorkerConfig::default().max_output_bytes
    );
    let env = baton_runtime::env::Env::from_pairs([
        ("BATON_MAX_STEP_INPUT_BYTES", "10"),
        ("BATON_MAX_STEP_OUTPUT_BYTES", "20"),
        ("BATON_MAX_TEMPLATE_OUTPUT_BYTES", "30"),
        ("BATON_TEMPLATE_FUEL", "40"),
    ]);
    let config = baton_workflow_runner::RunnerConfig::from_env(&env).unwrap();
    assert_eq!(config.limits, Limits::from_env(&env).unwrap());
    assert_eq!(config.limits.max_step_input_bytes, 10);
    assert_eq!(config.limits.template.fuel, 40);
    // The built-in workers read it as every worker does.
    assert_eq!(config.worker.max_output_bytes, 20);
    let bad = baton_runtime::env::Env::from_pairs([("BATON_TEMPLATE_FUEL", "0")]);
    let err = baton_workflow_runner::RunnerConfig::from_env(&bad).unwrap_err();
    assert_eq!(err.name, "BATON_TEMPLATE_FUEL");
}
