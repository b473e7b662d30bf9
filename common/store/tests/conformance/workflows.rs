//! Workflow registration and listing: a version is written once, pages of the list cover every
//! version exactly once, and migrating the schema again at the next start leaves it all in place.

use baton_store::{PageRequest, PutWorkflowOutcome, RunFilter, StoreError};

use super::{Handles, fixtures::*};

pub async fn registering_the_same_definition_again_changes_nothing(h: Handles) {
    let wf = pipeline("acme", "etl", 1);
    let created = match h.a.put_workflow(new_workflow(&wf)).await.unwrap() {
        PutWorkflowOutcome::Created(w) => w,
        other => panic!("a new version is created, got {other:?}"),
    };
    assert_eq!(created.workflow_ref(), "acme/etl@1");
    assert_eq!(created.digest, wf.digest());
    assert_eq!(created.definition, new_workflow(&wf).definition);

    match h.b.put_workflow(new_workflow(&wf)).await.unwrap() {
        PutWorkflowOutcome::Unchanged(w) => {
            assert_eq!(w.digest, created.digest);
            assert_eq!(w.created_at, created.created_at, "the first write stands");
        }
        other => panic!("the same digest is unchanged, got {other:?}"),
    }
    let listed = h.a.list_workflows(None, page(10)).await.unwrap();
    assert_eq!(refs(&listed.items), ["acme/etl@1"]);
}

pub async fn registering_other_content_under_a_taken_version_conflicts(h: Handles) {
    let first = pipeline("acme", "etl", 1);
    let other = fan_out(2);
    let mut changed = new_workflow(&other);
    changed.owner = "acme".into();
    changed.name = "etl".into();
    changed.version = 1;
    assert_ne!(changed.digest, first.digest());
    h.a.put_workflow(new_workflow(&first)).await.unwrap();

    match h.b.put_workflow(changed).await.unwrap() {
        PutWorkflowOutcome::Conflict(existing) => {
            assert_eq!(
                existing.digest,
                first.digest(),
                "the conflict names the stored one"
            );
        }
        other => panic!("another digest conflicts, got {other:?}"),
    }
    let stored = h.a.get_workflow("acme", "etl", Some(1)).await.unwrap();
    let stored = stored.expect("the first version is still there");
    assert_eq!(stored.digest, first.digest());
    assert_eq!(stored.definition, new_workflow(&first).definition);
}

pub async fn the_latest_workflow_version_is_the_highest(h: Handles) {
    for version in [1, 3, 2] {
        h.a.put_workflow(new_workflow(&pipeline("acme", "etl", version)))
            .await
            .unwrap();
    }
    h.a.put_workflow(new_workflow(&pipeline("acme", "other", 7)))
        .await
        .unwrap();
    let version = |w: Option<baton_store::StoredWorkflow>| w.map(|w| w.workflow_ref());
    let s = &h.b;
    assert_eq!(
        version(s.get_workflow("acme", "etl", None).await.unwrap()).as_deref(),
        Some("acme/etl@3")
    );
    assert_eq!(
        version(s.get_workflow("acme", "etl", Some(2)).await.unwrap()).as_deref(),
        Some("acme/etl@2")
    );
    assert_eq!(
        version(s.get_workflow("acme", "etl", Some(4)).await.unwrap()),
        None
    );
    assert_eq!(
        version(s.get_workflow("acme", "missing", None).await.unwrap()),
        None
    );
    assert_eq!(
        version(s.get_workflow("nobody", "etl", None).await.unwrap()),
        None
    );
}

pub async fn workflow_pages_cover_every_version_once_in_a_stable_order(h: Handles) {
    let mut registered = Vec::new();
    for owner in ["acme", "beta"] {
        for name in ["a", "b", "c"] {
            for version in [2, 1, 3] {
                registered.push((owner, name.to_owned(), version));
            }
        }
    }
    // Names whose order differs between collations: paging must hold whatever the order.
    for name in ["a-b", "a_b", "a.b", "A", "ab"] {
        registered.push(("acme", name.to_owned(), 1));
    }
    for (owner, name, version) in &registered {
        h.a.put_workflow(new_workflow(&pipeline(owner, name, *version)))
            .await
            .unwrap();
    }

    let full = h.b.list_workflows(None, page(1_000)).await.unwrap();
    assert!(full.next_token.is_empty(), "everything fits on one page");
    let full = refs(&full.items);
    let mut expected: Vec<String> = registered
        .iter()
        .map(|(o, n, v)| format!("{o}/{n}@{v}"))
        .collect();
    expected.sort();
    let mut sorted = full.clone();
    sorted.sort();
    assert_eq!(sorted, expected, "every version is listed once");

    // Versions of one workflow come together, newest first; plain lowercase names in order.
    let plain: Vec<&String> = full
        .iter()
        .filter(|r| ["/a@", "/b@", "/c@"].iter().any(|n| r.contains(n)))
        .collect();
    let want: Vec<String> = ["acme", "beta"]
        .iter()
        .flat_map(|o| {
            ["a", "b", "c"]
                .iter()
                .flat_map(move |n| [3, 2, 1].map(|v| format!("{o}/{n}@{v}")))
        })
        .collect();
    assert_eq!(plain, want.iter().collect::<Vec<_>>());

    for size in [1, 2, 5, 23, 24] {
        let paged = all_pages(size, |p| h.a.list_workflows(None, p)).await;
        assert_eq!(
            refs(&paged),
            full,
            "pages of {size} are the full list, in order"
        );
    }

    let beta = all_pages(4, |p| h.a.list_workflows(Some("beta"), p)).await;
    let beta = refs(&beta);
    assert_eq!(beta.len(), 9);
    assert!(beta.iter().all(|r| r.starts_with("beta/")), "{beta:?}");
}

pub async fn migrating_again_changes_nothing(h: Handles) {
    let wf = pipeline("acme", "etl", 1);
    h.a.put_workflow(new_workflow(&wf)).await.unwrap();
    let id = create(h.a.as_ref(), new_run("t", "acme/etl@1", 1_000))
        .await
        .id;
    // As every service does at start, through either handle.
    h.a.migrate().await.expect("a second migration");
    h.b.migrate().await.expect("a migration by another handle");
    assert!(
        h.b.get_workflow("acme", "etl", Some(1))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(h.b.get_run(id).await.unwrap().expect("the run").run.id, id);
}

pub async fn page_tokens_that_were_never_issued_are_refused(h: Handles) {
    h.a.put_workflow(new_workflow(&pipeline("acme", "etl", 1)))
        .await
        .unwrap();
    for token in ["garbage", "acme/etl", "@"] {
        let listed = h.a.list_workflows(None, token_page(token)).await;
        assert!(
            matches!(listed, Err(StoreError::BadPageToken)),
            "workflow token {token:?}: {listed:?}"
        );
    }
    let filter = RunFilter {
        tenant: "t".into(),
        ..RunFilter::default()
    };
    for token in [
        "garbage",
        "12_not-a-uuid",
        "x_00000000-0000-0000-0000-000000000000",
    ] {
        let listed = h.a.list_runs(filter.clone(), token_page(token)).await;
        assert!(
            matches!(listed, Err(StoreError::BadPageToken)),
            "run token {token:?}: {:?}",
            listed.map(|p| p.items.len())
        );
    }
}

fn page(size: u32) -> PageRequest {
    PageRequest {
        size,
        token: String::new(),
    }
}

fn token_page(token: &str) -> PageRequest {
    PageRequest {
        size: 10,
        token: token.to_owned(),
    }
}
