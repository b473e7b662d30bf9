//! What must survive failures: duplicate results, workers that die mid-job, several runner
//! replicas over the same runs, and undecodable messages.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use baton_proto::v1::{self, RunStatus, StepStatus};
use baton_testkit::{StackOptions, TestStack, status, step, step_status};
use baton_worker::{StepExecutor, StepFailure, StepOutput, WorkerConfig, WorkerPool};
use baton_workflow_runner::builtins::with_builtins;
use serde_json::json;
use sqlx::Row;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_duplicate_result_changes_nothing() {
    let stack = TestStack::start().await.unwrap();
    stack
        .register(include_str!("../../../examples/hello.yaml"))
        .await
        .unwrap();
    let run = stack
        .start_run("examples/hello@1", json!({"name": "Ada", "count": 2}))
        .await
        .unwrap();
    let run = stack.wait_for_end(&run.id, WAIT).await.unwrap();
    assert_eq!(status(&run), RunStatus::Completed);

    // Replay results for finished attempts: a late success of the failed attempt, and a failure
    // of the attempt that succeeded.
    let result = |step_id: &str, attempt: u32, outcome: v1::JobOutcome| v1::RunnerMessage {
        message: Some(v1::runner_message::Message::JobResult(v1::JobResult {
            run_id: run.id.clone(),
            step_id: step_id.into(),
            attempt,
            outcome: outcome as i32,
            output_json: r#"{"forged": true}"#.into(),
            error: "late".into(),
            retryable: true,
            ..Default::default()
        })),
    };
    let dupes = [
        result("left", 1, v1::JobOutcome::Succeeded),
        result("left", 2, v1::JobOutcome::Failed),
        result("greet", 1, v1::JobOutcome::Succeeded),
    ];
    stack.queue.send_to_runner(&dupes).await.unwrap();
    wait_until_inbox_drained(&stack).await;
    let after = stack.get_run(&run.id).await.unwrap();
    assert_eq!(after.last_sequence, run.last_sequence);
    assert_eq!(after.steps, run.steps);
    assert_eq!(status(&after), RunStatus::Completed);
    stack.stop().await;
}

async fn wait_until_inbox_drained(stack: &TestStack) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stats = stack.queue.stats(&[]).await.unwrap();
        let inbox = stats.iter().find(|s| s.name == "runner").unwrap();
        if inbox.length == 0 && inbox.pending == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "inbox never drained: {inbox:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Takes a job and never finishes it, as a worker that hung or died would.
struct Hang {
    taken: Arc<AtomicUsize>,
}

#[async_trait]
impl StepExecutor for Hang {
    async fn execute(
        &self,
        _: &v1::Job,
        _: serde_json::Value,
        _: CancellationToken,
    ) -> Result<StepOutput, StepFailure> {
        self.taken.fetch_add(1, Ordering::SeqCst);
        std::future::pending().await
    }
}

fn worker_config(id: &str) -> WorkerConfig {
    WorkerConfig {
        worker_id: id.into(),
        concurrency: 8,
        visibility_timeout: Duration::from_millis(600),
        max_deliveries: 5,
        poll_block: Duration::from_millis(200),
        shutdown_grace: Duration::from_millis(100),
        ..WorkerConfig::default()
    }
}

#[tokio::test]
async fn a_job_whose_worker_died_is_reclaimed_and_the_run_completes() {
    let stack = TestStack::start_with(StackOptions {
        builtin_workers: false,
        ..Default::default()
    })
    .await
    .unwrap();
    stack
        .register("owner: t\nname: survive\nversion: 1\nsteps:\n  - {id: work, kind: echo, input: {x: 1}}\n  - {id: after, kind: noop, needs: [work]}\n")
        .await
        .unwrap();
    let queue: Arc<dyn baton_queue::Queue> = stack.queue.clone();

    // Worker A takes the job and dies holding it.
    let taken = Arc::new(AtomicUsize::new(0));
    let doomed = WorkerPool::new(queue.clone(), worker_config("doomed")).with_executor(
        "echo",
        Arc::new(Hang {
            taken: taken.clone(),
        }),
    );
    let doomed = tokio::spawn(doomed.run(CancellationToken::new()));
    let run = stack.start_run("t/survive@1", json!({})).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while taken.load(Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "worker A never took the job"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    doomed.abort();

    // Worker B starts later, finds the job unacknowledged past the visibility timeout, runs it.
    let healthy = with_builtins(WorkerPool::new(queue, worker_config("healthy")));
    let stop = CancellationToken::new();
    let healthy = tokio::spawn(healthy.run(stop.clone()));
    let run = stack.wait_for_end(&run.id, WAIT).await.unwrap();
    assert_eq!(status(&run), RunStatus::Completed, "{}", run.error);
    let work = step(&run, "work");
    assert_eq!(work.attempt, 1, "a reclaimed job keeps its attempt");
    assert_eq!(work.attempts[0].worker_id, "healthy");
    assert_eq!(taken.load(Ordering::SeqCst), 1);
    stop.cancel();
    let _ = healthy.await;
    stack.stop().await;
}

#[tokio::test]
async fn two_runner_replicas_never_double_schedule_a_step() {
    let stack = TestStack::start_with(StackOptions {
        runners: 2,
        max_connections: 8,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut yaml = String::from(
        "owner: t\nname: busy\nversion: 1\nexecution: {concurrency: {maxParallel: 4}}\nsteps:\n  - {id: start, kind: noop}\n",
    );
    for i in 0..12 {
        yaml.push_str(&format!("  - {{id: w{i}, kind: noop, needs: [start]}}\n"));
    }
    let all: Vec<String> = (0..12).map(|i| format!("w{i}")).collect();
    yaml.push_str(&format!(
        "  - {{id: end, kind: noop, needs: [{}]}}\n",
        all.join(", ")
    ));
    stack.register(&yaml).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..40 {
        ids.push(stack.start_run("t/busy@1", json!({})).await.unwrap().id);
    }
    for id in &ids {
        let run = stack.wait_for_end(id, WAIT).await.unwrap();
        assert_eq!(status(&run), RunStatus::Completed, "{}", run.error);
        assert!(
            run.steps
                .iter()
                .all(|s| s.attempt == 1 && step_status(s) == StepStatus::Completed)
        );
    }
    // Every step was queued exactly once, and each run's events are numbered without gaps.
    let pool = stack.pg().pool();
    let doubles: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT run_id, step_id, attempt FROM run_events WHERE event_type = 'RUN_EVENT_TYPE_STEP_QUEUED' \
         GROUP BY run_id, step_id, attempt HAVING count(*) > 1) d",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(doubles, 0);
    let rows = sqlx::query(
        "SELECT run_id, count(*) AS n, max(sequence) AS top FROM run_events GROUP BY run_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 40);
    for row in rows {
        assert_eq!(row.get::<i64, _>("n"), row.get::<i64, _>("top"));
    }
    let queued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM run_events WHERE event_type = 'RUN_EVENT_TYPE_STEP_QUEUED'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(queued, 40 * 14);
    stack.stop().await;
}

#[tokio::test]
async fn undecodable_messages_go_to_dead_letters() {
    let stack = TestStack::start().await.unwrap();
    let mut conn = redis::Client::open(baton_testkit::redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let inbox = format!("{}:runner", stack.prefix);
    let jobs = format!("{}:jobs:noop", stack.prefix);
    let _: String = redis::cmd("XADD")
        .arg(&inbox)
        .arg("*")
        .arg("d")
        .arg(vec![0xffu8, 0xff, 0xff])
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: String = redis::cmd("XADD")
        .arg(&jobs)
        .arg("*")
        .arg("junk")
        .arg("1")
        .query_async(&mut conn)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let dead = stack.queue.dead_letters(10).await.unwrap();
        if dead.len() == 2 {
            let streams: Vec<&str> = dead.iter().map(|d| d.stream.as_str()).collect();
            assert!(
                streams.contains(&"runner") && streams.contains(&"jobs:noop"),
                "{streams:?}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "dead letters: {dead:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Both were acknowledged and removed: nothing is left to retry.
    wait_until_inbox_drained(&stack).await;
    stack.stop().await;
}
