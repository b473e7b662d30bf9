//! Retention: finished runs older than a cut-off are deleted oldest first, a few at a time, with
//! everything that belongs to them; runs still queued or running are never touched.

use baton_engine::{RunStatus, now_micros};
use uuid::Uuid;

use super::{Handles, fixtures::*};

const DAY: i64 = 24 * 3_600 * 1_000_000;

/// A run of [`pipeline`] created at `t0` and driven to completion (it ends about 10 s later).
async fn completed(h: &Handles, t0: i64, key: &str) -> Uuid {
    let wf = pipeline("acme", "etl", 1);
    let id = create(h.a.as_ref(), keyed(new_run("t", "acme/etl@1", t0), key))
        .await
        .id;
    for mv in pipeline_to_completion(id, t0) {
        change(h.a.as_ref(), id, |r, fx| mv.apply(r, &wf, fx)).await;
    }
    id
}

/// A run created at `t0` that started and was then ended with `status`.
async fn aborted(h: &Handles, t0: i64, status: RunStatus) -> Uuid {
    let wf = pipeline("acme", "etl", 1);
    let id = create(h.a.as_ref(), new_run("t", "acme/etl@1", t0))
        .await
        .id;
    for mv in [
        Move::Start { now: t0 + 1_000 },
        Move::Abort {
            status,
            now: t0 + 2_000,
        },
    ] {
        change(h.a.as_ref(), id, |r, fx| mv.apply(r, &wf, fx)).await;
    }
    id
}

/// Whether any trace of the run is left: the run, its detail, its events.
async fn is_gone(h: &Handles, id: Uuid) -> bool {
    let found = h.b.find_run(id).await.unwrap();
    let detail = h.b.get_run(id).await.unwrap();
    let events = h.b.list_events(id, 0, 1_000).await.unwrap();
    found.is_none() && detail.is_none() && events.is_empty()
}

pub async fn finished_runs_are_deleted_oldest_first_with_all_they_hold(h: Handles) {
    let now = now_micros();
    let old = now - 40 * DAY;
    // Oldest first by when they ended, not when they were created.
    let ended_first = aborted(&h, old + DAY, RunStatus::Cancelled).await;
    let ended_second = completed(&h, old + 2 * DAY, "second").await;
    let ended_third = aborted(&h, old + 3 * DAY, RunStatus::Failed).await;
    let ended_fourth = aborted(&h, old + 4 * DAY, RunStatus::TimedOut).await;
    let recent = completed(&h, now - DAY, "recent").await;
    // Unfinished, however old: still owed work.
    let queued = create(h.a.as_ref(), new_run("t", "acme/etl@1", old))
        .await
        .id;
    let running = {
        let wf = pipeline("acme", "etl", 1);
        let id = create(h.a.as_ref(), new_run("t", "acme/etl@1", old))
            .await
            .id;
        let start = Move::Start { now: old + 1_000 };
        change(h.a.as_ref(), id, |r, fx| start.apply(r, &wf, fx)).await;
        id
    };
    let cutoff = now - 30 * DAY;
    let detail = h.a.get_run(ended_second).await.unwrap().expect("the run");
    assert!(!detail.attempts.is_empty() && !detail.run.steps.is_empty());

    assert_eq!(h.b.delete_finished_runs(cutoff, 2).await.unwrap(), 2);
    for id in [ended_first, ended_second] {
        assert!(is_gone(&h, id).await, "run {id} is deleted with its rows");
    }
    for id in [ended_third, ended_fourth, recent, queued, running] {
        assert!(
            h.a.find_run(id).await.unwrap().is_some(),
            "run {id} is kept"
        );
    }
    // Its idempotency key went with it: the same key starts a new run.
    let again = create(
        h.a.as_ref(),
        keyed(new_run("t", "acme/etl@1", now), "second"),
    )
    .await;
    assert_ne!(again.id, ended_second);

    assert_eq!(h.a.delete_finished_runs(cutoff, 100).await.unwrap(), 2);
    for id in [ended_third, ended_fourth] {
        assert!(is_gone(&h, id).await, "run {id} is deleted");
    }
    assert_eq!(h.a.delete_finished_runs(cutoff, 100).await.unwrap(), 0);
    assert_eq!(h.a.delete_finished_runs(cutoff, 0).await.unwrap(), 0);

    // Whatever the cut-off, only finished runs go.
    assert_eq!(
        h.b.delete_finished_runs(i64::MAX, 100).await.unwrap(),
        1,
        "only the recent finished run"
    );
    assert!(is_gone(&h, recent).await);
    for id in [queued, running, again.id] {
        let run = h.a.find_run(id).await.unwrap().expect("kept");
        assert!(!run.status.is_terminal(), "{:?}", run.status);
        assert!(!events(h.a.as_ref(), id).await.is_empty());
    }
    let counts = h.a.status_counts().await.unwrap();
    assert_eq!(counts.runs.values().sum::<i64>(), 3, "{counts:?}");
}
