//! Run batches: what a batch commits is exactly what any handle loads next, a batch that is
//! dropped leaves no trace, and batches over the same runs take turns instead of losing each
//! other's changes or deadlocking.

use baton_engine::{RunStatus, StepStatus, now_micros};
use baton_proto::v1::RunEventType;
use serde_json::json;
use uuid::Uuid;

use super::{Handles, fixtures::*};

pub async fn what_a_batch_commits_is_what_the_next_batch_loads(h: Handles) {
    let wf = pipeline("acme", "etl", 1);
    let t0 = now_micros();
    let mut new = keyed(new_run("t", "acme/etl@1", t0), "k");
    new.trace_context
        .insert("tracestate".into(), "baton=1".into());
    let id = create(h.a.as_ref(), new).await.id;

    for (i, mv) in pipeline_to_completion(id, t0).iter().enumerate() {
        let (committed, _) = change(h.a.as_ref(), id, |r, fx| mv.apply(r, &wf, fx)).await;
        let committed = Persisted::from(&committed);
        // `a` may answer from what it remembers; `b` and `get_run` only from what was stored.
        let by_a = load(h.a.as_ref(), id).await;
        assert!(
            !by_a.is_changed(),
            "a freshly locked run has no changes to write"
        );
        assert_eq!(
            Persisted::from(&by_a),
            committed,
            "after move {i}, by the same handle"
        );
        let by_b = load(h.b.as_ref(), id).await;
        assert!(
            !by_b.is_changed(),
            "a freshly locked run has no changes to write"
        );
        assert_eq!(
            Persisted::from(&by_b),
            committed,
            "after move {i}, by another handle"
        );
        let read = h.b.get_run(id).await.unwrap().expect("the run");
        assert_eq!(
            Persisted::from(&read.run),
            committed,
            "after move {i}, by get_run"
        );
    }

    // Spot checks that the comparison above saw the fields that matter.
    let run = load(h.b.as_ref(), id).await;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.max_parallel, 2);
    assert_eq!(run.started_at, Some(t0 + 1_000));
    assert_eq!(run.deadline, Some(t0 + 1_000 + DEADLINE_MICROS));
    assert!(run.ended_at.is_some());
    assert_eq!(run.output, Some(json!({ "report": "sent" })));
    let fetch = step(&run, "fetch");
    assert_eq!((fetch.status, fetch.attempt), (StepStatus::Completed, 2));
    assert_eq!(fetch.output, Some(json!({ "rows": 3 })));
    assert_eq!(fetch.worker_id.as_deref(), Some("w2"));
    assert_eq!(fetch.usage.map(|u| u.thread_count), Some(7));
    assert_eq!(fetch.kind, KIND);
}

pub async fn a_batch_sees_what_another_handle_committed(h: Handles) {
    let wf = pipeline("acme", "etl", 1);
    let t0 = now_micros();
    let id = create(h.a.as_ref(), new_run("t", "acme/etl@1", t0))
        .await
        .id;
    let moves = pipeline_to_completion(id, t0);

    // Each handle in turn changes the run right after the other did, with nothing read in
    // between: each must start from the other's commit, not from what it committed last.
    let mut last = Persisted::from(&load(h.b.as_ref(), id).await);
    for (i, mv) in moves.iter().enumerate() {
        let mine = if i % 2 == 0 { &h.a } else { &h.b };
        let (committed, _) = change(mine.as_ref(), id, |r, fx| {
            assert_eq!(
                Persisted::from(&*r),
                last,
                "move {i} starts from the last commit"
            );
            mv.apply(r, &wf, fx);
        })
        .await;
        last = Persisted::from(&committed);
    }
    for store in [&h.a, &h.b] {
        assert_eq!(Persisted::from(&load(store.as_ref(), id).await), last);
    }
    let stored = events(h.a.as_ref(), id).await;
    assert_eq!(stored.len(), pipeline_events().len());
}

pub async fn a_dropped_batch_changes_nothing(h: Handles) {
    let wf = pipeline("acme", "etl", 1);
    let t0 = now_micros();
    let id = create(h.a.as_ref(), new_run("t", "acme/etl@1", t0))
        .await
        .id;
    let start = Move::Start { now: t0 + 1_000 };
    let queued = Persisted::from(&load(h.b.as_ref(), id).await);

    // Dropped before writing, and dropped after writing.
    for write in [false, true] {
        let mut batch = h.a.lock_runs(&[id]).await.unwrap();
        let mut fx = Default::default();
        start.apply(&mut batch.runs()[0], &wf, &mut fx);
        assert_eq!(batch.runs()[0].status, RunStatus::Running);
        if write {
            batch.write().await.unwrap();
        }
        drop(batch);
        for store in [&h.a, &h.b] {
            assert_eq!(
                Persisted::from(&load(store.as_ref(), id).await),
                queued,
                "write: {write}"
            );
        }
        assert_eq!(events(h.b.as_ref(), id).await.len(), 1, "write: {write}");
    }

    // The dropped batches used no sequence numbers.
    let (committed, _) = change(h.a.as_ref(), id, |r, fx| start.apply(r, &wf, fx)).await;
    assert_eq!(committed.new_events[0].sequence, 2);
    assert_eq!(committed.new_events[0].event_type, RunEventType::RunStarted);

    // Once started, a dropped change to the steps is forgotten too, by both handles.
    let running = Persisted::from(&committed);
    let mut batch = h.a.lock_runs(&[id]).await.unwrap();
    let mut fx = Default::default();
    moves_fetch_result(id, t0).apply(&mut batch.runs()[0], &wf, &mut fx);
    assert_eq!(batch.runs()[0].steps[0].status, StepStatus::Completed);
    batch.write().await.unwrap();
    drop(batch);
    for store in [&h.a, &h.b] {
        assert_eq!(Persisted::from(&load(store.as_ref(), id).await), running);
    }
}

fn moves_fetch_result(id: Uuid, t0: i64) -> Move {
    Move::result(
        succeeded(id, "fetch", 1, "w1", json!(1), t0 + 2_000),
        t0 + 2_000,
    )
}

pub async fn concurrent_batches_over_one_run_take_turns(h: Handles) {
    const STEPS: usize = 8;
    let wf = std::sync::Arc::new(fan_out(STEPS));
    let t0 = now_micros();
    let id = create(h.a.as_ref(), new_run("t", "conformance/fan-out@1", t0))
        .await
        .id;
    change(h.a.as_ref(), id, |r, fx| {
        Move::Start { now: t0 }.apply(r, &wf, fx)
    })
    .await;

    // Each batch starts another step; a batch that did not wait for the one before would lose
    // its step or reuse its sequence numbers.
    let batches = (0..STEPS).map(|i| {
        let store = if i % 2 == 0 { h.a.clone() } else { h.b.clone() };
        let wf = wf.clone();
        async move {
            let mv = Move::Started(started(id, &format!("s{i}"), 1, "w", t0 + 1 + i as i64));
            let (committed, _) = change(store.as_ref(), id, |r, fx| mv.apply(r, &wf, fx)).await;
            assert_eq!(committed.new_events.len(), 1, "step s{i} started once");
        }
    });
    concurrently(batches).await;

    let run = load(h.b.as_ref(), id).await;
    let statuses: Vec<StepStatus> = run.steps.iter().map(|s| s.status).collect();
    assert_eq!(
        statuses,
        [StepStatus::Running; STEPS],
        "no batch lost another's step"
    );
    let sequences: Vec<i64> = events(h.a.as_ref(), id)
        .await
        .iter()
        .map(|e| e.record.sequence)
        .collect();
    let total = 2 + 2 * STEPS as i64;
    assert_eq!(sequences, (1..=total).collect::<Vec<_>>());
    assert_eq!(run.last_sequence, total);
}

pub async fn batches_locking_runs_in_any_order_do_not_deadlock(h: Handles) {
    const RUNS: usize = 4;
    const ROUNDS: usize = 4;
    const BATCHES: usize = 8;
    const STEPS: usize = ROUNDS * BATCHES;
    let wf = std::sync::Arc::new(fan_out(STEPS));
    let t0 = now_micros();
    let mut ids = Vec::new();
    for _ in 0..RUNS {
        let id = create(h.a.as_ref(), new_run("t", "conformance/fan-out@1", t0))
            .await
            .id;
        change(h.a.as_ref(), id, |r, fx| {
            Move::Start { now: t0 }.apply(r, &wf, fx)
        })
        .await;
        ids.push(id);
    }

    // Rounds of batches at once, each locking every run in an order of its own; every batch
    // starts a step of its own in each run. Later rounds find the pools warm, so more batches
    // wait on each other's locks.
    for round in 0..ROUNDS {
        let batches = (0..BATCHES).map(|i| {
            let step = round * BATCHES + i;
            let store = if i % 2 == 0 { h.a.clone() } else { h.b.clone() };
            let wf = wf.clone();
            let mut order = ids.clone();
            order.rotate_left(i % RUNS);
            if i % 2 == 1 {
                order.reverse();
            }
            async move {
                let mut batch = store.lock_runs(&order).await.expect("lock_runs");
                let mut fx = Default::default();
                for run in batch.runs() {
                    let mv = Move::Started(started(run.id, &format!("s{step}"), 1, "w", t0 + 1));
                    mv.apply(run, &wf, &mut fx);
                }
                let committed = batch.commit().await.expect("every batch commits");
                assert_eq!(committed.len(), RUNS);
            }
        });
        concurrently(batches).await;
    }

    for id in ids {
        let run = load(h.b.as_ref(), id).await;
        assert!(
            run.steps.iter().all(|s| s.status == StepStatus::Running),
            "{:?}",
            run.steps
        );
        assert_eq!(
            events(h.a.as_ref(), id).await.len() as i64,
            2 + 2 * STEPS as i64
        );
    }
}

pub async fn locked_runs_come_in_id_order_without_unknown_ids(h: Handles) {
    let t0 = now_micros();
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(
            create(h.a.as_ref(), new_run("t", "acme/etl@1", t0))
                .await
                .id,
        );
    }
    let unknown = Uuid::new_v4();
    let asked = [ids[2], unknown, ids[0], ids[3], ids[2], ids[1]];
    let mut batch = h.b.lock_runs(&asked).await.unwrap();
    let locked: Vec<Uuid> = batch.runs().iter().map(|r| r.id).collect();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(locked, want, "each known run once, in id order");
    let committed = batch.commit().await.unwrap();
    assert_eq!(committed.iter().map(|r| r.id).collect::<Vec<_>>(), want);
    assert!(committed.iter().all(|r| r.new_events.is_empty()));

    let none = h.a.lock_runs(&[unknown]).await.unwrap();
    assert!(none.commit().await.unwrap().is_empty());
    assert!(
        h.a.lock_runs(&[])
            .await
            .unwrap()
            .commit()
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn json_null_is_kept_apart_from_no_value(h: Handles) {
    let wf = pipeline("acme", "etl", 1);
    let t0 = now_micros();
    let id = create(h.a.as_ref(), new_run("t", "acme/etl@1", t0))
        .await
        .id;
    // A worker that reports no output: `fetch` completes with the JSON value null, while
    // `report` (not run yet) and the run (not ended) have no output at all.
    let mut empty = succeeded(id, "fetch", 1, "w1", json!(null), t0 + 2_000);
    empty.output_json = String::new();
    for mv in [
        Move::Start { now: t0 + 1_000 },
        Move::result(empty, t0 + 2_000),
    ] {
        change(h.a.as_ref(), id, |r, fx| mv.apply(r, &wf, fx)).await;
    }
    let read = h.b.get_run(id).await.unwrap().expect("the run").run;
    for (what, run) in [
        ("by a", load(h.a.as_ref(), id).await),
        ("by b", load(h.b.as_ref(), id).await),
        ("by get_run", read),
    ] {
        assert_eq!(step(&run, "fetch").output, Some(json!(null)), "{what}");
        assert_eq!(step(&run, "report").output, None, "{what}");
        assert_eq!(run.output, None, "{what}");
        assert_eq!(step(&run, "fetch").error, None, "{what}");
    }
    let stored = events(h.b.as_ref(), id).await;
    let outputs: Vec<_> = stored
        .iter()
        .map(|e| (e.record.event_type, e.record.output.clone()))
        .collect();
    assert_eq!(
        outputs,
        [
            (RunEventType::RunQueued, None),
            (RunEventType::RunStarted, None),
            (RunEventType::StepQueued, None),
            (RunEventType::StepStarted, None),
            (RunEventType::StepCompleted, Some(json!(null))),
            (RunEventType::StepQueued, None),
        ]
    );
}

pub async fn a_batch_over_many_runs_writes_every_one(h: Handles) {
    // More runs, steps and events than any one statement's parameter limit would allow row by
    // row: a backend must not split or drop any of them.
    const RUNS: usize = 1_200;
    let wf = pipeline("acme", "etl", 1);
    let t0 = now_micros();
    let created =
        h.a.create_runs(
            (0..RUNS)
                .map(|i| new_run("t", "acme/etl@1", t0 + i as i64))
                .collect(),
        )
        .await
        .unwrap();
    let mut ids: Vec<Uuid> = created
        .into_iter()
        .map(|c| c.expect("created").0.id)
        .collect();
    ids.sort();

    let mut batch = h.b.lock_runs(&ids).await.unwrap();
    assert_eq!(batch.runs().len(), RUNS);
    let mut fx = Default::default();
    for run in batch.runs() {
        Move::Start { now: t0 + 1_000 }.apply(run, &wf, &mut fx);
    }
    let committed = batch.commit().await.unwrap();
    assert_eq!(committed.len(), RUNS);

    let mut batch = h.a.lock_runs(&ids).await.unwrap();
    let loaded: Vec<Persisted> = batch.runs().iter().map(Persisted::from).collect();
    let want: Vec<Persisted> = committed.iter().map(Persisted::from).collect();
    assert!(loaded == want, "every run as committed");
    for run in batch.runs() {
        let mv = Move::Started(started(run.id, "fetch", 1, "w", t0 + 2_000));
        mv.apply(run, &wf, &mut fx);
    }
    batch.commit().await.unwrap();
    for id in [ids[0], ids[RUNS / 2], ids[RUNS - 1]] {
        let run = load(h.b.as_ref(), id).await;
        assert_eq!(run.status, RunStatus::Running);
        assert_eq!(step(&run, "fetch").status, StepStatus::Running);
        assert_eq!(step(&run, "report").status, StepStatus::Pending);
        let sequences: Vec<i64> = events(h.a.as_ref(), id)
            .await
            .iter()
            .map(|e| e.record.sequence)
            .collect();
        assert_eq!(sequences, [1, 2, 3, 4]);
    }
    let counts = h.b.status_counts().await.unwrap();
    assert_eq!(counts.runs.get("running"), Some(&(RUNS as i64)));
    assert_eq!(counts.steps.get("running"), Some(&(RUNS as i64)));
    assert_eq!(counts.steps.get("pending"), Some(&(RUNS as i64)));
}
