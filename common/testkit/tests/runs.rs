//! Runs end to end through the real services: DAG shapes, conditions, retries, timeouts, cancel
//! and concurrency limits.

use std::time::Duration;

use baton_proto::{
    prost_types::Timestamp,
    v1::{self, RunStatus, StepStatus},
};
use baton_queue::StreamStats;
use baton_testkit::{StackOptions, TestStack, output, status, step, step_status};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

/// A recorded time in Unix microseconds.
fn micros(t: &Option<Timestamp>) -> i64 {
    baton_proto::timestamp_to_micros(t.as_ref().expect("a recorded time"))
}

/// A recorded time in Unix milliseconds.
fn ms(t: &Option<Timestamp>) -> i64 {
    micros(t) / 1_000
}

/// Polls the queue's stream statistics until `check` holds, or fails after [`WAIT`].
async fn wait_for_streams(
    stack: &TestStack,
    kinds: &[&str],
    what: &str,
    check: impl Fn(&[StreamStats]) -> bool,
) -> Vec<StreamStats> {
    let kinds: Vec<String> = kinds.iter().map(|k| (*k).to_owned()).collect();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stats = stack.queue.stats(&kinds).await.unwrap();
        if check(&stats) {
            return stats;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} within {WAIT:?}: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether the stream `name` (`runner`, `jobs:<kind>`, `dead`) is empty and has nothing pending.
fn drained(stats: &[StreamStats], name: &str) -> bool {
    stats
        .iter()
        .any(|s| s.name == name && s.length == 0 && s.pending == 0)
}

#[tokio::test]
async fn hello_fans_out_and_in_with_the_right_outputs() {
    let stack = TestStack::start().await.unwrap();
    stack
        .register(include_str!("../../../examples/hello.yaml"))
        .await
        .unwrap();
    let run = stack
        .start_run("examples/hello@1", json!({"name": "Ada", "count": 3}))
        .await
        .unwrap();
    let run = stack.wait_for_end(&run.id, WAIT).await.unwrap();
    assert_eq!(status(&run), RunStatus::Completed, "{}", run.error);
    assert_eq!(
        output(step(&run, "greet")),
        json!({"message": "Hello, Ada", "count": 3})
    );
    assert_eq!(
        output(step(&run, "join")),
        json!({"total": 3, "text": "Hello, Ada!"})
    );
    let left = step(&run, "left");
    assert_eq!(left.attempt, 2);
    let attempts: Vec<StepStatus> = left
        .attempts
        .iter()
        .map(|a| StepStatus::try_from(a.status).unwrap())
        .collect();
    assert_eq!(attempts, vec![StepStatus::Failed, StepStatus::Completed]);
    // Every attempt says what it cost, and the worker that ran it is described once.
    for attempt in &left.attempts {
        let usage = attempt.usage.as_ref().expect("usage recorded");
        assert_eq!(
            usage.total_duration_ms,
            usage.queue_time_ms + usage.execution_time_ms
        );
        if cfg!(target_os = "linux") {
            assert!(
                usage.memory_peak_mb > 0.0 && usage.thread_count > 0,
                "{usage:?}"
            );
        }
    }
    let sleep = step(&run, "right").attempts[0].usage.unwrap();
    assert!(sleep.execution_time_ms >= 200, "{sleep:?}");
    assert_eq!(run.workers.len(), 1);
    let host = &run.workers[0];
    assert_eq!(host.worker_id, left.attempts[0].worker_id);
    assert_eq!(host.os, std::env::consts::OS);
    assert!(host.logical_cores >= 1);
    let run_output: serde_json::Value = serde_json::from_str(&run.output_json).unwrap();
    assert_eq!(
        run_output,
        json!({"join": {"total": 3, "text": "Hello, Ada!"}})
    );
    // right slept 200ms, after greet and before join.
    let (right, join) = (step(&run, "right"), step(&run, "join"));
    assert!(ms(&right.ended_at) - ms(&right.started_at) >= 200);
    assert!(ms(&join.started_at) >= ms(&right.ended_at));
    stack.stop().await;
}

#[tokio::test]
async fn wide_fan_out_passes_typed_values() {
    let stack = TestStack::start().await.unwrap();
    let mut yaml = String::from(
        "owner: t\nname: wide\nversion: 1\nexecution: {concurrency: {maxParallel: 8}}\nsteps:\n  - {id: src, kind: echo, input: {items: '{{ inputs.items }}', n: '{{ inputs.n }}'}}\n",
    );
    for i in 0..10 {
        yaml.push_str(&format!("  - {{id: w{i}, kind: echo, needs: [src], input: {{i: {i}, items: '{{{{ steps.src.output.items }}}}'}}}}\n"));
    }
    let all: Vec<String> = (0..10).map(|i| format!("w{i}")).collect();
    yaml.push_str(&format!(
        "  - {{id: sink, kind: echo, needs: [{}], input: {{first: '{{{{ steps.w0.output.items[0] }}}}', n: '{{{{ steps.src.output.n + 1 }}}}'}}}}\n",
        all.join(", ")
    ));
    stack.register(&yaml).await.unwrap();
    let run = stack
        .start_run("t/wide@1", json!({"items": [1, 2, 3], "n": 41}))
        .await
        .unwrap();
    let run = stack.wait_for_end(&run.id, WAIT).await.unwrap();
    assert_eq!(status(&run), RunStatus::Completed, "{}", run.error);
    for i in 0..10 {
        assert_eq!(
            output(step(&run, &format!("w{i}"))),
            json!({"i": i, "items": [1, 2, 3]})
        );
    }
    assert_eq!(output(step(&run, "sink")), json!({"first": 1, "n": 42}));
    stack.stop().await;
}

#[tokio::test]
async fn false_condition_skips_the_step() {
    let stack = TestStack::start().await.unwrap();
    stack
        .register(include_str!("../../../examples/hello.yaml"))
        .await
        .unwrap();
    let run = stack
        .start_run("examples/hello@1", json!({"name": "Bo", "count": 1}))
        .await
        .unwrap();
    let run = stack.wait_for_end(&run.id, WAIT).await.unwrap();
    assert_eq!(status(&run), RunStatus::Completed);
    let join = step(&run, "join");
    assert_eq!(step_status(join), StepStatus::Skipped);
    assert!(join.error.contains("inputs.count > 1"), "{}", join.error);
    assert!(join.attempts.is_empty());
    stack.stop().await;
}

#[tokio::test]
async fn exhausted_retries_fail_the_run_and_skip_dependents() {
    let stack = TestStack::start().await.unwrap();
    stack
        .register(
            "owner: t\nname: broken\nversion: 1\nexecution: {concurrency: {maxParallel: 2}}\nsteps:\n\
             - {id: bad, kind: fail, retry: {max_attempts: 3, initial: 10ms, max: 20ms}, input: {message: always broken}}\n\
             - {id: after, kind: noop, needs: [bad]}\n\
             - {id: other, kind: noop}\n",
        )
        .await
        .unwrap();
    let run = stack.start_run("t/broken@1", json!({})).await.unwrap();
    let run = stack.wait_for_end(&run.id, WAIT).await.unwrap();
    assert_eq!(status(&run), RunStatus::Failed);
    assert!(
        run.error.contains("step `bad` failed: always broken"),
        "{}",
        run.error
    );
    let bad = step(&run, "bad");
    assert_eq!(
        (step_status(bad), bad.attempt, bad.attempts.len()),
        (StepStatus::Failed, 3, 3)
    );
    assert_eq!(step_status(step(&run, "after")), StepStatus::Skipped);
    assert_eq!(step_status(step(&run, "other")), StepStatus::Completed);
    // The exhausted job goes to the dead-letter stream, written after the run's commit.
    let deadline = tokio::time::Instant::now() + WAIT;
    let dead = loop {
        let dead = stack.queue.dead_letters(10).await.unwrap();
        if !dead.is_empty() {
            break dead;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no dead letter within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0]
            .reason
            .contains("step `bad` failed on its last attempt"),
        "{}",
        dead[0].reason
    );
    stack.stop().await;
}

#[tokio::test]
async fn continue_on_failure_lets_dependents_run() {
    let stack = TestStack::start().await.unwrap();
    stack
        .register(
            "owner: t\nname: tolerant\nversion: 1\nsteps:\n\
             - {id: flaky, kind: fail, continue_on_failure: true}\n\
             - {id: report, kind: echo, needs: [flaky], input: {seen: '{{ steps.flaky.status }}'}}\n",
        )
        .await
        .unwrap();
    let run = stack.start_run("t/tolerant@1", json!({})).await.unwrap();
    let run = stack.wait_for_end(&run.id, WAIT).await.unwrap();
    assert_eq!(status(&run), RunStatus::Completed, "{}", run.error);
    assert_eq!(output(step(&run, "report")), json!({"seen": "failed"}));
    stack.stop().await;
}

#[tokio::test]
async fn step_timeout_fails_the_attempt() {
    let stack = TestStack::start().await.unwrap();
    stack
        .register(
            "owner: t\nname: slow\nversion: 1\nsteps:\n\
             - {id: nap, kind: sleep, timeout: 100ms, retry: {max_attempts: 2, initial: 10ms, max: 10ms}, input: {duration: 10m}}\n",
        )
        .await
        .unwrap();
    let run = stack.start_run("t/slow@1", json!({})).await.unwrap();
    let run = stack.wait_for_end(&run.id, WAIT).await.unwrap();
    assert_eq!(status(&run), RunStatus::Failed, "{run:?}");
    let nap = step(&run, "nap");
    assert_eq!(nap.attempts.len(), 2);
    assert!(nap.error.contains("timed out after 100ms"), "{}", nap.error);
    // Each attempt, as its worker recorded it, lasted the timeout: not less, and nowhere near
    // the ten-minute sleep.
    for attempt in &nap.attempts {
        assert_eq!(step_status_of(attempt), StepStatus::Failed, "{attempt:?}");
        let lasted = ms(&attempt.ended_at) - ms(&attempt.started_at);
        assert!((100..60_000).contains(&lasted), "{lasted} ms: {attempt:?}");
    }
    stack.stop().await;
}

#[tokio::test]
async fn run_timeout_times_the_run_out() {
    // The run's timer, not the sweep for lost wake-ups, must end it.
    let options = StackOptions::default().runner_env("BATON_SWEEP_GRACE", "10m");
    let stack = TestStack::start_with(options).await.unwrap();
    stack
        .register(
            "owner: t\nname: long\nversion: 1\nexecution: {timeout: 300ms}\nsteps:\n\
             - {id: nap, kind: sleep, input: {duration: 10m}}\n- {id: next, kind: noop, needs: [nap]}\n",
        )
        .await
        .unwrap();
    let run = stack.start_run("t/long@1", json!({})).await.unwrap();
    let run = stack.wait_for_end(&run.id, WAIT).await.unwrap();
    assert_eq!(status(&run), RunStatus::TimedOut, "{run:?}");
    assert_eq!(run.error, "run exceeded its timeout");
    assert!(
        run.steps
            .iter()
            .all(|s| step_status(s) == StepStatus::Cancelled && s.ended_at == run.ended_at),
        "{run:?}"
    );
    // The recorded times: the run lasted its timeout, not less, and nowhere near the sleep.
    let lasted = ms(&run.ended_at) - ms(&run.started_at);
    assert!((300..60_000).contains(&lasted), "{lasted} ms: {run:?}");
    stack.stop().await;
}

#[tokio::test]
async fn cancel_stops_pending_steps_and_the_running_job_on_its_worker() {
    let stack = TestStack::start().await.unwrap();
    stack
        .register(
            "owner: t\nname: cancellable\nversion: 1\nsteps:\n\
             - {id: nap, kind: sleep, input: {duration: 10m}}\n- {id: next, kind: noop, needs: [nap]}\n",
        )
        .await
        .unwrap();
    let run = stack.start_run("t/cancellable@1", json!({})).await.unwrap();
    stack
        .wait_for(&run.id, WAIT, |r| {
            r.steps
                .iter()
                .any(|s| s.step_id == "nap" && step_status(s) == StepStatus::Running)
        })
        .await
        .unwrap();
    let mut runs = stack.runs().await;
    let cancelled = runs
        .cancel_run(v1::CancelRunRequest {
            run_id: run.id.clone(),
            reason: "changed my mind".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    assert_eq!(status(&cancelled), RunStatus::Cancelled);
    let run = stack.get_run(&run.id).await.unwrap();
    assert_eq!(run.error, "changed my mind");
    assert!(
        run.steps
            .iter()
            .all(|s| step_status(s) == StepStatus::Cancelled)
    );
    let again = runs
        .cancel_run(v1::CancelRunRequest {
            run_id: run.id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::FailedPrecondition);
    // The worker heard the cancel: it acknowledges a job only once the job has ended, and this
    // one would otherwise sleep for ten minutes.
    wait_for_streams(
        &stack,
        &["sleep"],
        "the sleeping job was never stopped",
        |s| drained(s, "jobs:sleep"),
    )
    .await;
    // Its cancelled result reached the runner and changed nothing.
    wait_for_streams(&stack, &[], "the runner inbox never drained", |s| {
        drained(s, "runner")
    })
    .await;
    let later = stack.get_run(&run.id).await.unwrap();
    assert_eq!(later.last_sequence, run.last_sequence);
    assert_eq!(later.steps, run.steps);
    stack.stop().await;
}

/// Most steps of the run that overlapped in time, from their recorded start and end.
fn most_at_once(run: &v1::Run) -> usize {
    let mut edges: Vec<(i64, i32)> = Vec::new();
    for s in &run.steps {
        edges.push((micros(&s.started_at), 1));
        edges.push((micros(&s.ended_at), -1));
    }
    edges.sort();
    let (mut now, mut most) = (0, 0);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    most as usize
}

/// Six sleeps with no order between them. Each lasts long enough that the ones a limit lets run
/// together overlap even when a loaded machine is slow to start them.
fn parallel_sleeps(name: &str, max_parallel: Option<u32>) -> String {
    let execution = max_parallel
        .map(|n| format!("execution: {{concurrency: {{maxParallel: {n}}}}}\n"))
        .unwrap_or_default();
    let mut yaml = format!("owner: t\nname: {name}\nversion: 1\n{execution}steps:\n");
    for i in 0..6 {
        yaml.push_str(&format!(
            "  - {{id: s{i}, kind: sleep, input: {{duration: 500ms}}}}\n"
        ));
    }
    yaml
}

#[tokio::test]
async fn max_parallel_is_honoured() {
    let stack = TestStack::start().await.unwrap();
    stack
        .register(&parallel_sleeps("two", Some(2)))
        .await
        .unwrap();
    let run = stack.start_run("t/two@1", json!({})).await.unwrap();
    let run = stack.wait_for_end(&run.id, WAIT).await.unwrap();
    assert_eq!(status(&run), RunStatus::Completed);
    assert_eq!(most_at_once(&run), 2);
    stack.stop().await;
}

#[tokio::test]
async fn runner_default_applies_when_the_definition_sets_no_limit() {
    // ORCHESTRATION_MAX_CONCURRENCY wins over ORCHESTRATION_DEFAULT_MAX_PARALLEL.
    let options = StackOptions::default()
        .runner_env("ORCHESTRATION_MAX_CONCURRENCY", "3")
        .runner_env("ORCHESTRATION_DEFAULT_MAX_PARALLEL", "5");
    let stack = TestStack::start_with(options).await.unwrap();
    stack
        .register(&parallel_sleeps("default", None))
        .await
        .unwrap();
    stack
        .register(&parallel_sleeps("explicit", Some(6)))
        .await
        .unwrap();
    let run = stack.start_run("t/default@1", json!({})).await.unwrap();
    let explicit = stack.start_run("t/explicit@1", json!({})).await.unwrap();
    let run = stack.wait_for_end(&run.id, WAIT).await.unwrap();
    let explicit = stack.wait_for_end(&explicit.id, WAIT).await.unwrap();
    assert_eq!(most_at_once(&run), 3);
    assert_eq!(most_at_once(&explicit), 6);
    stack.stop().await;

    let stack = TestStack::start_with(
        StackOptions::default().runner_env("ORCHESTRATION_DEFAULT_MAX_PARALLEL", "2"),
    )
    .await
    .unwrap();
    stack
        .register(&parallel_sleeps("default", None))
        .await
        .unwrap();
    let run = stack.start_run("t/default@1", json!({})).await.unwrap();
    assert_eq!(
        most_at_once(&stack.wait_for_end(&run.id, WAIT).await.unwrap()),
        2
    );
    stack.stop().await;

    let stack = TestStack::start().await.unwrap();
    stack
        .register(&parallel_sleeps("default", None))
        .await
        .unwrap();
    let run = stack.start_run("t/default@1", json!({})).await.unwrap();
    assert_eq!(
        most_at_once(&stack.wait_for_end(&run.id, WAIT).await.unwrap()),
        1
    );
    stack.stop().await;
}

fn step_status_of(attempt: &v1::StepAttempt) -> StepStatus {
    StepStatus::try_from(attempt.status).unwrap_or_default()
}
