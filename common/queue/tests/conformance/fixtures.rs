//! Messages the checks send, and waiting for a queue to reach a state: every wait has a
//! deadline and polls, so a slow machine only makes a check slower.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use baton_proto::v1::{self, runner_message::Message};
use baton_queue::{Delivery, JobStream, RunnerInbox};

/// The job kind the checks use.
pub const KIND: &str = "work";

/// How long any wait may take before the check fails; far beyond what any step needs.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub fn job(run: u32, step: &str, attempt: u32) -> v1::Job {
    v1::Job {
        run_id: format!("run-{run}"),
        step_id: step.to_owned(),
        kind: KIND.to_owned(),
        attempt,
        input_json: format!(r#"{{"n":{run}}}"#),
        timeout_ms: 5_000,
        workflow_ref: "acme/etl@1".into(),
        tenant: "t".into(),
        ..Default::default()
    }
}

pub fn start(run: u32) -> v1::RunnerMessage {
    v1::RunnerMessage {
        message: Some(Message::StartRun(v1::StartRunCommand {
            run_id: format!("run-{run}"),
            trace_context: Default::default(),
        })),
    }
}

pub fn result(job: &v1::Job) -> v1::RunnerMessage {
    v1::RunnerMessage {
        message: Some(Message::JobResult(v1::JobResult {
            run_id: job.run_id.clone(),
            step_id: job.step_id.clone(),
            attempt: job.attempt,
            outcome: v1::JobOutcome::Succeeded as i32,
            output_json: "{}".into(),
            worker_id: "w1".into(),
            lease: job.lease,
            ..Default::default()
        })),
    }
}

pub fn event(run: u32, sequence: i64) -> v1::RunEvent {
    v1::RunEvent {
        run_id: format!("run-{run}"),
        sequence,
        r#type: v1::RunEventType::StepQueued as i32,
        step_id: "fetch".into(),
        attempt: 1,
        workflow_ref: "acme/etl@1".into(),
        tenant: "t".into(),
        ..Default::default()
    }
}

pub fn letter(stream: &str, entry_id: &str, reason: &str, payload: Vec<u8>) -> v1::DeadLetter {
    v1::DeadLetter {
        stream: stream.to_owned(),
        entry_id: entry_id.to_owned(),
        reason: reason.to_owned(),
        payload,
        dead_at: Some(baton_proto::timestamp_from_micros(1_700_000_000_000_000)),
    }
}

/// The decoded message of a delivery, which must have decoded.
pub fn message<T: Clone + std::fmt::Debug>(d: &Delivery<T>) -> T {
    d.message
        .clone()
        .unwrap_or_else(|e| panic!("entry {} did not decode: {e}", d.id))
}

pub fn messages<T: Clone + std::fmt::Debug>(ds: &[Delivery<T>]) -> Vec<T> {
    ds.iter().map(message).collect()
}

pub fn ids<T>(ds: &[Delivery<T>]) -> Vec<String> {
    ds.iter().map(|d| d.id.clone()).collect()
}

/// Polls `attempt` until it returns something, failing after [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let began = Instant::now();
    loop {
        if let Some(v) = attempt().await {
            return v;
        }
        assert!(
            began.elapsed() < PATIENCE,
            "{what}: not within {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Takes exactly `n` jobs for `consumer`, then checks no more are waiting.
pub async fn take_jobs(q: &dyn JobStream, consumer: &str, n: usize) -> Vec<Delivery<v1::Job>> {
    let taken = take_first_jobs(q, consumer, n).await;
    let extra = q
        .read_jobs(KIND, consumer, 10, Duration::from_millis(10))
        .await
        .expect("read_jobs");
    assert!(
        extra.is_empty(),
        "more than {n} jobs: {:?}",
        messages(&extra)
    );
    taken
}

/// Takes the first `n` jobs for `consumer`, leaving the rest.
pub async fn take_first_jobs(
    q: &dyn JobStream,
    consumer: &str,
    n: usize,
) -> Vec<Delivery<v1::Job>> {
    let mut taken = Vec::new();
    let began = Instant::now();
    while taken.len() < n {
        assert!(
            began.elapsed() < PATIENCE,
            "only {} of {n} jobs came",
            taken.len()
        );
        let more = q
            .read_jobs(KIND, consumer, n - taken.len(), Duration::from_millis(500))
            .await
            .expect("read_jobs");
        taken.extend(more);
    }
    taken
}

/// Takes exactly `n` runner inbox messages for `consumer`, then checks no more are waiting.
pub async fn take_runner(
    q: &dyn RunnerInbox,
    consumer: &str,
    n: usize,
) -> Vec<Delivery<v1::RunnerMessage>> {
    let mut taken = Vec::new();
    let began = Instant::now();
    while taken.len() < n {
        assert!(
            began.elapsed() < PATIENCE,
            "only {} of {n} messages came",
            taken.len()
        );
        let more = q
            .read_runner(consumer, n - taken.len(), Duration::from_millis(500))
            .await
            .expect("read_runner");
        taken.extend(more);
    }
    let extra = q
        .read_runner(consumer, 10, Duration::from_millis(10))
        .await
        .expect("read_runner");
    assert!(
        extra.is_empty(),
        "more than {n} messages: {:?}",
        messages(&extra)
    );
    taken
}

/// The run a wake-up is for.
pub fn woken(m: &v1::RunnerMessage) -> String {
    match &m.message {
        Some(Message::WakeRun(w)) => w.run_id.clone(),
        other => panic!("not a wake-up: {other:?}"),
    }
}
