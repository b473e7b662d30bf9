//! Run events and the guards on transitions: a run's events are numbered from 1 without gaps in
//! the order they happened, and a message that no longer applies (a duplicate, a result for a
//! replaced attempt, anything after the run ended) leaves the stored run as it was.

use baton_engine::{RunStatus, StepStatus, now_micros};
use baton_store::Store;
use serde_json::json;

use super::{Handles, fixtures::*};

pub async fn a_run_driven_to_its_end_has_gapless_ordered_events(h: Handles) {
    let wf = pipeline("acme", "etl", 1);
    h.a.put_workflow(new_workflow(&wf)).await.unwrap();
    let t0 = now_micros();
    let run = create(h.a.as_ref(), new_run("t", "acme/etl@1", t0)).await;
    let other = create(h.b.as_ref(), new_run("t", "acme/etl@1", t0)).await;

    let mut last = 1;
    for (i, mv) in pipeline_to_completion(run.id, t0).into_iter().enumerate() {
        // Alternate handles, as runner replicas take turns with a run.
        let store = if i % 2 == 0 { &h.a } else { &h.b };
        let (committed, _) = change(store.as_ref(), run.id, |r, fx| mv.apply(r, &wf, fx)).await;
        let stored = h.a.list_events(run.id, last, 1_000).await.unwrap();
        let records: Vec<_> = stored.iter().map(|e| e.record.clone()).collect();
        assert_eq!(
            records, committed.new_events,
            "commit returns the events it stored"
        );
        assert!(!records.is_empty(), "move {i} ({mv:?}) records something");
        last = committed.last_sequence;
    }

    let stored = events(h.b.as_ref(), run.id).await;
    let sequences: Vec<i64> = stored.iter().map(|e| e.record.sequence).collect();
    assert_eq!(
        sequences,
        (1..=12).collect::<Vec<_>>(),
        "numbered from 1, no gaps"
    );
    let detail = h.a.get_run(run.id).await.unwrap().unwrap();
    assert_eq!(detail.run.last_sequence, 12, "the run knows its last event");
    assert_eq!(detail.run.status, RunStatus::Completed);
    let kinds: Vec<_> = stored
        .iter()
        .map(|e| {
            (
                e.record.event_type,
                e.record.step_id.as_deref(),
                e.record.attempt,
            )
        })
        .collect();
    assert_eq!(kinds, pipeline_events());
    assert!(stored.iter().all(|e| e.run_id == run.id));
    let completed = &stored[7].record;
    assert_eq!(
        completed.output,
        Some(json!({ "rows": 3 })),
        "outputs are kept"
    );
    assert!(
        stored[4]
            .record
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("connection reset"),
        "messages are kept: {:?}",
        stored[4].record
    );
    let times: Vec<i64> = stored.iter().map(|e| e.record.time).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");

    let others = events(h.a.as_ref(), other.id).await;
    assert_eq!(others.len(), 1, "another run's events are its own");
}

pub async fn events_are_read_after_a_cursor_up_to_a_limit(h: Handles) {
    let wf = pipeline("acme", "etl", 1);
    let t0 = now_micros();
    let run = create(h.a.as_ref(), new_run("t", "acme/etl@1", t0)).await;
    for mv in pipeline_to_completion(run.id, t0) {
        change(h.a.as_ref(), run.id, |r, fx| mv.apply(r, &wf, fx)).await;
    }
    let all = events(h.b.as_ref(), run.id).await;
    assert_eq!(all.len(), 12);

    for limit in [1, 2, 5, 12] {
        let mut read = Vec::new();
        let mut after = 0;
        loop {
            let batch = h.b.list_events(run.id, after, limit).await.unwrap();
            assert!(batch.len() <= limit as usize, "at most {limit}");
            let Some(last) = batch.last() else { break };
            assert!(
                batch.iter().all(|e| e.record.sequence > after),
                "only after {after}"
            );
            after = last.record.sequence;
            read.extend(batch);
        }
        let read: Vec<_> = read.iter().map(|e| e.record.clone()).collect();
        let all: Vec<_> = all.iter().map(|e| e.record.clone()).collect();
        assert_eq!(read, all, "reading {limit} at a time");
    }
    let tail = h.a.list_events(run.id, 9, 100).await.unwrap();
    let tail: Vec<i64> = tail.iter().map(|e| e.record.sequence).collect();
    assert_eq!(tail, [10, 11, 12]);
    assert!(h.a.list_events(run.id, 12, 100).await.unwrap().is_empty());
    assert!(
        h.a.list_events(uuid::Uuid::new_v4(), 0, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn a_result_applied_twice_changes_nothing(h: Handles) {
    let wf = pipeline("acme", "etl", 1);
    let t0 = now_micros();
    let id = create(h.a.as_ref(), new_run("t", "acme/etl@1", t0))
        .await
        .id;
    let start = Move::Start { now: t0 + 1_000 };
    let fetched = Move::result(
        succeeded(id, "fetch", 1, "w1", json!({ "rows": 3 }), t0 + 2_000),
        t0 + 2_000,
    );
    let report_started = Move::Started(started(id, "report", 1, "w1", t0 + 3_000));
    for mv in [&start, &fetched, &report_started] {
        let (committed, _) = change(h.a.as_ref(), id, |r, fx| mv.apply(r, &wf, fx)).await;
        assert!(!committed.new_events.is_empty(), "{mv:?} applies once");
    }
    let before = Persisted::from(&load(h.b.as_ref(), id).await);
    assert_eq!(
        step(&load(h.a.as_ref(), id).await, "report").status,
        StepStatus::Running
    );

    // Again, through each handle: the one that applied them and one that did not.
    for store in [&h.a, &h.b] {
        for mv in [&start, &fetched, &report_started] {
            unchanged_by(store.as_ref(), id, &wf, mv, &before).await;
        }
    }
    assert_eq!(
        events(h.a.as_ref(), id).await.len() as i64,
        before.last_sequence
    );
}

pub async fn a_result_for_a_replaced_or_ended_attempt_changes_nothing(h: Handles) {
    let wf = pipeline("acme", "etl", 1);
    let t0 = now_micros();
    let id = create(h.a.as_ref(), new_run("t", "acme/etl@1", t0))
        .await
        .id;
    let moves = pipeline_to_completion(id, t0);
    // Started, failed, retried: attempt 2 of `fetch` is queued.
    for mv in &moves[..4] {
        change(h.a.as_ref(), id, |r, fx| mv.apply(r, &wf, fx)).await;
    }
    let before = Persisted::from(&load(h.b.as_ref(), id).await);
    let fetch = &before.steps[0];
    assert_eq!((fetch.status, fetch.attempt), (StepStatus::Queued, 2));

    let late = [
        Move::result(
            succeeded(id, "fetch", 1, "w1", json!("late"), t0 + 50_000),
            t0 + 50_000,
        ),
        Move::Started(started(id, "fetch", 1, "w1", t0 + 50_000)),
        Move::result(
            failed(id, "fetch", 1, "w1", "late failure", t0 + 50_000),
            t0 + 50_000,
        ),
        Move::result(
            succeeded(id, "fetch", 3, "w1", json!("early"), t0 + 50_000),
            t0 + 50_000,
        ),
        Move::result(
            succeeded(id, "report", 1, "w1", json!("not queued"), t0 + 50_000),
            t0 + 50_000,
        ),
    ];
    for store in [&h.a, &h.b] {
        for mv in &late {
            unchanged_by(store.as_ref(), id, &wf, mv, &before).await;
        }
    }

    // Once the run ends nothing applies, not even the current attempt's result.
    let abort = Move::Abort {
        status: RunStatus::Cancelled,
        now: t0 + 60_000_000,
    };
    let (ended, fx) = change(h.b.as_ref(), id, |r, fx| abort.apply(r, &wf, fx)).await;
    assert_eq!(ended.status, RunStatus::Cancelled);
    assert_eq!(fx.cancelled_runs.len(), 1);
    let ended = Persisted::from(&load(h.a.as_ref(), id).await);
    assert!(
        ended
            .steps
            .iter()
            .all(|s| s.status == StepStatus::Cancelled),
        "{:?}",
        ended.steps
    );
    for mv in [
        moves[4].clone(),
        Move::Started(started(id, "fetch", 2, "w2", t0 + 61_000_000)),
        Move::Wake {
            now: t0 + 62_000_000,
        },
        Move::Start {
            now: t0 + 62_000_000,
        },
        abort.clone(),
        Move::Abort {
            status: RunStatus::TimedOut,
            now: t0 + 63_000_000,
        },
    ] {
        unchanged_by(h.a.as_ref(), id, &wf, &mv, &ended).await;
    }
}

/// Applies `mv` in a batch of `store` and checks it changed nothing, in memory or stored.
async fn unchanged_by(
    store: &dyn Store,
    id: uuid::Uuid,
    wf: &baton_workflow::CompiledWorkflow,
    mv: &Move,
    before: &Persisted,
) {
    let (committed, fx) = change(store, id, |r, fx| {
        mv.apply(r, wf, fx);
        assert!(
            !r.is_changed(),
            "{mv:?} changed the run: {:?}",
            r.new_events
        );
    })
    .await;
    assert!(committed.new_events.is_empty(), "{mv:?}");
    assert!(
        fx.jobs.is_empty() && fx.timers.is_empty(),
        "{mv:?} asked for work: {fx:?}"
    );
    assert_eq!(&Persisted::from(&load(store, id).await), before, "{mv:?}");
}
