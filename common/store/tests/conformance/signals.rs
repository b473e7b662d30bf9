//! What the store tells operators and the runner's sweep: runs a lost timer would leave behind,
//! counts by status, and each run's attempt history with the workers that ran it.

use std::collections::BTreeMap;

use baton_engine::{RunStatus, StepStatus, now_micros};
use baton_store::WorkerHost;
use uuid::Uuid;

use super::{Handles, fixtures::*};

/// Runs in every state the sweep and the counts tell apart, around `t0`.
struct Zoo {
    queued_old: Uuid,
    queued_new: Uuid,
    retrying: Uuid,
    past_deadline: Uuid,
}

const SECOND: i64 = 1_000_000;

async fn zoo(h: &Handles, t0: i64) -> Zoo {
    let wf = pipeline("acme", "etl", 1);
    let s = h.a.as_ref();
    let queued_old = create(s, new_run("t", "acme/etl@1", t0)).await.id;
    let queued_new = create(s, new_run("t", "acme/etl@1", t0 + 10 * SECOND))
        .await
        .id;

    // Started, `fetch` failed once: its retry is due at t0 + 13 s.
    let retrying = create(s, new_run("t", "acme/etl@1", t0)).await.id;
    for mv in &pipeline_to_completion(retrying, t0)[..3] {
        change(s, retrying, |r, fx| mv.apply(r, &wf, fx)).await;
    }
    // Started two hours ago, so its one-hour deadline passed; `fetch` is still queued.
    let past_deadline = create(s, new_run("t", "acme/etl@1", t0 - 3 * 3_600 * SECOND))
        .await
        .id;
    let start = Move::Start {
        now: t0 - 2 * 3_600 * SECOND,
    };
    change(s, past_deadline, |r, fx| start.apply(r, &wf, fx)).await;

    // Ended runs are never overdue, whatever their deadline.
    let done = create(s, new_run("t", "acme/etl@1", t0 - 3 * 3_600 * SECOND))
        .await
        .id;
    for mv in pipeline_to_completion(done, t0 - 3 * 3_600 * SECOND) {
        change(s, done, |r, fx| mv.apply(r, &wf, fx)).await;
    }
    let cancelled = create(s, new_run("t", "acme/etl@1", t0 - 3 * 3_600 * SECOND))
        .await
        .id;
    for mv in [
        Move::Start {
            now: t0 - 2 * 3_600 * SECOND,
        },
        Move::Abort {
            status: RunStatus::Cancelled,
            now: t0 - 2 * 3_600 * SECOND,
        },
    ] {
        change(s, cancelled, |r, fx| mv.apply(r, &wf, fx)).await;
    }
    Zoo {
        queued_old,
        queued_new,
        retrying,
        past_deadline,
    }
}

pub async fn overdue_runs_are_those_due_past_the_grace(h: Handles) {
    let t0 = now_micros();
    let z = zoo(&h, t0).await;
    let overdue = |now: i64, grace: i64, limit: i64| {
        let store = h.b.clone();
        async move {
            let mut found = store.overdue_runs(now, grace, limit).await.unwrap();
            found.sort();
            found
        }
    };
    assert_eq!(
        overdue(t0 + 5 * SECOND, SECOND, 100).await,
        [z.past_deadline],
        "at t0 + 5 s"
    );
    let mut want = vec![z.retrying, z.past_deadline];
    want.sort();
    assert_eq!(
        overdue(t0 + 20 * SECOND, SECOND, 100).await,
        want,
        "at t0 + 20 s"
    );
    // The grace holds back what is only just due.
    assert_eq!(
        overdue(t0 + 20 * SECOND, 20 * SECOND, 100).await,
        [z.past_deadline],
        "with a grace of 20 s"
    );
    assert_eq!(overdue(t0 + 20 * SECOND, SECOND, 1).await.len(), 1);
}

pub async fn queued_runs_come_oldest_first_and_running_ones_are_counted(h: Handles) {
    let t0 = now_micros();
    let z = zoo(&h, t0).await;
    let queued = |before: i64, limit: i64| {
        let store = h.b.clone();
        async move { store.queued_runs(before, limit).await.unwrap() }
    };
    assert_eq!(queued(t0 + 5 * SECOND, 100).await, [z.queued_old]);
    assert_eq!(
        queued(t0 + 20 * SECOND, 100).await,
        [z.queued_old, z.queued_new],
        "oldest first"
    );
    assert_eq!(queued(t0 + 20 * SECOND, 1).await, [z.queued_old]);
    assert!(
        queued(t0, 100).await.is_empty(),
        "created at t0, not before"
    );
    // `retrying` and `past_deadline` run; the finished and cancelled ones do not count.
    assert_eq!(h.a.running_runs().await.unwrap(), 2);
}

pub async fn status_counts_count_runs_and_steps_by_status(h: Handles) {
    let empty = h.a.status_counts().await.unwrap();
    assert!(empty.runs.is_empty() && empty.steps.is_empty(), "{empty:?}");
    h.a.ping().await.unwrap();

    zoo(&h, now_micros()).await;
    let counts = h.b.status_counts().await.unwrap();
    let map = |pairs: &[(&str, i64)]| -> BTreeMap<String, i64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    };
    assert_eq!(
        counts.runs,
        map(&[
            ("queued", 2),
            ("running", 2),
            ("completed", 1),
            ("cancelled", 1)
        ])
    );
    assert_eq!(
        counts.steps,
        map(&[
            ("retrying", 1),
            ("pending", 2),
            ("queued", 1),
            ("completed", 2),
            ("cancelled", 2),
        ])
    );
    assert_eq!(
        counts.active_steps,
        map(&[("retrying", 1), ("pending", 2), ("queued", 1)]),
        "steps of running runs only"
    );
    assert_eq!(counts.retrying_by_kind, map(&[(KIND, 1)]));
}

pub async fn run_detail_lists_every_finished_attempt_with_its_workers(h: Handles) {
    let wf = pipeline("acme", "etl", 1);
    let t0 = now_micros();
    let id = create(h.a.as_ref(), new_run("t", "acme/etl@1", t0))
        .await
        .id;
    h.a.record_workers(&[host("w1", "old-host"), host("w3", "idle-host")])
        .await
        .unwrap();
    let moves = pipeline_to_completion(id, t0);

    let attempts = |h: &Handles| {
        let store = h.b.clone();
        async move {
            let detail = store.get_run(id).await.unwrap().expect("the run");
            let attempts: Vec<_> = detail
                .attempts
                .iter()
                .map(|a| (a.step_id.clone(), a.attempt, a.status, a.worker_id.clone()))
                .collect();
            (detail, attempts)
        }
    };
    let row = |step: &str, attempt: u32, status: StepStatus, worker: &str| {
        (step.to_owned(), attempt, status, Some(worker.to_owned()))
    };

    // Before anything finished, and while `fetch` is being retried.
    for (i, mv) in moves.iter().enumerate() {
        if i == 3 {
            let (_, seen) = attempts(&h).await;
            assert_eq!(
                seen,
                [row("fetch", 1, StepStatus::Failed, "w1")],
                "retrying"
            );
        }
        if i <= 2 {
            assert!(
                attempts(&h).await.1.is_empty(),
                "nothing finished before move {i}"
            );
        }
        change(h.a.as_ref(), id, |r, fx| mv.apply(r, &wf, fx)).await;
    }

    h.b.record_workers(&[host("w1", "new-host"), host("w2", "other-host")])
        .await
        .unwrap();
    let (detail, seen) = attempts(&h).await;
    assert_eq!(
        seen,
        [
            row("fetch", 1, StepStatus::Failed, "w1"),
            row("fetch", 2, StepStatus::Completed, "w2"),
            row("report", 1, StepStatus::Completed, "w1"),
        ],
        "every attempt, in the order they ended"
    );
    let first = &detail.attempts[0];
    assert_eq!(first.error.as_deref(), Some("connection reset"));
    assert_eq!(
        (first.queued_at, first.started_at, first.ended_at),
        (Some(t0 + 1_000), Some(t0 + 2_000), t0 + 3_000)
    );
    assert_eq!(detail.attempts[1].error, None);
    assert_eq!(detail.attempts[1].usage.map(|u| u.cpu_percent), Some(42.5));

    let workers: Vec<(&str, &str)> = detail
        .workers
        .iter()
        .map(|w| (w.worker_id.as_str(), w.hostname.as_str()))
        .collect();
    assert_eq!(
        workers,
        [("w1", "new-host"), ("w2", "other-host")],
        "the workers that ran it, with their latest facts"
    );
    assert_eq!(
        detail.workers[1],
        host("w2", "other-host"),
        "every fact is kept"
    );
}

fn host(worker: &str, hostname: &str) -> WorkerHost {
    WorkerHost {
        worker_id: worker.to_owned(),
        os: "linux".into(),
        arch: "x86_64".into(),
        hostname: hostname.to_owned(),
        physical_cores: 4,
        logical_cores: 8,
        total_memory_mb: 15_872.5,
        runtime_version: "1.85.0".into(),
        container_runtime: "none".into(),
        pid: 4242,
    }
}
