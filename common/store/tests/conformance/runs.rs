//! Starting runs and listing them: a run starts queued with its first event, an idempotency key
//! names one run per tenant however many starts race for it, and pages of the list are stable.

use baton_engine::{EngineConfig, RunStatus, now_micros, start_run};
use baton_proto::v1::RunEventType;
use baton_store::{PageRequest, RunFilter, StoreError};
use uuid::Uuid;

use super::{Handles, fixtures::*};

pub async fn a_created_run_is_queued_with_its_first_event(h: Handles) {
    let at = now_micros();
    let mut run = keyed(new_run("tenant-a", "acme/etl@1", at), "order-1");
    run.inputs = serde_json::json!({ "n": 1, "nested": { "list": [1, "two", null] } });
    run.trace_context.insert(
        "traceparent".into(),
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
    );
    let id = run.id;
    let created = create(h.a.as_ref(), run).await;

    let detail = h.b.get_run(id).await.unwrap().expect("the run is stored");
    for (what, r) in [("returned", &created), ("read back", &detail.run)] {
        assert_eq!(r.id, id, "{what}");
        assert_eq!(r.status, RunStatus::Queued, "{what}");
        assert_eq!(r.tenant, "tenant-a", "{what}");
        assert_eq!(r.workflow_ref, "acme/etl@1", "{what}");
        assert_eq!(r.inputs["nested"]["list"][1], "two", "{what}");
        assert_eq!(r.idempotency_key.as_deref(), Some("order-1"), "{what}");
        assert_eq!(
            r.created_at, at,
            "{what}: created_at kept to the microsecond"
        );
        assert_eq!(r.last_sequence, 1, "{what}");
        assert_eq!(
            r.trace_context.get("traceparent").map(String::len),
            Some(55),
            "{what}"
        );
        assert!(r.steps.is_empty(), "{what}: no steps before it starts");
        assert_eq!((r.started_at, r.ended_at), (None, None), "{what}");
        assert_eq!((&r.output, &r.error), (&None, &None), "{what}");
    }
    assert!(detail.attempts.is_empty() && detail.workers.is_empty());

    let events = events(h.b.as_ref(), id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let first = &events[0];
    assert_eq!(first.run_id, id);
    assert_eq!(first.record.sequence, 1);
    assert_eq!(first.record.event_type, RunEventType::RunQueued);
    assert_eq!(first.record.time, at);
    assert_eq!(
        (first.record.step_id.as_deref(), first.record.attempt),
        (None, 0)
    );

    assert!(h.a.get_run(Uuid::new_v4()).await.unwrap().is_none());
}

pub async fn find_run_returns_the_run_without_its_steps(h: Handles) {
    let wf = pipeline("acme", "etl", 1);
    let at = now_micros();
    let id = create(h.a.as_ref(), keyed(new_run("t", "acme/etl@1", at), "k"))
        .await
        .id;
    let queued = h.b.find_run(id).await.unwrap().expect("the run");
    assert_eq!(
        Persisted::from(&queued),
        Persisted::from(&load(h.a.as_ref(), id).await)
    );

    let (started, _) = change(h.a.as_ref(), id, |r, fx| {
        start_run(r, &wf, &EngineConfig::default(), at + 10, fx)
    })
    .await;
    assert!(!started.steps.is_empty());
    let found = h.b.find_run(id).await.unwrap().expect("the run");
    assert!(found.steps.is_empty(), "no steps: {:?}", found.steps);
    assert!(!found.is_changed(), "nothing to write");
    assert_eq!(
        Persisted::from(&found),
        Persisted {
            steps: Vec::new(),
            ..Persisted::from(&started)
        }
    );
    assert_eq!(found.status, RunStatus::Running);
    assert!(h.a.find_run(Uuid::new_v4()).await.unwrap().is_none());
}

pub async fn an_idempotency_key_returns_the_first_run_of_its_tenant(h: Handles) {
    let at = now_micros();
    let first = create(
        h.a.as_ref(),
        keyed(new_run("t1", "acme/etl@1", at), "order-7"),
    )
    .await;

    let again = keyed(new_run("t1", "acme/etl@1", at + 1), "order-7");
    let again_id = again.id;
    let (run, fresh) =
        h.b.create_runs(vec![again])
            .await
            .unwrap()
            .remove(0)
            .unwrap();
    assert_eq!(
        (run.id, fresh),
        (first.id, false),
        "the first run comes back"
    );
    assert!(
        h.a.get_run(again_id).await.unwrap().is_none(),
        "no second run"
    );

    let elsewhere = create(
        h.a.as_ref(),
        keyed(new_run("t2", "acme/etl@1", at), "order-7"),
    )
    .await;
    assert_ne!(
        elsewhere.id, first.id,
        "another tenant gets a run of its own"
    );

    // In one batch: the earlier run takes the key, a run of another workflow conflicts, and
    // runs without a key never collide.
    let x = keyed(new_run("t1", "acme/etl@1", at), "order-8");
    let y = keyed(new_run("t1", "acme/etl@1", at), "order-8");
    let z = keyed(new_run("t1", "acme/other@1", at), "order-8");
    let (p, q) = (
        new_run("t1", "acme/etl@1", at),
        new_run("t1", "acme/etl@1", at),
    );
    let (x_id, p_id, q_id) = (x.id, p.id, q.id);
    let results = h.a.create_runs(vec![x, y, z, p, q]).await.unwrap();
    assert_eq!(results.len(), 5, "one result per run, in order");
    let mut results = results.into_iter();
    let mut next = || results.next().unwrap();
    assert!(matches!(next(), Ok((r, true)) if r.id == x_id));
    assert!(matches!(next(), Ok((r, false)) if r.id == x_id));
    assert!(matches!(next(), Err(StoreError::Conflict(_))));
    assert!(matches!(next(), Ok((r, true)) if r.id == p_id));
    assert!(matches!(next(), Ok((r, true)) if r.id == q_id));

    let t1 = all_pages(100, |p| h.b.list_runs(tenant("t1"), p)).await;
    let mut ids: Vec<Uuid> = t1.iter().map(|r| r.id).collect();
    ids.sort();
    let mut want = vec![first.id, x_id, p_id, q_id];
    want.sort();
    assert_eq!(ids, want, "t1 holds exactly the runs created");
    // The first event was written once per created run.
    for id in want {
        assert_eq!(events(h.a.as_ref(), id).await.len(), 1);
    }
}

pub async fn concurrent_starts_with_one_idempotency_key_make_one_run(h: Handles) {
    let at = now_micros();
    let starts = (0..16).map(|i| {
        let store = if i % 2 == 0 { h.a.clone() } else { h.b.clone() };
        async move {
            let run = keyed(new_run("t", "acme/etl@1", at + i), "checkout-42");
            store
                .create_runs(vec![run])
                .await
                .unwrap()
                .remove(0)
                .unwrap()
        }
    });
    let results = concurrently(starts).await;
    let first = results[0].0.id;
    assert!(
        results.iter().all(|(r, _)| r.id == first),
        "every start names one run"
    );
    assert_eq!(
        results.iter().filter(|(_, fresh)| *fresh).count(),
        1,
        "one start created it"
    );
    let listed = all_pages(100, |p| h.a.list_runs(tenant("t"), p)).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(events(h.b.as_ref(), first).await.len(), 1);
}

pub async fn run_pages_are_newest_first_without_gaps_or_duplicates(h: Handles) {
    let base = now_micros();
    // Three runs share each creation time, so the order within a time must be stable too.
    let mut runs = Vec::new();
    for i in 0..13 {
        runs.push(new_run("t", "acme/etl@1", base + (i / 3) * 1_000));
        runs.push(new_run("other", "acme/etl@1", base + i * 500));
    }
    let mut expected: Vec<(i64, Uuid)> = runs
        .iter()
        .filter(|r| r.tenant == "t")
        .map(|r| (r.created_at, r.id))
        .collect();
    expected.sort();
    expected.reverse();
    let expected: Vec<Uuid> = expected.into_iter().map(|(_, id)| id).collect();
    h.a.create_runs(runs).await.unwrap();

    for size in [1, 2, 3, 4, 13, 14] {
        let store = if size % 2 == 0 { &h.a } else { &h.b };
        let paged = all_pages(size, |p| store.list_runs(tenant("t"), p)).await;
        let ids: Vec<Uuid> = paged.iter().map(|r| r.id).collect();
        assert_eq!(
            ids, expected,
            "pages of {size}: newest first, ties by id, each once"
        );
    }

    // A run started between two pages does not shift the pages after it.
    let first = h.a.list_runs(tenant("t"), page(5, "")).await.unwrap();
    create(h.a.as_ref(), new_run("t", "acme/etl@1", base + 1_000_000)).await;
    let rest = all_pages(5, |p| {
        let token = if p.token.is_empty() {
            first.next_token.clone()
        } else {
            p.token
        };
        h.b.list_runs(tenant("t"), page(p.size, &token))
    })
    .await;
    let ids: Vec<Uuid> = first.items.iter().chain(&rest).map(|r| r.id).collect();
    assert_eq!(ids, expected);
}

pub async fn runs_are_listed_by_tenant_workflow_and_status(h: Handles) {
    let wf = pipeline("acme", "etl", 1);
    h.a.put_workflow(new_workflow(&wf)).await.unwrap();
    let at = now_micros();
    let a1 = create(h.a.as_ref(), new_run("a", "acme/etl@1", at)).await;
    let a2 = create(h.a.as_ref(), new_run("a", "acme/etl@1", at + 1)).await;
    let a3 = create(h.a.as_ref(), new_run("a", "acme/other@2", at + 2)).await;
    let b1 = create(h.a.as_ref(), new_run("b", "acme/etl@1", at + 3)).await;
    change(h.a.as_ref(), a2.id, |run, fx| {
        start_run(run, &wf, &EngineConfig::default(), at + 10, fx)
    })
    .await;

    let cases = [
        (filter("a", None, None), vec![a3.id, a2.id, a1.id]),
        (filter("a", Some("acme/etl@1"), None), vec![a2.id, a1.id]),
        (
            filter("a", None, Some(RunStatus::Queued)),
            vec![a3.id, a1.id],
        ),
        (filter("a", None, Some(RunStatus::Running)), vec![a2.id]),
        (
            filter("a", Some("acme/other@2"), Some(RunStatus::Running)),
            vec![],
        ),
        (filter("b", None, None), vec![b1.id]),
        (filter("nobody", None, None), vec![]),
    ];
    for (f, want) in cases {
        let listed = all_pages(2, |p| h.b.list_runs(f.clone(), p)).await;
        let ids: Vec<Uuid> = listed.iter().map(|r| r.id).collect();
        assert_eq!(ids, want, "{f:?}");
        for r in &listed {
            assert_eq!(r.tenant, f.tenant);
            if let Some(status) = f.status {
                assert_eq!(r.status, status);
            }
        }
    }
}

pub async fn page_size_zero_means_one_hundred_and_sizes_are_capped_at_one_thousand(h: Handles) {
    let at = now_micros();
    let runs = (0..1_001)
        .map(|i| new_run("t", "acme/etl@1", at + i))
        .collect();
    h.a.create_runs(runs).await.unwrap();

    let default = h.a.list_runs(tenant("t"), page(0, "")).await.unwrap();
    assert_eq!(default.items.len(), 100, "size 0 means 100");
    assert!(!default.next_token.is_empty());

    let capped = h.b.list_runs(tenant("t"), page(5_000, "")).await.unwrap();
    assert_eq!(capped.items.len(), 1_000, "sizes are capped at 1000");
    let rest =
        h.b.list_runs(tenant("t"), page(5_000, &capped.next_token))
            .await
            .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert!(rest.next_token.is_empty());
}

fn tenant(t: &str) -> RunFilter {
    filter(t, None, None)
}

fn filter(tenant: &str, workflow_ref: Option<&str>, status: Option<RunStatus>) -> RunFilter {
    RunFilter {
        tenant: tenant.to_owned(),
        workflow_ref: workflow_ref.map(str::to_owned),
        status,
    }
}

fn page(size: u32, token: &str) -> PageRequest {
    PageRequest {
        size,
        token: token.to_owned(),
    }
}
