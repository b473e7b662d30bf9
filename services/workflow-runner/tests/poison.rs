//! Poison stays contained: a step whose output the store cannot hold fails that step (and its
//! run) with a clear error, and a run whose write fails for any reason holds back no other run
//! of its batch. Both against the backend `BATON_TEST_BACKEND` names.

use std::{path::Path, sync::Arc, time::Duration};

use async_trait::async_trait;
use baton_engine::EventRecord;
use baton_proto::v1::{self, RunEventType, RunStatus, StepStatus};
use baton_queue::Queue;
use baton_testkit::{BackendKind, StackOptions, TestBackend, TestStack, status, step, step_status};
use baton_worker::{StepExecutor, StepFailure, StepOutput, WorkerConfig, WorkerPool};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const KIND: &str = "nul";
/// "Within seconds": far below the inbox's visibility timeout and dead-letter limit, so a run
/// that only ends by retries running out fails the test.
const WAIT: Duration = Duration::from_secs(10);

const POISONED: &str = "owner: t\nname: poisoned\nversion: 1\nsteps:\n\
                        - {id: emit, kind: nul}\n\
                        - {id: after, kind: noop, needs: [emit]}\n";
const CLEAN: &str = "owner: t\nname: clean\nversion: 1\nsteps:\n\
                     - {id: greet, kind: echo, input: {text: 'hello {{ inputs.name }}'}}\n";

/// Succeeds with an output that holds a NUL, as a careless tool's output may.
struct EmitsNul;

#[async_trait]
impl StepExecutor for EmitsNul {
    async fn execute(
        &self,
        _: &v1::Job,
        _: Value,
        _: CancellationToken,
    ) -> Result<StepOutput, StepFailure> {
        Ok(json!({"text": "a\u{0}b"}).into())
    }
}

fn worker_config() -> WorkerConfig {
    WorkerConfig {
        worker_id: "nul-worker".into(),
        concurrency: 4,
        visibility_timeout: Duration::from_secs(30),
        max_deliveries: 5,
        poll_block: Duration::from_millis(200),
        shutdown_grace: Duration::from_millis(100),
        ..WorkerConfig::default()
    }
}

async fn events(stack: &TestStack, run_id: &str) -> Vec<EventRecord> {
    stack
        .store
        .list_events(run_id.parse().unwrap(), 0, 1_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.record)
        .collect()
}

/// The run's history is whole: numbered from 1 without a gap, ending with `last`.
async fn assert_complete_history(stack: &TestStack, run_id: &str, last: RunEventType) {
    let history = events(stack, run_id).await;
    let sequences: Vec<i64> = history.iter().map(|e| e.sequence).collect();
    assert_eq!(
        sequences,
        (1..=history.len() as i64).collect::<Vec<_>>(),
        "{history:?}"
    );
    assert_eq!(
        history.last().map(|e| e.event_type),
        Some(last),
        "{history:?}"
    );
}

#[tokio::test]
async fn a_step_output_holding_a_nul_fails_that_step_and_no_other_run() {
    let stack = TestStack::start_with(StackOptions {
        extra_kinds: vec![KIND.to_owned()],
        ..Default::default()
    })
    .await
    .unwrap();
    stack.register(POISONED).await.unwrap();
    stack.register(CLEAN).await.unwrap();
    let queue: Arc<dyn Queue> = stack.queue.clone();
    let stop = CancellationToken::new();
    let pool = WorkerPool::new(queue, worker_config()).with_executor(KIND, Arc::new(EmitsNul));
    let worker = tokio::spawn(pool.run(stop.clone()));

    let (poisoned, clean) = tokio::join!(
        stack.start_run("t/poisoned@1", json!({})),
        stack.start_run("t/clean@1", json!({"name": "Ada"})),
    );
    let (poisoned, clean) = (poisoned.unwrap(), clean.unwrap());
    let (poisoned, clean) = tokio::join!(
        stack.wait_for_end(&poisoned.id, WAIT),
        stack.wait_for_end(&clean.id, WAIT),
    );
    let (poisoned, clean) = (poisoned.unwrap(), clean.unwrap());

    let error = "step output cannot be stored: $.text holds a NUL character (U+0000)";
    assert_eq!(status(&poisoned), RunStatus::Failed, "{poisoned:?}");
    assert_eq!(poisoned.error, format!("step `emit` failed: {error}"));
    let emit = step(&poisoned, "emit");
    assert_eq!(step_status(emit), StepStatus::Failed);
    assert_eq!(emit.error, error);
    assert_eq!(emit.attempt, 1, "a permanent failure is not retried");
    assert_eq!(step_status(step(&poisoned, "after")), StepStatus::Skipped);
    assert_complete_history(&stack, &poisoned.id, RunEventType::RunFailed).await;
    let failed: Vec<_> = events(&stack, &poisoned.id)
        .await
        .into_iter()
        .filter(|e| e.event_type == RunEventType::StepFailed)
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].message.as_deref(), Some(error));

    assert_eq!(status(&clean), RunStatus::Completed, "{clean:?}");
    assert_complete_history(&stack, &clean.id, RunEventType::RunCompleted).await;

    stop.cancel();
    worker.await.unwrap().unwrap();
    stack.stop().await;
}

/// Makes every write of one run's events fail inside the store itself, as a value the backend
/// refuses would, whatever the runner sends.
async fn poison_writes_of(stack: &TestStack, db_path: &Path, run: uuid::Uuid) {
    match stack.kind {
        BackendKind::Production => {
            let pool = stack.pg().pool();
            sqlx::query(
                "CREATE FUNCTION refuse_event() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'this run cannot be stored'; END $$",
            )
            .execute(pool)
            .await
            .unwrap();
            // `run` is a UUID, so the statement holds nothing but hex digits and dashes from it.
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE TRIGGER refuse_event BEFORE INSERT ON run_events FOR EACH ROW \
                 WHEN (NEW.run_id = '{run}') EXECUTE FUNCTION refuse_event()"
            )))
            .execute(pool)
            .await
            .unwrap();
        }
        BackendKind::Embedded => {
            let pool = baton_sqlite::open(db_path, 1).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE TRIGGER refuse_event BEFORE INSERT ON run_events \
                 WHEN NEW.run_id = X'{}' \
                 BEGIN SELECT RAISE(ABORT, 'this run cannot be stored'); END",
                run.simple()
            )))
            .execute(&pool)
            .await
            .unwrap();
            pool.close().await;
        }
    }
}

#[tokio::test]
async fn a_run_whose_write_fails_holds_back_no_other_run_of_its_batch() {
    let backend = TestBackend::from_env().await.unwrap();
    let db_path = backend.db_path.clone();
    // No runner yet: both runs' starts wait in the inbox, so the runner takes them in one batch.
    // Redeliveries come quickly and run out soon; the sweeper, which would start a run left
    // queued all over again, waits past the test.
    let options = StackOptions {
        runners: 0,
        ..StackOptions::default()
            .runner_env("BATON_INBOX_VISIBILITY", "200ms")
            .runner_env("BATON_MAX_DELIVERIES", "3")
            .runner_env("BATON_SWEEP_GRACE", "1h")
    };
    let mut stack = TestStack::start_on(backend, options).await.unwrap();
    stack.register(CLEAN).await.unwrap();
    let stuck = stack
        .start_run("t/clean@1", json!({"name": "stuck"}))
        .await
        .unwrap();
    let clean = stack
        .start_run("t/clean@1", json!({"name": "Ada"}))
        .await
        .unwrap();
    poison_writes_of(&stack, &db_path, stuck.id.parse().unwrap()).await;
    let token = CancellationToken::new();
    stack.spawn_runner("runner-0", token.clone()).await.unwrap();

    let clean = stack.wait_for_end(&clean.id, WAIT).await.unwrap();
    assert_eq!(status(&clean), RunStatus::Completed, "{clean:?}");
    assert_complete_history(&stack, &clean.id, RunEventType::RunCompleted).await;

    // The stuck run's start is retried until its deliveries run out, then dead-lettered; it
    // stays queued, with nothing of it written.
    let deadline = tokio::time::Instant::now() + WAIT;
    let letter = loop {
        let mut letters = stack.queue.dead_letters(100).await.unwrap();
        letters.retain(|l| l.stream == "runner");
        if let Some(letter) = letters.pop() {
            assert!(
                letters.is_empty(),
                "more than the stuck run's start: {letters:?}"
            );
            break letter;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stuck run's start was never dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let message = <v1::RunnerMessage as prost::Message>::decode(letter.payload.as_slice()).unwrap();
    let Some(v1::runner_message::Message::StartRun(start)) = message.message else {
        panic!("dead-lettered {message:?}");
    };
    assert_eq!(start.run_id, stuck.id);
    let stuck = stack.get_run(&stuck.id).await.unwrap();
    assert_eq!(status(&stuck), RunStatus::Queued, "{stuck:?}");
    assert!(
        events(&stack, &stuck.id)
            .await
            .iter()
            .all(|e| e.sequence <= 1)
    );

    token.cancel();
    stack.stop().await;
}
