//! Admission control: past `BATON_MAX_RUNNING_RUNS` running runs, a run waits `queued` in the
//! store and starts, oldest first, as others end; runs one replica held back are started by
//! another if it stops. Against the backend `BATON_TEST_BACKEND` names.

use std::time::Duration;

use baton_engine::now_micros;
use baton_proto::v1::RunStatus;
use baton_testkit::{StackOptions, TestStack, http_get, status};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Two short waits, so a run holds its place long enough for the bound to show.
const SLOW: &str = "owner: t\nname: slow\nversion: 1\n\
    steps:\n\
    - {id: a, kind: sleep, input: {duration: 120ms}}\n\
    - {id: b, kind: echo, needs: [a], input: {text: 'done {{ inputs.n }}'}}\n";

fn counter(exposition: &str, name: &str) -> f64 {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn started_micros(run: &baton_proto::v1::Run) -> i64 {
    baton_proto::timestamp_to_micros(run.started_at.as_ref().expect("a started run"))
}

#[tokio::test]
async fn a_burst_past_the_bound_waits_queued_and_starts_oldest_first() {
    let options = StackOptions::default().runner_env("BATON_MAX_RUNNING_RUNS", "3");
    let stack = TestStack::start_with(options).await.unwrap();
    stack.register(SLOW).await.unwrap();

    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(
            stack
                .start_run("t/slow@1", json!({ "n": n }))
                .await
                .unwrap()
                .id,
        );
    }
    for id in &ids {
        stack
            .wait_for(id, Duration::from_secs(10), |r| {
                status(r) != RunStatus::Queued
            })
            .await
            .unwrap();
    }
    // The bound is taken: these wait, and start in the order they came.
    for n in 3..12 {
        ids.push(
            stack
                .start_run("t/slow@1", json!({ "n": n }))
                .await
                .unwrap()
                .id,
        );
        tokio::time::sleep(Duration::from_millis(3)).await;
    }

    let mut saw_held = false;
    let mut most_running = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let running = stack.store.running_runs().await.unwrap();
        let queued = stack.store.queued_runs(now_micros(), 100).await.unwrap();
        most_running = most_running.max(running);
        saw_held |= running == 3 && !queued.is_empty();
        if running == 0 && queued.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "runs still going: {running} running, {} queued",
            queued.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        most_running <= 3,
        "at most 3 ran at once, saw {most_running}"
    );
    assert!(saw_held, "runs waited queued while 3 were running");

    let mut started = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        let run = stack
            .wait_for_end(id, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(status(&run), RunStatus::Completed, "run {n}: {run:?}");
        assert_eq!(
            run.steps[1].output_json,
            json!({ "text": format!("done {n}") }).to_string()
        );
        started.push(started_micros(&run));
    }
    let held = &started[3..];
    assert!(
        held.windows(2).all(|w| w[0] <= w[1]),
        "held-back runs started oldest first: {held:?}"
    );
    assert!(
        held[0] >= *started[..3].iter().max().unwrap(),
        "held-back runs started after the first three: {started:?}"
    );

    let (code, _, body) = http_get(stack.runner_metrics[0], "/metrics").await.unwrap();
    assert_eq!(code, 200);
    let held_total = counter(
        &String::from_utf8(body).unwrap(),
        "baton_run_starts_held_total",
    );
    // Most of the nine wait; one arriving after the backlog drained may start at once.
    assert!(held_total >= 1.0, "starts were held back: {held_total}");
    stack.stop().await;
}

#[tokio::test]
async fn runs_held_back_by_a_replica_that_stopped_are_started_by_another() {
    let options = StackOptions {
        runners: 0,
        ..StackOptions::default()
    }
    .runner_env("BATON_MAX_RUNNING_RUNS", "2")
    .runner_env("BATON_SWEEP_INTERVAL", "200ms")
    .runner_env("BATON_SWEEP_GRACE", "1s")
    .runner_env("BATON_VISIBILITY_TIMEOUT", "2s")
    .runner_env("BATON_INBOX_VISIBILITY", "2s");
    let mut stack = TestStack::start_with(options).await.unwrap();
    let first = CancellationToken::new();
    stack.spawn_runner("first", first.clone()).await.unwrap();
    stack.register(SLOW).await.unwrap();
    let mut ids = Vec::new();
    for n in 0..8 {
        ids.push(
            stack
                .start_run("t/slow@1", json!({ "n": n }))
                .await
                .unwrap()
                .id,
        );
    }
    // The first replica takes two and holds the rest back.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let running = stack.store.running_runs().await.unwrap();
        let queued = stack.store.queued_runs(now_micros(), 100).await.unwrap();
        if running > 0 && queued.len() >= 4 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first replica did not hold runs back: {running} running, {} queued",
            queued.len()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The second replica starts before the first stops (the stack waits for its workers to
    // listen, beside the first's); only the first knows it holds runs back.
    let second = CancellationToken::new();
    stack.spawn_runner("second", second.clone()).await.unwrap();
    first.cancel();

    for (n, id) in ids.iter().enumerate() {
        let run = stack
            .wait_for_end(id, Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("run {n} never ended: {e}"));
        assert_eq!(status(&run), RunStatus::Completed, "run {n}: {run:?}");
    }
    second.cancel();
    stack.stop().await;
}
