//! The local admin key of `baton dev` on real SQLite files: issued once and saved, reused while
//! it is active in the same database, replaced when it was revoked or belongs to another file.

use std::path::PathBuf;

use baton_auth::credentials::Credentials;
use baton_dev::{EmbeddedBackend, LocalKeyError, ensure_local_key};
use baton_store::KeyStore;

const ADDR: &str = "http://127.0.0.1:18002";

struct Dir(PathBuf);

impl Dir {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("baton-dev-key-{:x}-{nanos:x}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn saved(path: &std::path::Path) -> String {
    Credentials::load(path)
        .unwrap()
        .token_for(ADDR)
        .expect("a saved token")
        .token
        .clone()
}

#[tokio::test]
async fn the_key_is_reused_while_active_in_its_database_and_replaced_otherwise() {
    let dir = Dir::new();
    let credentials = dir.0.join("credentials.json");
    let one = EmbeddedBackend::open(&dir.0.join("one.db")).await.unwrap();
    let keys: &dyn KeyStore = one.store.as_ref();

    let first = ensure_local_key(keys, Some(&credentials), ADDR, "default")
        .await
        .unwrap();
    assert!(!first.reused);
    assert_eq!(first.addr, ADDR);
    let token = saved(&credentials);
    assert!(token.contains(&first.id));
    let record = keys.find_api_key(&first.id).await.unwrap().unwrap();
    assert_eq!(
        (
            record.tenant.as_str(),
            record.role.as_str(),
            record.created_by.as_str()
        ),
        ("default", "admin", "baton dev")
    );

    let again = ensure_local_key(keys, Some(&credentials), ADDR, "default")
        .await
        .unwrap();
    assert!(again.reused);
    assert_eq!(again.id, first.id);
    assert_eq!(saved(&credentials), token);
    assert_eq!(keys.count_active_api_keys().await.unwrap(), 1);

    // Revoked: a new one replaces it in the file.
    keys.revoke_api_key(&first.id, 1).await.unwrap();
    let replaced = ensure_local_key(keys, Some(&credentials), ADDR, "default")
        .await
        .unwrap();
    assert!(!replaced.reused);
    assert_ne!(replaced.id, first.id);
    assert_ne!(saved(&credentials), token);

    // Another system tenant: the key of `default` is not its admin.
    let ops = ensure_local_key(keys, Some(&credentials), ADDR, "ops")
        .await
        .unwrap();
    assert!(!ops.reused);
    assert_eq!(ops.tenant, "ops");

    // Another database file on the same address does not know the saved key.
    let two = EmbeddedBackend::open(&dir.0.join("two.db")).await.unwrap();
    let other = ensure_local_key(two.store.as_ref(), Some(&credentials), ADDR, "ops")
        .await
        .unwrap();
    assert!(!other.reused);
    assert!(two.store.find_api_key(&ops.id).await.unwrap().is_none());

    let nowhere = ensure_local_key(keys, None, ADDR, "default").await;
    assert!(matches!(nowhere, Err(LocalKeyError::NoCredentialsFile)));
    let message = nowhere.unwrap_err().to_string();
    assert!(message.contains("BATON_CREDENTIALS"), "{message}");
}
