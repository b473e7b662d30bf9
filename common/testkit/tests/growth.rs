//! Bounded growth with the real runner: finished runs past `BATON_RETENTION` are deleted (and
//! counted in `baton_runs_deleted_total`) while unfinished ones stay, a finished run's deadline
//! timer leaves the queue with the run's last batch, and consumers of replicas that are gone
//! are removed from the queue's groups.

use std::time::Duration;

use baton_proto::v1::{self, RunStatus};
use baton_testkit::{BackendKind, StackOptions, TestStack, http_get, status};
use tonic::Code;

const WAIT: Duration = Duration::from_secs(30);

const ECHO: &str = "owner: t\nname: echo\nversion: 1\nexecution: { timeout: 5m }\nsteps:\n  - {id: say, kind: echo, input: {n: 1}}\n";
const SLEEPY: &str = "owner: t\nname: sleepy\nversion: 1\nsteps:\n  - {id: nap, kind: sleep, input: {duration: 10m}}\n";

/// The value of an unlabelled counter in a Prometheus text page, 0 when absent.
fn counter(page: &str, name: &str) -> f64 {
    page.lines()
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

async fn runner_metric(stack: &TestStack, name: &str) -> f64 {
    let (code, _, body) = http_get(stack.runner_metrics[0], "/metrics").await.unwrap();
    assert_eq!(code, 200);
    counter(&String::from_utf8_lossy(&body), name)
}

#[tokio::test]
async fn finished_runs_past_retention_are_deleted_and_unfinished_ones_kept() {
    let stack = TestStack::start_with(
        StackOptions::default()
            .runner_env("BATON_RETENTION", "1s")
            .runner_env("BATON_RETENTION_INTERVAL", "200ms")
            .runner_env("BATON_RETENTION_BATCH", "2"),
    )
    .await
    .unwrap();
    stack.register(ECHO).await.unwrap();
    stack.register(SLEEPY).await.unwrap();
    let sleeping = stack
        .start_run("t/sleepy@1", serde_json::json!({}))
        .await
        .unwrap();
    let mut finished = Vec::new();
    for _ in 0..5 {
        let run = stack
            .start_run("t/echo@1", serde_json::json!({}))
            .await
            .unwrap();
        let ended = stack.wait_for_end(&run.id, WAIT).await.unwrap();
        assert_eq!(status(&ended), RunStatus::Completed);
        finished.push(run.id);
    }

    let deadline = tokio::time::Instant::now() + WAIT;
    for id in &finished {
        loop {
            match stack.get_run(id).await {
                Err(e) if e.code() == Code::NotFound => break,
                Ok(run) => assert!(
                    tokio::time::Instant::now() < deadline,
                    "run {id} was not deleted: {run:?}"
                ),
                Err(e) => panic!("{e:?}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let events = stack
        .store
        .list_events(finished[0].parse().unwrap(), 0, 100)
        .await
        .unwrap();
    assert!(events.is_empty(), "its events went with it: {events:?}");
    let kept = stack.get_run(&sleeping.id).await.unwrap();
    assert_eq!(
        status(&kept),
        RunStatus::Running,
        "a running run is never deleted"
    );
    assert!(runner_metric(&stack, "baton_runs_deleted_total").await >= 5.0);
    // Cancelled, so stopping does not wait for the nap.
    stack
        .runs()
        .await
        .cancel_run(v1::CancelRunRequest {
            run_id: sleeping.id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap();
    stack.stop().await;
}

#[tokio::test]
async fn a_finished_runs_deadline_timer_leaves_the_queue_with_it() {
    let stack = TestStack::start().await.unwrap();
    stack.register(ECHO).await.unwrap();
    let run = stack
        .start_run("t/echo@1", serde_json::json!({}))
        .await
        .unwrap();
    let ended = stack.wait_for_end(&run.id, WAIT).await.unwrap();
    assert_eq!(status(&ended), RunStatus::Completed);
    // The run's five-minute deadline was set as a timer when it started; had it stayed, firing
    // every timer due within a day would move it.
    let day_ahead_ms = baton_engine::now_micros() / 1_000 + 86_400_000;
    let fired = stack
        .queue
        .fire_due_timers(day_ahead_ms, 100)
        .await
        .unwrap();
    assert_eq!(
        (fired.moved, fired.next_due_ms),
        (0, None),
        "no timer is left"
    );
    stack.stop().await;
}

#[tokio::test]
async fn consumers_of_gone_replicas_leave_the_groups() {
    let stack = TestStack::start_with(
        StackOptions::default()
            .runner_env("BATON_CONSUMER_IDLE_REMOVE", "1s")
            .runner_env("BATON_RETENTION_INTERVAL", "200ms"),
    )
    .await
    .unwrap();
    if stack.kind != BackendKind::Production {
        // The embedded queue keeps no consumers (see `remove_idle_consumers`).
        stack.stop().await;
        return;
    }
    // A worker of a kind no one else serves took its job, reported it and went away.
    let job = v1::Job {
        run_id: uuid::Uuid::new_v4().to_string(),
        step_id: "s".into(),
        kind: "ghostly".into(),
        attempt: 1,
        ..Default::default()
    };
    stack.queue.dispatch(&[job], &[]).await.unwrap();
    let taken = stack
        .queue
        .read_jobs("ghostly", "ghost", 1, WAIT)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    let ids: Vec<String> = taken.iter().map(|d| d.id.clone()).collect();
    stack.queue.report("ghostly", &[], &ids).await.unwrap();

    let client = redis::Client::open(baton_testkit::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let stream = baton_queue::RedisKeys::new(&stack.prefix).jobs("ghostly");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let consumers: redis::streams::StreamInfoConsumersReply = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(&stream)
            .arg("workers")
            .query_async(&mut conn)
            .await
            .unwrap();
        if consumers.consumers.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gone worker is still a consumer: {:?}",
            consumers
                .consumers
                .iter()
                .map(|c| &c.name)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(runner_metric(&stack, "baton_consumers_removed_total").await >= 1.0);

    // The live replica works on, whatever was removed.
    stack.register(ECHO).await.unwrap();
    let run = stack
        .start_run("t/echo@1", serde_json::json!({}))
        .await
        .unwrap();
    let ended = stack.wait_for_end(&run.id, WAIT).await.unwrap();
    assert_eq!(status(&ended), RunStatus::Completed);
    stack.stop().await;
}
