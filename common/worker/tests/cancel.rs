//! Cancel on the worker side, against a real Redis: a cancel notice stops the run's running job
//! through its cancel token, the attempt is reported as cancelled and acknowledged, the run's
//! later jobs are skipped without running, and other runs are not touched.

use std::{collections::HashMap, sync::Arc, time::Duration};

use async_trait::async_trait;
use baton_proto::v1::{self, runner_message::Message};
use baton_queue::{
    CancelNotices, JobStream, QueueAdmin, RedisKeys, RedisQueue, RedisQueueConfig, RunnerInbox,
};
use baton_worker::{StepExecutor, StepFailure, StepOutput, WorkerConfig, WorkerPool};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const KIND: &str = "wait";
const WAIT: Duration = Duration::from_secs(20);

/// Waits ten minutes unless cancelled, or returns at once when the input says `quick`; tells
/// the test which steps it started.
struct WaitForCancel {
    started: mpsc::UnboundedSender<String>,
}

#[async_trait]
impl StepExecutor for WaitForCancel {
    async fn execute(
        &self,
        job: &v1::Job,
        input: Value,
        cancel: CancellationToken,
    ) -> Result<StepOutput, StepFailure> {
        let _ = self.started.send(job.step_id.clone());
        if input["quick"] == true {
            return Ok(json!("done").into());
        }
        tokio::select! {
            _ = cancel.cancelled() => Err(StepFailure::permanent("stopped by the cancel")),
            _ = tokio::time::sleep(Duration::from_secs(600)) => Ok(json!("slept").into()),
        }
    }
}

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn job(run_id: &str, step_id: &str, input: Value) -> v1::Job {
    v1::Job {
        run_id: run_id.into(),
        step_id: step_id.into(),
        kind: KIND.into(),
        attempt: 1,
        input_json: input.to_string(),
        ..Default::default()
    }
}

/// Reads the runner inbox until the results of all of `steps` have arrived.
async fn results_of(queue: &RedisQueue, steps: &[&str]) -> HashMap<String, v1::JobResult> {
    let mut results = HashMap::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !steps.iter().all(|s| results.contains_key(*s)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "results within {WAIT:?}: {results:?}, expected {steps:?}"
        );
        let batch = queue
            .read_runner("test", 16, Duration::from_millis(200))
            .await
            .unwrap();
        for delivery in batch {
            if let Ok(v1::RunnerMessage {
                message: Some(Message::JobResult(result)),
            }) = delivery.message
            {
                results.insert(result.step_id.clone(), result);
            }
        }
    }
    results
}

fn outcome(result: &v1::JobResult) -> v1::JobOutcome {
    v1::JobOutcome::try_from(result.outcome).unwrap_or_default()
}

async fn subscribers(channel: &str) -> u64 {
    let mut conn = redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let (_, count): (String, u64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(&mut conn)
        .await
        .unwrap();
    count
}

async fn delete_keys(prefix: &str) {
    let mut conn = redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_cancel_notice_stops_the_runs_running_job_and_skips_its_later_ones() {
    let prefix = format!("baton-worker-test-{}", uuid::Uuid::new_v4().simple());
    let queue = Arc::new(
        RedisQueue::connect(RedisQueueConfig::new(redis_url(), &prefix))
            .await
            .expect("Redis at REDIS_URL"),
    );
    queue.join_kinds(&[KIND.to_owned()]).await.unwrap();
    let (started, mut starts) = mpsc::unbounded_channel();
    let pool = WorkerPool::new(
        queue.clone(),
        WorkerConfig {
            worker_id: "worker".into(),
            concurrency: 4,
            visibility_timeout: Duration::from_secs(30),
            max_deliveries: 5,
            poll_block: Duration::from_millis(200),
            shutdown_grace: Duration::from_secs(1),
            ..WorkerConfig::default()
        },
    )
    .with_executor(KIND, Arc::new(WaitForCancel { started }));
    let stop = CancellationToken::new();
    let worker = tokio::spawn(pool.run(stop.clone()));

    // Cancel notices are pub/sub: one published before the worker subscribes is not heard.
    let channel = RedisKeys::new(&prefix).cancel_channel();
    let deadline = tokio::time::Instant::now() + WAIT;
    while subscribers(&channel).await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker never subscribed to {channel}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let (cancelled, other) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    queue
        .dispatch(&[job(&cancelled, "running", json!({}))], &[])
        .await
        .unwrap();
    let first = tokio::time::timeout(WAIT, starts.recv()).await.unwrap();
    assert_eq!(first.as_deref(), Some("running"));

    queue
        .publish_cancel(&v1::CancelNotice {
            run_id: cancelled.clone(),
            reason: "stop".into(),
        })
        .await
        .unwrap();
    let result = results_of(&queue, &["running"])
        .await
        .remove("running")
        .unwrap();
    assert_eq!(outcome(&result), v1::JobOutcome::Cancelled, "{result:?}");
    assert_eq!(result.error, "stopped by the cancel");
    assert!(!result.retryable);
    // Reported and acknowledged together: nothing of the job is left to reclaim.
    let stats = queue.stats(&[KIND.to_owned()]).await.unwrap();
    let jobs = stats.iter().find(|s| s.name == "jobs:wait").unwrap();
    assert_eq!((jobs.length, jobs.pending), (0, 0), "{jobs:?}");

    // The cancelled run's next job is reported cancelled without running; another run's runs.
    queue
        .dispatch(
            &[
                job(&cancelled, "later", json!({"quick": true})),
                job(&other, "elsewhere", json!({"quick": true})),
            ],
            &[],
        )
        .await
        .unwrap();
    let mut results = results_of(&queue, &["later", "elsewhere"]).await;
    let later = results.remove("later").unwrap();
    assert_eq!(outcome(&later), v1::JobOutcome::Cancelled, "{later:?}");
    assert_eq!(later.error, "run cancelled");
    let elsewhere = results.remove("elsewhere").unwrap();
    assert_eq!(
        outcome(&elsewhere),
        v1::JobOutcome::Succeeded,
        "{elsewhere:?}"
    );
    let ran: Vec<String> = std::iter::from_fn(|| starts.try_recv().ok()).collect();
    assert_eq!(ran, ["elsewhere"], "only the other run's job ran");

    stop.cancel();
    tokio::time::timeout(WAIT, worker)
        .await
        .expect("the worker stops")
        .unwrap()
        .unwrap();
    delete_keys(&prefix).await;
}
