//! Workflow registration and listing: a version is written once, pages of the list cover every
//! version exactly once, each tenant has a namespace of its own, and migrating the schema again at
//! the next start leaves it all in place.

use baton_store::{PageRequest, PutWorkflowOutcome, RunFilter, Store, StoreError};
use baton_workflow::CompiledWorkflow;

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
    let listed = h.a.list_workflows(TENANT, None, page(10)).await.unwrap();
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
    let stored =
        h.a.get_workflow(TENANT, "acme", "etl", Some(1))
            .await
            .unwrap();
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
        version(s.get_workflow(TENANT, "acme", "etl", None).await.unwrap()).as_deref(),
        Some("acme/etl@3")
    );
    assert_eq!(
        version(
            s.get_workflow(TENANT, "acme", "etl", Some(2))
                .await
                .unwrap()
        )
        .as_deref(),
        Some("acme/etl@2")
    );
    assert_eq!(
        version(
            s.get_workflow(TENANT, "acme", "etl", Some(4))
                .await
                .unwrap()
        ),
        None
    );
    assert_eq!(
        version(
            s.get_workflow(TENANT, "acme", "missing", None)
                .await
                .unwrap()
        ),
        None
    );
    assert_eq!(
        version(s.get_workflow(TENANT, "nobody", "etl", None).await.unwrap()),
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

    let full = h.b.list_workflows(TENANT, None, page(1_000)).await.unwrap();
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
        let paged = all_pages(size, |p| h.a.list_workflows(TENANT, None, p)).await;
        assert_eq!(
            refs(&paged),
            full,
            "pages of {size} are the full list, in order"
        );
    }

    let beta = all_pages(4, |p| h.a.list_workflows(TENANT, Some("beta"), p)).await;
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
        h.b.get_workflow(TENANT, "acme", "etl", Some(1))
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
        let listed = h.a.list_workflows(TENANT, None, token_page(token)).await;
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

pub async fn the_same_version_in_two_tenants_is_two_workflows(h: Handles) {
    let red = pipeline("acme", "etl", 1);
    let mut blue = new_workflow_in("blue", &fan_out(2));
    blue.owner = "acme".into();
    blue.name = "etl".into();
    blue.version = 1;
    let blue_digest = blue.digest.clone();
    let blue_definition = blue.definition.clone();
    assert_ne!(blue_digest, red.digest());

    for (store, wf) in [(&h.a, new_workflow_in("red", &red)), (&h.b, blue)] {
        match store.put_workflow(wf).await.unwrap() {
            PutWorkflowOutcome::Created(w) => assert_eq!(w.workflow_ref(), "acme/etl@1"),
            other => panic!("another tenant's version does not collide, got {other:?}"),
        }
    }
    let got = |tenant: &'static str| {
        let s = h.b.clone();
        async move {
            s.get_workflow(tenant, "acme", "etl", Some(1))
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{tenant}'s acme/etl@1"))
        }
    };
    let (r, b) = (got("red").await, got("blue").await);
    assert_eq!(
        (r.tenant.as_str(), r.digest.as_str()),
        ("red", red.digest().as_str())
    );
    assert_eq!(r.definition, new_workflow(&red).definition);
    assert_eq!(
        (b.tenant.as_str(), b.digest.as_str()),
        ("blue", blue_digest.as_str())
    );
    assert_eq!(b.definition, blue_definition);
    let latest = h.a.get_workflow("blue", "acme", "etl", None).await.unwrap();
    assert_eq!(latest.map(|w| w.digest), Some(blue_digest));
    assert!(
        h.a.get_workflow("green", "acme", "etl", None)
            .await
            .unwrap()
            .is_none(),
        "a tenant that registered nothing sees nothing"
    );

    // Within a tenant a version is still written once.
    match h
        .a
        .put_workflow(new_workflow_in("red", &red))
        .await
        .unwrap()
    {
        PutWorkflowOutcome::Unchanged(w) => assert_eq!(w.tenant, "red"),
        other => panic!("the same content in the same tenant is unchanged, got {other:?}"),
    }
    let mut other_content = new_workflow_in("red", &fan_out(2));
    other_content.owner = "acme".into();
    other_content.name = "etl".into();
    other_content.version = 1;
    match h.b.put_workflow(other_content).await.unwrap() {
        PutWorkflowOutcome::Conflict(w) => {
            assert_eq!((w.tenant.as_str(), w.digest), ("red", red.digest()));
        }
        other => panic!("other content in the same tenant conflicts, got {other:?}"),
    }
}

pub async fn a_tenant_lists_only_its_own_workflows(h: Handles) {
    for (tenant, names) in [("red", ["a", "b", "c"]), ("blue", ["a", "b", "d"])] {
        for name in names {
            for version in [1, 2] {
                h.a.put_workflow(new_workflow_in(tenant, &pipeline("acme", name, version)))
                    .await
                    .unwrap();
            }
        }
    }
    h.a.put_workflow(new_workflow_in("blue", &pipeline("beta", "a", 1)))
        .await
        .unwrap();

    for size in [1, 2, 4, 100] {
        let red = all_pages(size, |p| h.b.list_workflows("red", None, p)).await;
        assert!(red.iter().all(|w| w.tenant == "red"), "{red:?}");
        assert_eq!(
            refs(&red),
            [
                "acme/a@2", "acme/a@1", "acme/b@2", "acme/b@1", "acme/c@2", "acme/c@1"
            ],
            "pages of {size}"
        );
        let blue = all_pages(size, |p| h.b.list_workflows("blue", None, p)).await;
        assert!(blue.iter().all(|w| w.tenant == "blue"), "{blue:?}");
        assert_eq!(
            refs(&blue),
            [
                "acme/a@2", "acme/a@1", "acme/b@2", "acme/b@1", "acme/d@2", "acme/d@1", "beta/a@1"
            ],
            "pages of {size}"
        );
    }
    let owned = all_pages(1, |p| h.a.list_workflows("blue", Some("beta"), p)).await;
    assert_eq!(refs(&owned), ["beta/a@1"]);
    let none =
        h.a.list_workflows("red", Some("beta"), page(10))
            .await
            .unwrap();
    assert!(none.items.is_empty() && none.next_token.is_empty());
    let green = h.a.list_workflows("green", None, page(10)).await.unwrap();
    assert!(green.items.is_empty() && green.next_token.is_empty());
}

/// For a backend's migration test: `store` was migrated to the schema before tenants, held `wf`
/// (registered then, as [`new_workflow`] describes it), and was then migrated to the latest.
/// The workflow is the `default` tenant's, and only its.
pub async fn a_workflow_stored_before_tenants_is_the_default_tenants(
    store: &dyn Store,
    wf: &CompiledWorkflow,
) {
    let r = &wf.definition;
    let stored = store
        .get_workflow("default", &r.owner, &r.name, Some(r.version))
        .await
        .unwrap()
        .expect("the workflow is the default tenant's");
    assert_eq!(stored.tenant, "default");
    assert_eq!(stored.digest, wf.digest());
    assert_eq!(stored.definition, new_workflow(wf).definition);
    assert!(
        store
            .get_workflow(TENANT, &r.owner, &r.name, None)
            .await
            .unwrap()
            .is_none()
    );
    let listed = store
        .list_workflows("default", None, page(10))
        .await
        .unwrap();
    assert_eq!(refs(&listed.items), [wf.workflow_ref()]);
    match store
        .put_workflow(new_workflow_in("default", wf))
        .await
        .unwrap()
    {
        PutWorkflowOutcome::Unchanged(w) => assert_eq!(w.created_at, stored.created_at),
        other => panic!("registering it again is unchanged, got {other:?}"),
    }
    match store.put_workflow(new_workflow(wf)).await.unwrap() {
        PutWorkflowOutcome::Created(w) => assert_eq!(w.tenant, TENANT),
        other => panic!("another tenant registers its own, got {other:?}"),
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

/// After the migration that gave workflows a tenant, a tenant whose runs used a workflow has its
/// own copy of it, so its runs in flight still find their definition.
pub async fn a_tenant_with_runs_of_a_workflow_keeps_it(
    store: &dyn Store,
    wf: &CompiledWorkflow,
    tenant: &str,
) {
    let r = &wf.definition;
    let copy = store
        .get_workflow(tenant, &r.owner, &r.name, Some(r.version))
        .await
        .unwrap()
        .expect("the tenant of the run has the workflow");
    assert_eq!(copy.tenant, tenant);
    assert_eq!(copy.digest, wf.digest());
}
