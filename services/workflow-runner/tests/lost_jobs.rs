//! Repair from the truth: when the queue loses its work (Redis restarted empty or flushed, the
//! embedded queue's entries deleted), every run still completes with no one touching it. Each
//! dispatched step holds a lease in the store; once it runs out the reconciler finds the job
//! gone and dispatches the step again under a new lease. Against the backend
//! `BATON_TEST_BACKEND` names.

use std::{path::Path, time::Duration};

use baton_proto::v1::{RunEventType, RunStatus, StepStatus};
use baton_testkit::{
    BackendKind, StackOptions, TestBackend, TestStack, http_get, status, step_status,
};
use serde_json::json;

/// Three steps that each wait, so a wipe finds jobs waiting, running and reported.
const SLOW_CHAIN: &str = "owner: t\nname: slow\nversion: 1\n\
    steps:\n\
    - {id: a, kind: sleep, input: {duration: 150ms}}\n\
    - {id: b, kind: sleep, needs: [a], input: {duration: 150ms}}\n\
    - {id: c, kind: echo, needs: [b], input: {text: 'done {{ inputs.n }}'}}\n";
const RUNS: usize = 24;

/// Deletes everything the queue holds for this stack, as a Redis restarted empty would.
async fn wipe_queue(stack: &TestStack, db_path: &Path) {
    match stack.kind {
        BackendKind::Production => {
            let client = redis::Client::open(baton_testkit::redis_url()).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}*", stack.prefix))
                .query_async(&mut conn)
                .await
                .unwrap();
            assert!(!keys.is_empty(), "nothing to wipe under {}", stack.prefix);
            redis::cmd("DEL")
                .arg(&keys)
                .query_async::<()>(&mut conn)
                .await
                .unwrap();
        }
        BackendKind::Embedded => {
            let pool = baton_sqlite::open(db_path, 1).await.unwrap();
            sqlx::query("DELETE FROM queue_entries")
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query("DELETE FROM queue_timers")
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    }
}

/// The value of an unlabelled counter in a Prometheus text exposition.
fn counter(exposition: &str, name: &str) -> f64 {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn every_run_completes_after_the_queue_loses_its_work() {
    let backend = TestBackend::from_env().await.unwrap();
    let db_path = backend.db_path.clone();
    let options = StackOptions::default()
        .runner_env("BATON_LEASE_TTL", "1s")
        .runner_env("BATON_RECONCILE_INTERVAL", "200ms")
        .runner_env("BATON_SWEEP_INTERVAL", "500ms")
        .runner_env("BATON_SWEEP_GRACE", "1s")
        // Few at a time, so most jobs are waiting on the stream when it goes.
        .runner_env("BATON_WORKER_CONCURRENCY", "4")
        .runner_env("ORCHESTRATION_DEFAULT_MAX_PARALLEL", "1");
    let stack = TestStack::start_on(backend, options).await.unwrap();
    stack.register(SLOW_CHAIN).await.unwrap();
    let mut ids = Vec::with_capacity(RUNS);
    for n in 0..RUNS {
        ids.push(
            stack
                .start_run("t/slow@1", json!({ "n": n }))
                .await
                .unwrap()
                .id,
        );
    }
    // Some steps are under way, most are waiting for a worker.
    tokio::time::sleep(Duration::from_millis(250)).await;
    wipe_queue(&stack, &db_path).await;

    for (n, id) in ids.iter().enumerate() {
        let run = stack
            .wait_for_end(id, Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("run {n} ({id}) never ended: {e}"));
        assert_eq!(status(&run), RunStatus::Completed, "run {n}: {run:?}");
        assert!(
            run.steps
                .iter()
                .all(|s| step_status(s) == StepStatus::Completed),
            "{run:?}"
        );
        assert_eq!(
            run.steps[2].output_json,
            json!({"text": format!("done {n}")}).to_string()
        );
        // Its history is whole: numbered 1..N, one end.
        let events = stack
            .store
            .list_events(id.parse().unwrap(), 0, 1_000)
            .await
            .unwrap();
        let sequences: Vec<i64> = events.iter().map(|e| e.record.sequence).collect();
        assert_eq!(sequences, (1..=events.len() as i64).collect::<Vec<_>>());
        let ends: Vec<_> = events
            .iter()
            .filter(|e| e.record.event_type == RunEventType::RunCompleted)
            .collect();
        assert_eq!(ends.len(), 1, "one end: {events:?}");
        assert_eq!(
            events.last().map(|e| e.record.sequence),
            Some(ends[0].record.sequence)
        );
    }

    let (code, _, body) = http_get(stack.runner_metrics[0], "/metrics").await.unwrap();
    assert_eq!(code, 200);
    let exposition = String::from_utf8(body).unwrap();
    let redispatched = counter(&exposition, "baton_steps_redispatched_total");
    assert!(
        redispatched >= 1.0,
        "the wipe lost waiting jobs, so some steps were dispatched again: {redispatched}"
    );
    stack.stop().await;
}

#[tokio::test]
async fn a_step_whose_job_is_only_slow_is_never_dispatched_twice() {
    // Leases run out long before the backlog is worked off: the reconciler must find the jobs
    // still waiting and extend their leases instead of running them again.
    let options = StackOptions::default()
        .runner_env("BATON_LEASE_TTL", "200ms")
        .runner_env("BATON_RECONCILE_INTERVAL", "100ms")
        .runner_env("BATON_WORKER_CONCURRENCY", "2");
    let stack = TestStack::start_with(options).await.unwrap();
    stack.register(SLOW_CHAIN).await.unwrap();
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
    for id in &ids {
        let run = stack
            .wait_for_end(id, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(status(&run), RunStatus::Completed, "{run:?}");
    }
    let (_, _, body) = http_get(stack.runner_metrics[0], "/metrics").await.unwrap();
    let exposition = String::from_utf8(body).unwrap();
    assert_eq!(
        counter(&exposition, "baton_steps_redispatched_total"),
        0.0,
        "{exposition}"
    );
    assert!(
        counter(&exposition, "baton_leases_renewed_total") >= 1.0,
        "the backlog outlived its leases, so some were renewed"
    );
    stack.stop().await;
}
