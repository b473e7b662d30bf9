//! The store conformance suite against [`SqliteStore`]: each check gets a database file of its
//! own in a fresh temporary directory, removed after, with two handles (two pools) on it as two
//! processes sharing the file would have. Then what only the embedded backend has: a file shared
//! with the embedded queue's migrations, SQLite's own errors in the store's words, and run
//! batches that leave the file to other writers while they are open ([`batches`]).

#[macro_use]
mod conformance;
#[path = "sqlite/batches.rs"]
mod batches;

use std::{
    future::Future,
    path::{Path, PathBuf},
    str::FromStr,
    sync::Arc,
    time::Duration,
};

use baton_store::{SqliteStore, Store, StoreError};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use conformance::Handles;

store_conformance!(with_sqlite);

/// Connections per handle, as `baton dev` opens them.
const CONNECTIONS: u32 = 4;

/// Opens two stores on a new file with Baton's schema, runs `check`, and removes the file's
/// directory whether the check passed or not.
async fn with_sqlite<F, Fut>(check: F)
where
    F: FnOnce(Handles) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir: PathBuf =
        std::env::temp_dir().join(format!("baton-store-{}", uuid::Uuid::new_v4().simple()));
    let path = dir.join("baton.db");
    let a = SqliteStore::open(&path, CONNECTIONS).await.expect("open");
    a.migrate().await.expect("migrations apply");
    let b = SqliteStore::open(&path, CONNECTIONS).await.expect("open");
    let pools = [a.pool().clone(), b.pool().clone()];

    let outcome = tokio::spawn(check(Handles {
        a: Arc::new(a),
        b: Arc::new(b),
    }))
    .await;

    for pool in pools {
        let _ = tokio::time::timeout(Duration::from_secs(5), pool.close()).await;
    }
    std::fs::remove_dir_all(&dir).expect("remove the check's database");
    match outcome {
        Ok(()) => {}
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("check did not finish: {e}"),
    }
}

fn temp_dir() -> PathBuf {
    std::env::temp_dir().join(format!("baton-store-{}", uuid::Uuid::new_v4().simple()))
}

/// Applies a migration of version 1001, as the embedded queue does to the same file.
async fn migrate_as_the_queue(dir: &Path, pool: &sqlx::SqlitePool) {
    let migrations = dir.join("queue-migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    std::fs::write(
        migrations.join("1001_queue.sql"),
        "CREATE TABLE queue_probe (id INTEGER PRIMARY KEY);",
    )
    .unwrap();
    let mut queue = sqlx::migrate::Migrator::new(migrations.as_path())
        .await
        .unwrap();
    queue.set_ignore_missing(true);
    queue
        .run(pool)
        .await
        .expect("the queue's migration applies");
}

#[tokio::test]
async fn the_store_migrates_a_file_the_queue_migrated_too() {
    let dir = temp_dir();
    let store = SqliteStore::open(&dir.join("baton.db"), 2).await.unwrap();
    store.migrate().await.unwrap();
    migrate_as_the_queue(&dir, store.pool()).await;
    // The next start: the store finds the queue's version and leaves it alone.
    Store::migrate(&store)
        .await
        .expect("the store migrates again");
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(versions.first(), Some(&1));
    assert_eq!(versions.last(), Some(&1001));
    assert!(
        versions[..versions.len() - 1].iter().all(|v| *v < 1000),
        "{versions:?}"
    );
    let probe: i64 = sqlx::query_scalar("SELECT count(*) FROM queue_probe")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(probe, 0);
    store.pool().close().await;
    std::fs::remove_dir_all(dir).unwrap();
}

/// A file migrated by a release before tenants (migrations 1 to 3), holding a workflow, then
/// migrated by this build: the table rebuild keeps the workflow, in the `default` tenant.
#[tokio::test]
async fn a_workflow_stored_before_tenants_is_the_default_tenants() {
    let dir = temp_dir();
    let store = SqliteStore::open(&dir.join("baton.db"), 2).await.unwrap();
    let all = sqlx::migrate!("./migrations/sqlite");
    let before_tenants = sqlx::migrate::Migrator {
        migrations: all
            .migrations
            .iter()
            .filter(|m| m.version < 4)
            .cloned()
            .collect::<Vec<_>>()
            .into(),
        ..sqlx::migrate!("./migrations/sqlite")
    };
    before_tenants
        .run(store.pool())
        .await
        .expect("migrations 1 to 3");
    let wf = conformance::fixtures::pipeline("acme", "etl", 1);
    let stored = conformance::fixtures::new_workflow(&wf);
    sqlx::query(
        "INSERT INTO workflows (owner, name, version, digest, definition, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .bind(&stored.owner)
    .bind(&stored.name)
    .bind(i64::from(stored.version))
    .bind(&stored.digest)
    .bind(stored.definition.to_string())
    .bind(1_000_000_i64)
    .execute(store.pool())
    .await
    .expect("a workflow of the old schema");
    // A run of another tenant, made when workflows had no tenant, keeps its definition.
    sqlx::query(
        "INSERT INTO runs (id, tenant, workflow_ref, status, inputs, created_at) \
         VALUES (?1, 'globex', 'acme/etl@1', 'running', '{}', 1000000)",
    )
    .bind(uuid::Uuid::now_v7().as_bytes().to_vec())
    .execute(store.pool())
    .await
    .expect("a run of the old schema");
    store.migrate().await.expect("this build's migrations");
    conformance::a_workflow_stored_before_tenants_is_the_default_tenants(&store, &wf).await;
    conformance::a_tenant_with_runs_of_a_workflow_keeps_it(&store, &wf, "globex").await;
    store.pool().close().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_write_lock_held_past_the_busy_timeout_is_unavailable() {
    let dir = temp_dir();
    let path = dir.join("baton.db");
    let store = SqliteStore::open(&path, 2).await.unwrap();
    store.migrate().await.unwrap();
    let wf = conformance::fixtures::pipeline("acme", "etl", 1);
    let queued = conformance::fixtures::new_run("t", "acme/etl@1", 1_000);
    let id = conformance::fixtures::create(&store, queued).await.id;
    // Another process holds the write lock; this one gives up after 100 ms.
    let other = baton_sqlite::open(&path, 1).await.unwrap();
    let mut holder = other.begin_with("BEGIN IMMEDIATE").await.unwrap();
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
        .unwrap()
        .busy_timeout(Duration::from_millis(100));
    let impatient = SqliteStore::from_pool(
        SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .unwrap(),
    );

    let run = conformance::fixtures::new_run("t", "acme/etl@1", 1_000);
    let started = impatient.create_runs(vec![run]).await;
    assert!(
        matches!(started, Err(StoreError::Unavailable(_))),
        "{:?}",
        started.map(|r| r.len())
    );
    // A batch only reads until its commit, and the commit is what waits for the lock.
    let start = |batch: &mut Box<dyn baton_store::RunBatch>| {
        let mut fx = Default::default();
        conformance::fixtures::Move::Start { now: 2_000 }.apply(&mut batch.runs()[0], &wf, &mut fx);
    };
    let mut batch = impatient.lock_runs(&[id]).await.expect("lock_runs reads");
    start(&mut batch);
    let committed = batch.commit().await;
    assert!(
        matches!(committed, Err(StoreError::Unavailable(_))),
        "commit: {:?}",
        committed.map(|r| r.len())
    );
    // Reads do not wait for writers.
    assert!(
        impatient
            .list_events(uuid::Uuid::new_v4(), 0, 10)
            .await
            .unwrap()
            .is_empty()
    );

    sqlx::query("SELECT 1").execute(&mut *holder).await.unwrap();
    holder.rollback().await.unwrap();
    let mut batch = impatient.lock_runs(&[id]).await.expect("lock_runs");
    start(&mut batch);
    let committed = batch.commit().await;
    assert!(
        committed.is_ok(),
        "once the lock is free: {:?}",
        committed.err()
    );
    for pool in [impatient.pool(), store.pool(), &other] {
        pool.close().await;
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_file_without_the_schema_is_refused_by_name() {
    let dir = temp_dir();
    let store = SqliteStore::open(&dir.join("baton.db"), 1).await.unwrap();
    store.ping().await.expect("the file answers");
    match store.find_run(uuid::Uuid::new_v4()).await {
        Err(StoreError::Rejected(m)) => assert!(m.contains("runs"), "{m}"),
        other => panic!(
            "expected a refused statement, got {:?}",
            other.map(|r| r.is_some())
        ),
    }
    store.pool().close().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_file_that_cannot_be_created_is_unavailable_and_named() {
    match SqliteStore::open(Path::new("/proc/baton/cannot.db"), 1).await {
        Err(StoreError::Unavailable(m)) => assert!(m.contains("/proc/baton/cannot.db"), "{m}"),
        other => panic!("expected unavailable, got {:?}", other.map(|_| ())),
    }
}
