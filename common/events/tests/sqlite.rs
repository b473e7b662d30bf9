//! The run event suite on the embedded backend: [`SqliteStore`] and [`SqliteQueue`] over one
//! SQLite file and one pool, as `baton dev` opens them, in a temporary directory of each check's
//! own, removed after.

#[macro_use]
mod suite;

use std::{future::Future, path::PathBuf, sync::Arc};

use baton_queue::SqliteQueue;
use baton_store::SqliteStore;

use suite::Backend;

events_suite!(with_sqlite);

/// Connections of the shared pool, as `baton dev` opens it.
const CONNECTIONS: u32 = 8;

async fn with_sqlite<F, Fut>(check: F)
where
    F: FnOnce(Backend) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir: PathBuf =
        std::env::temp_dir().join(format!("baton-events-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("create the check's directory");
    let pool = baton_sqlite::open(&dir.join("baton.db"), CONNECTIONS)
        .await
        .expect("open the check's database");
    let store = SqliteStore::from_pool(pool.clone());
    store.migrate().await.expect("store migrations apply");
    let queue = SqliteQueue::from_pool(pool.clone())
        .await
        .expect("the queue opens on the same file");

    let outcome = tokio::spawn(check(Backend {
        store: Arc::new(store),
        queue: Arc::new(queue),
    }))
    .await;

    pool.close().await;
    std::fs::remove_dir_all(&dir).expect("remove the check's database");
    match outcome {
        Ok(()) => {}
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("check did not finish: {e}"),
    }
}
