//! Parked steps against the real queue and a real stack: a parked attempt is reported started
//! once, acknowledged, and sends no result; the run waits for the result sent later through the
//! runner inbox (as the API will send it), and a worker dying in between loses nothing.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use baton_proto::v1::{self, RunStatus, StepStatus, runner_message::Message};
use baton_queue::{JobStream, Queue, QueueAdmin, RedisQueue, RedisQueueConfig, RunnerInbox};
use baton_testkit::{StackOptions, TestStack, output, status, step, step_status};
use baton_worker::{StepExecutor, StepFailure, StepOutput, WorkerConfig, WorkerPool};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

const KIND: &str = "hold";
const WAIT: Duration = Duration::from_secs(30);

/// Parks every step, as an approval does; with `input.gate`, only once the test opens the gate.
struct Hold {
    parks: Arc<AtomicUsize>,
    gate: Arc<Semaphore>,
}

impl Hold {
    fn new() -> Self {
        Self {
            parks: Arc::default(),
            gate: Arc::new(Semaphore::new(0)),
        }
    }
}

#[async_trait]
impl StepExecutor for Hold {
    async fn execute(
        &self,
        job: &v1::Job,
        input: Value,
        _: CancellationToken,
    ) -> Result<StepOutput, StepFailure> {
        if input["gate"] == true {
            let _ = self
                .gate
                .acquire()
                .await
                .map_err(|e| StepFailure::retryable(format!("the test's gate closed: {e}")))?;
        }
        self.parks.fetch_add(1, Ordering::SeqCst);
        Ok(StepOutput::parked(format!(
            "step {} awaits a decision on {}",
            job.step_id, input["question"]
        )))
    }
}

fn config(worker_id: &str) -> WorkerConfig {
    WorkerConfig {
        worker_id: worker_id.into(),
        concurrency: 8,
        // Short, so a job left unacknowledged would be reclaimed while the test runs.
        visibility_timeout: Duration::from_millis(300),
        max_deliveries: 5,
        poll_block: Duration::from_millis(200),
        shutdown_grace: Duration::from_millis(100),
        ..WorkerConfig::default()
    }
}

/// Waits until the kind's job stream holds nothing, delivered or not.
async fn wait_until_no_jobs_are_held(queue: &dyn QueueAdmin) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stats = queue.stats(&[KIND.to_owned()]).await.unwrap();
        let jobs = stats.iter().find(|s| s.name == "jobs:hold").unwrap();
        if (jobs.length, jobs.pending) == (0, 0) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the parked jobs were never acknowledged: {jobs:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn delete_keys(prefix: &str) {
    let mut conn = redis::Client::open(baton_testkit::redis_url())
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

/// What the worker sent to the runner inbox for each step: starts and results.
#[derive(Default, Debug)]
struct Sent {
    started: HashMap<String, usize>,
    /// Steps whose start said they are parked.
    parked: HashMap<String, usize>,
    results: Vec<v1::JobResult>,
}

impl Sent {
    async fn read(&mut self, queue: &RedisQueue, block: Duration) {
        for delivery in queue.read_runner("test", 64, block).await.unwrap() {
            match delivery.message.unwrap().message {
                Some(Message::JobStarted(s)) => {
                    if s.parked {
                        *self.parked.entry(s.step_id.clone()).or_default() += 1;
                    }
                    *self.started.entry(s.step_id).or_default() += 1;
                }
                Some(Message::JobResult(r)) => self.results.push(r),
                other => panic!("the worker sent {other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn a_parked_job_says_so_once_is_acknowledged_and_sends_no_result() {
    let prefix = format!("baton-park-test-{}", uuid::Uuid::new_v4().simple());
    let queue = Arc::new(
        RedisQueue::connect(RedisQueueConfig::new(baton_testkit::redis_url(), &prefix))
            .await
            .expect("Redis at REDIS_URL"),
    );
    queue.join_kinds(&[KIND.to_owned()]).await.unwrap();
    let hold = Hold::new();
    let (parks, gate) = (hold.parks.clone(), hold.gate.clone());
    let pool = WorkerPool::new(queue.clone(), config("parker")).with_executor(KIND, Arc::new(hold));
    let stop = CancellationToken::new();
    let worker = tokio::spawn(pool.run(stop.clone()));

    // `now` parks at once: its start, saying it is parked, leaves with the acknowledgement.
    // `gated` parks only after it has run long enough to report its start on its own: then a
    // second start says it is parked, so the runner stops looking for its job.
    let job = |step_id: &str, input: Value| v1::Job {
        run_id: "run".into(),
        step_id: step_id.into(),
        kind: KIND.into(),
        attempt: 1,
        input_json: input.to_string(),
        ..Default::default()
    };
    queue
        .dispatch(
            &[
                job("now", json!({"question": "a"})),
                job("gated", json!({"question": "b", "gate": true})),
            ],
            &[],
        )
        .await
        .unwrap();
    let mut sent = Sent::default();
    let deadline = tokio::time::Instant::now() + WAIT;
    while sent.started.len() < 2 || sent.parked.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "both starts within {WAIT:?}: {sent:?}"
        );
        sent.read(&queue, Duration::from_millis(200)).await;
    }
    gate.add_permits(1);
    wait_until_no_jobs_are_held(queue.as_ref()).await;
    assert_eq!(parks.load(Ordering::SeqCst), 2);
    // The acknowledgements left with the last reports: whatever the worker sent is on the inbox.
    sent.read(&queue, Duration::from_millis(200)).await;
    assert_eq!(
        sent.started,
        HashMap::from([("now".to_owned(), 1), ("gated".to_owned(), 2)]),
        "a start, and one saying it is parked unless the first did"
    );
    assert_eq!(
        sent.parked,
        HashMap::from([("now".to_owned(), 1), ("gated".to_owned(), 1)]),
        "each parked attempt says so once"
    );
    assert!(
        sent.results.is_empty(),
        "a parked attempt has no result yet: {sent:?}"
    );

    stop.cancel();
    tokio::time::timeout(WAIT, worker)
        .await
        .expect("the worker stops")
        .unwrap()
        .unwrap();
    assert_eq!(parks.load(Ordering::SeqCst), 2, "nothing ran again");
    delete_keys(&prefix).await;
}

const WORKFLOW: &str = "owner: t\nname: approve\nversion: 1\nsteps:\n  - {id: ask, kind: hold, input: {question: \"{{ inputs.question }}\"}}\n  - {id: after, kind: echo, needs: [ask], input: {decision: \"{{ steps.ask.output.decision }}\"}}\n";

#[tokio::test]
async fn a_parked_step_completes_when_its_result_arrives_and_a_worker_restart_loses_nothing() {
    let stack = TestStack::start_with(StackOptions {
        extra_kinds: vec![KIND.to_owned()],
        ..Default::default()
    })
    .await
    .unwrap();
    stack.register(WORKFLOW).await.unwrap();
    let queue: Arc<dyn Queue> = stack.queue.clone();
    let hold = Arc::new(Hold::new());
    let parks = hold.parks.clone();
    let first = WorkerPool::new(queue.clone(), config("hold-1")).with_executor(KIND, hold.clone());
    let first = tokio::spawn(first.run(CancellationToken::new()));

    let run = stack
        .start_run("t/approve@1", json!({"question": "ship?"}))
        .await
        .unwrap();
    // Parked: the step shows running, and no worker holds its job.
    let parked = stack
        .wait_for(&run.id, WAIT, |r| {
            // A queued run has no steps yet.
            r.steps
                .iter()
                .any(|s| s.step_id == "ask" && step_status(s) == StepStatus::Running)
        })
        .await
        .unwrap();
    assert_eq!(status(&parked), RunStatus::Running);
    assert_eq!(step_status(step(&parked, "after")), StepStatus::Pending);
    let attempt = step(&parked, "ask").attempt;
    assert_eq!(attempt, 1);
    wait_until_no_jobs_are_held(stack.queue.as_ref()).await;
    assert_eq!(parks.load(Ordering::SeqCst), 1);

    // The worker dies without draining, and another takes its place.
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    let stop = CancellationToken::new();
    let second = WorkerPool::new(queue.clone(), config("hold-2")).with_executor(KIND, hold.clone());
    let second = tokio::spawn(second.run(stop.clone()));
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let live = stack
            .queue
            .live_workers(unix_now_ms(), 10_000)
            .await
            .unwrap();
        if live.iter().any(|w| w.id == "hold-2:hold") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "hold-2 never beat");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let waiting = stack.get_run(&run.id).await.unwrap();
    assert_eq!(status(&waiting), RunStatus::Running);
    assert_eq!(step_status(step(&waiting, "ask")), StepStatus::Running);

    // The decision arrives through the runner inbox, as the API sends it.
    let decided = v1::RunnerMessage {
        message: Some(Message::JobResult(v1::JobResult {
            run_id: run.id.clone(),
            step_id: "ask".into(),
            attempt,
            outcome: v1::JobOutcome::Succeeded as i32,
            output_json: json!({"decision": "yes"}).to_string(),
            // The lease of the job that parked it: whoever answers for a parked step answers
            // for that dispatch, so an answer to an older one is fenced off.
            lease: 1,
            ..Default::default()
        })),
    };
    stack.queue.send_to_runner(&[decided]).await.unwrap();
    let done = stack.wait_for_end(&run.id, WAIT).await.unwrap();
    assert_eq!(status(&done), RunStatus::Completed, "{}", done.error);
    let ask = step(&done, "ask");
    assert_eq!(output(ask), json!({"decision": "yes"}));
    assert_eq!(
        ask.attempt, 1,
        "the parked attempt is the one that completed"
    );
    assert_eq!(ask.attempts.len(), 1, "{:?}", ask.attempts);
    assert_eq!(
        ask.attempts[0].worker_id, "hold-1",
        "the worker that parked it"
    );
    assert_eq!(output(step(&done, "after")), json!({"decision": "yes"}));
    assert_eq!(
        parks.load(Ordering::SeqCst),
        1,
        "the parked step never ran again"
    );

    stop.cancel();
    tokio::time::timeout(WAIT, second)
        .await
        .expect("the second worker stops")
        .unwrap()
        .unwrap();
    stack.stop().await;
}

fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
