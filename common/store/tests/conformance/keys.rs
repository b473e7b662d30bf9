//! API keys: recorded once under an id no other key has, found by that id, listed newest first
//! by tenant, revoked once (the first time stands) and counted while active. Every check goes
//! through the key role alone, as an `Arc<dyn Store>` upcast to it.

use std::sync::Arc;

use baton_store::{ApiKeyRecord, KeyStore, NewApiKey, StoreError};

use super::{Handles, fixtures::concurrently};

fn new_key(id: &str, tenant: &str, created_at_micros: i64) -> NewApiKey {
    NewApiKey {
        id: id.to_owned(),
        tenant: tenant.to_owned(),
        role: "developer".to_owned(),
        name: format!("{id} of {tenant}"),
        secret_hash: format!("hash-of-{id}"),
        created_by: "key:admin".to_owned(),
        created_at_micros,
    }
}

fn record(key: &NewApiKey) -> ApiKeyRecord {
    ApiKeyRecord {
        id: key.id.clone(),
        tenant: key.tenant.clone(),
        role: key.role.clone(),
        name: key.name.clone(),
        secret_hash: key.secret_hash.clone(),
        created_by: key.created_by.clone(),
        created_at_micros: key.created_at_micros,
        revoked_at_micros: None,
    }
}

fn ids(keys: &[ApiKeyRecord]) -> Vec<&str> {
    keys.iter().map(|k| k.id.as_str()).collect()
}

fn roles(h: &Handles) -> (Arc<dyn KeyStore>, Arc<dyn KeyStore>) {
    (h.a.clone(), h.b.clone())
}

pub async fn api_keys_are_found_by_id_and_listed_newest_first_by_tenant(h: Handles) {
    let (a, b) = roles(&h);
    // Created out of time order, and two at one time: the list orders by time, then id.
    let keys = [
        new_key("k2", "blue", 2_000_000),
        new_key("k1", "red", 1_000_000),
        new_key("k3", "red", 3_000_000),
        new_key("k4", "red", 3_000_000),
    ];
    for key in &keys {
        let created = a.create_api_key(key.clone()).await.unwrap();
        assert_eq!(created, record(key));
    }
    let mut unnamed = new_key("k5", "blue", 500_000);
    unnamed.name = String::new();
    assert_eq!(a.create_api_key(unnamed.clone()).await.unwrap().name, "");

    assert_eq!(b.find_api_key("k2").await.unwrap(), Some(record(&keys[0])));
    assert_eq!(b.find_api_key("k5").await.unwrap(), Some(record(&unnamed)));
    assert_eq!(b.find_api_key("nope").await.unwrap(), None);
    assert_eq!(b.find_api_key("K2").await.unwrap(), None, "ids are exact");

    let every = b.list_api_keys(None, false).await.unwrap();
    assert_eq!(ids(&every), ["k4", "k3", "k2", "k1", "k5"]);
    assert_eq!(every[2], record(&keys[0]));
    let red = b.list_api_keys(Some("red"), true).await.unwrap();
    assert_eq!(ids(&red), ["k4", "k3", "k1"]);
    assert!(red.iter().all(|k| k.tenant == "red"));
    let blue = b.list_api_keys(Some("blue"), false).await.unwrap();
    assert_eq!(ids(&blue), ["k2", "k5"]);
    assert!(
        b.list_api_keys(Some("green"), true)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(b.count_active_api_keys().await.unwrap(), 5);
}

pub async fn revoking_an_api_key_keeps_the_first_time(h: Handles) {
    let (a, b) = roles(&h);
    for key in [
        new_key("k1", "red", 1_000_000),
        new_key("k2", "red", 2_000_000),
        new_key("k3", "blue", 3_000_000),
    ] {
        a.create_api_key(key).await.unwrap();
    }
    assert_eq!(a.count_active_api_keys().await.unwrap(), 3);

    let revoked = a.revoke_api_key("k1", 5_000_000).await.unwrap();
    let revoked = revoked.expect("the key exists");
    assert_eq!(
        revoked,
        ApiKeyRecord {
            revoked_at_micros: Some(5_000_000),
            ..record(&new_key("k1", "red", 1_000_000))
        }
    );
    // Again, later and through another handle: nothing changes.
    let again = b.revoke_api_key("k1", 9_000_000).await.unwrap();
    assert_eq!(again.as_ref(), Some(&revoked));
    assert_eq!(b.find_api_key("k1").await.unwrap(), Some(revoked.clone()));
    assert_eq!(b.revoke_api_key("nope", 9_000_000).await.unwrap(), None);
    assert_eq!(
        b.find_api_key("nope").await.unwrap(),
        None,
        "revoking made nothing"
    );

    assert_eq!(
        ids(&b.list_api_keys(Some("red"), false).await.unwrap()),
        ["k2"]
    );
    let with_revoked = b.list_api_keys(Some("red"), true).await.unwrap();
    assert_eq!(ids(&with_revoked), ["k2", "k1"]);
    assert_eq!(with_revoked[1], revoked);
    assert_eq!(
        ids(&b.list_api_keys(None, false).await.unwrap()),
        ["k3", "k2"]
    );
    assert_eq!(b.count_active_api_keys().await.unwrap(), 2);

    // Revokes racing: one time wins, and every caller sees that one.
    let racing = concurrently((0..8).map(|i| {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        async move { s.revoke_api_key("k3", 10_000_000 + i).await.unwrap() }
    }))
    .await;
    let stored = a.find_api_key("k3").await.unwrap().expect("k3");
    let first = stored.revoked_at_micros.expect("revoked");
    assert!((10_000_000..10_000_008).contains(&first), "{first}");
    assert!(
        racing.iter().all(|r| r.as_ref() == Some(&stored)),
        "{racing:?}"
    );
    assert_eq!(a.count_active_api_keys().await.unwrap(), 1);
}

pub async fn an_api_key_id_in_use_conflicts_naming_the_id(h: Handles) {
    let (a, b) = roles(&h);
    let first = new_key("k1", "red", 1_000_000);
    a.create_api_key(first.clone()).await.unwrap();

    // Ids are global: another tenant cannot take one either.
    let mut other = new_key("k1", "blue", 2_000_000);
    other.secret_hash = "another-hash".into();
    match b.create_api_key(other).await {
        Err(StoreError::Conflict(m)) => {
            assert!(m.contains("`k1`"), "the error names the id: {m}");
            let lower = m.to_lowercase();
            for word in ["postgres", "sqlite", "constraint", "duplicate", "unique"] {
                assert!(
                    !lower.contains(word),
                    "the error speaks of the backend: {m}"
                );
            }
        }
        other => panic!("a taken id conflicts, got {other:?}"),
    }
    assert_eq!(a.find_api_key("k1").await.unwrap(), Some(record(&first)));
    assert_eq!(a.count_active_api_keys().await.unwrap(), 1);

    // Created at once from both handles: one wins, the others conflict.
    let outcomes = concurrently((0..8).map(|i| {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        async move { s.create_api_key(new_key("k2", "red", 3_000_000 + i)).await }
    }))
    .await;
    let won: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    assert_eq!(won.len(), 1, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Ok(_) | Err(StoreError::Conflict(_)))),
        "{outcomes:?}"
    );
    assert_eq!(a.find_api_key("k2").await.unwrap().as_ref(), Some(won[0]));
    assert_eq!(a.count_active_api_keys().await.unwrap(), 2);
}
