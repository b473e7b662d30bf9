//! Run batches on the embedded file: an open batch holds its runs in this process and nothing
//! of the file, so the embedded queue and the store's other writes go on meanwhile, batches over
//! other runs are open at once, a batch over a held run waits for it and starts from what the
//! holder committed, and a batch over runs another process changed meanwhile writes nothing.

use std::{
    future::Future,
    path::{Path, PathBuf},
    time::Duration,
};

use baton_engine::{RunStatus, StepStatus, now_micros};
use baton_proto::v1::RunEventType;
use baton_store::{RunBatch, SqliteStore, Store, StoreError, WorkerHost};
use sqlx::SqlitePool;
use uuid::Uuid;

use crate::conformance::fixtures::*;

/// Far below the busy timeout (30 s) a write would wait out if an open batch held the file's
/// write lock, and far above what a free write takes on a loaded machine.
const PROMPTLY: Duration = Duration::from_secs(5);

/// How long a batch that must wait is watched to see it does not get through.
const WATCHED: Duration = Duration::from_millis(300);

/// Awaits `future`, failing the test when it takes longer than [`PROMPTLY`].
async fn promptly<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PROMPTLY, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {PROMPTLY:?}"))
}

/// A database file with Baton's schema, two store handles on it (two pools, as two services of
/// one process) and a pool of its own as the embedded queue opens; removed when dropped.
struct SharedFile {
    dir: PathBuf,
    path: PathBuf,
    a: SqliteStore,
    b: SqliteStore,
}

impl SharedFile {
    async fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("baton-store-{}", Uuid::new_v4().simple()));
        let path = dir.join("baton.db");
        let a = SqliteStore::open(&path, 4).await.expect("open a");
        a.migrate().await.expect("migrations apply");
        let b = SqliteStore::open(&path, 4).await.expect("open b");
        Self { dir, path, a, b }
    }

    /// Another pool on the file, as the embedded queue or another process opens it.
    async fn other_pool(&self) -> SqlitePool {
        baton_sqlite::open(&self.path, 2)
            .await
            .expect("open the file")
    }
}

impl Drop for SharedFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What the embedded queue's `dispatch` does to the file: one write transaction of its own.
async fn write_as_the_queue(pool: &SqlitePool) {
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .expect("the queue takes the write lock");
    sqlx::query("CREATE TABLE IF NOT EXISTS queue_probe (id INTEGER PRIMARY KEY)")
        .execute(&mut *tx)
        .await
        .expect("create the probe");
    sqlx::query("INSERT INTO queue_probe DEFAULT VALUES")
        .execute(&mut *tx)
        .await
        .expect("the queue writes");
    tx.commit().await.expect("the queue commits");
}

async fn queue_writes(pool: &SqlitePool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM queue_probe")
        .fetch_one(pool)
        .await
        .expect("count the queue's writes")
}

async fn queued_run(store: &SqliteStore) -> Uuid {
    create(store, new_run("t", "acme/etl@1", now_micros()))
        .await
        .id
}

/// Locks `ids` and starts each run, without committing.
async fn started_batch(store: &SqliteStore, ids: &[Uuid]) -> Box<dyn RunBatch> {
    let wf = pipeline("acme", "etl", 1);
    let mut batch = promptly("lock_runs", store.lock_runs(ids))
        .await
        .expect("lock_runs");
    let mut fx = Default::default();
    for run in batch.runs() {
        Move::Start { now: now_micros() }.apply(run, &wf, &mut fx);
    }
    batch
}

/// The store's own writes, which must not wait for an open batch.
async fn other_store_writes(store: &SqliteStore) {
    let wf = pipeline("acme", "etl", 1);
    promptly("put_workflow", store.put_workflow(new_workflow(&wf)))
        .await
        .expect("put_workflow");
    promptly(
        "create_runs",
        store.create_runs(vec![new_run("t", "acme/etl@1", now_micros())]),
    )
    .await
    .expect("create_runs");
    let host = WorkerHost {
        worker_id: format!("w-{}", Uuid::new_v4().simple()),
        ..Default::default()
    };
    promptly("record_workers", store.record_workers(&[host]))
        .await
        .expect("record_workers");
}

#[tokio::test]
async fn an_open_batch_leaves_the_file_to_other_writers() {
    let file = SharedFile::new().await;
    let queue = file.other_pool().await;
    let id = queued_run(&file.a).await;

    let batch = started_batch(&file.a, &[id]).await;
    // The runner's step between locking and committing: the queue dispatches the batch's jobs
    // through its own connection, and the store keeps taking starts and registrations.
    promptly("the queue's write", write_as_the_queue(&queue)).await;
    other_store_writes(&file.a).await;
    other_store_writes(&file.b).await;
    let committed = promptly("commit", batch.commit()).await.expect("commit");

    assert_eq!(committed[0].status, RunStatus::Running);
    assert_eq!(load(&file.b, id).await.status, RunStatus::Running);
    assert_eq!(queue_writes(&queue).await, 1);
    queue.close().await;
}

#[tokio::test]
async fn an_open_batch_on_an_in_memory_store_holds_no_connection() {
    // One connection for everything: a batch that kept it would starve every other call.
    let store = SqliteStore::open(Path::new(":memory:"), 1)
        .await
        .expect("open");
    store.migrate().await.expect("migrations apply");
    let id = queued_run(&store).await;

    let batch = started_batch(&store, &[id]).await;
    other_store_writes(&store).await;
    let read = promptly("get_run", store.get_run(id))
        .await
        .expect("get_run");
    assert_eq!(read.map(|d| d.run.status), Some(RunStatus::Queued));
    promptly("commit", batch.commit()).await.expect("commit");
    assert_eq!(load(&store, id).await.status, RunStatus::Running);
}

#[tokio::test]
async fn batches_over_disjoint_runs_are_open_at_once() {
    let file = SharedFile::new().await;
    let ids = [
        queued_run(&file.a).await,
        queued_run(&file.a).await,
        queued_run(&file.a).await,
    ];

    let first = started_batch(&file.a, &ids[0..1]).await;
    let second = started_batch(&file.b, &ids[1..2]).await;
    let third = started_batch(&file.a, &ids[2..3]).await;
    for batch in [third, second, first] {
        promptly("commit", batch.commit()).await.expect("commit");
    }

    for id in ids {
        assert_eq!(load(&file.b, id).await.status, RunStatus::Running);
        assert_eq!(
            events(&file.a, id).await.len(),
            3,
            "queued, started, step queued"
        );
    }
}

/// Waits on its own task for `store` to lock `id`; gives back the batch and the run as loaded.
fn lock_on_a_task(
    store: &SqliteStore,
    id: Uuid,
) -> tokio::task::JoinHandle<(Box<dyn RunBatch>, Persisted)> {
    let store = store.clone();
    tokio::spawn(async move {
        let mut batch = store.lock_runs(&[id]).await.expect("lock_runs");
        let loaded = Persisted::from(&batch.runs()[0]);
        (batch, loaded)
    })
}

async fn still_waiting<T>(what: &str, task: &mut tokio::task::JoinHandle<T>) {
    assert!(
        tokio::time::timeout(WATCHED, task).await.is_err(),
        "{what} got through while another batch held its run"
    );
}

#[tokio::test]
async fn a_batch_over_a_held_run_waits_for_its_commit_and_starts_from_it() {
    let file = SharedFile::new().await;
    let wf = pipeline("acme", "etl", 1);
    let id = queued_run(&file.a).await;
    let other = queued_run(&file.a).await;

    let first = started_batch(&file.a, &[id]).await;
    let mut waiting = lock_on_a_task(&file.b, id);
    still_waiting("a batch of another handle", &mut waiting).await;
    // The waiting batch holds up nobody else.
    let (started_other, _) = promptly(
        "a batch over another run",
        change(&file.a, other, |r, fx| {
            Move::Start { now: now_micros() }.apply(r, &wf, fx)
        }),
    )
    .await;
    assert_eq!(started_other.status, RunStatus::Running);
    other_store_writes(&file.a).await;

    let committed = promptly("commit", first.commit()).await.expect("commit");
    let (mut second, loaded) = promptly("the waiting batch", waiting).await.expect("task");
    assert_eq!(
        loaded,
        Persisted::from(&committed[0]),
        "starts from the commit"
    );

    let mut fx = Default::default();
    let at = now_micros();
    Move::Started(started(id, "fetch", 1, "w1", at)).apply(&mut second.runs()[0], &wf, &mut fx);
    let committed = promptly("commit", second.commit()).await.expect("commit");

    // Dropped instead of committed, a batch lets the waiting one in all the same.
    let held = promptly("lock_runs", file.a.lock_runs(&[id]))
        .await
        .expect("lock_runs");
    let mut waiting = lock_on_a_task(&file.a, id);
    still_waiting("a batch of the same handle", &mut waiting).await;
    drop(held);
    let (_, loaded) = promptly("the waiting batch", waiting).await.expect("task");
    assert_eq!(loaded, Persisted::from(&committed[0]));
    assert_eq!(step(&committed[0], "fetch").status, StepStatus::Running);

    let sequences: Vec<i64> = events(&file.b, id)
        .await
        .iter()
        .map(|e| e.record.sequence)
        .collect();
    assert_eq!(sequences, [1, 2, 3, 4]);
}

/// Another process cancels the queued run `id`, as its store would: one transaction that moves
/// the run's `last_sequence` and adds the event.
async fn cancel_as_another_process(pool: &SqlitePool, id: Uuid) {
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .expect("the other process takes the write lock");
    let now = now_micros();
    sqlx::query(
        "UPDATE runs SET status = 'cancelled', ended_at = ?2, last_sequence = 2 WHERE id = ?1",
    )
    .bind(id)
    .bind(now)
    .execute(&mut *tx)
    .await
    .expect("cancel the run");
    sqlx::query(
        "INSERT INTO run_events (run_id, sequence, event_type, attempt, time) \
         VALUES (?1, 2, ?2, 0, ?3)",
    )
    .bind(id)
    .bind(RunEventType::RunCancelled.as_str_name())
    .bind(now)
    .execute(&mut *tx)
    .await
    .expect("record the cancel");
    tx.commit().await.expect("the other process commits");
}

#[tokio::test]
async fn a_batch_over_runs_another_process_changed_meanwhile_writes_nothing() {
    let file = SharedFile::new().await;
    let other_process = file.other_pool().await;
    let stale = queued_run(&file.a).await;
    let fresh = queued_run(&file.a).await;
    let fresh_before = Persisted::from(&load(&file.b, fresh).await);

    let batch = started_batch(&file.a, &[stale, fresh]).await;
    promptly(
        "the other process's write",
        cancel_as_another_process(&other_process, stale),
    )
    .await;
    match promptly("commit", batch.commit()).await {
        Err(StoreError::Conflict(m)) => {
            assert!(m.contains(&stale.to_string()), "names the run: {m}");
            assert!(!m.contains(&fresh.to_string()), "names only that run: {m}");
        }
        other => panic!(
            "expected a conflict, got {:?}",
            other.map(|runs| runs.len())
        ),
    }

    // Neither run has anything of the batch: the unchanged one is as it was, the changed one as
    // the other process left it, and a new batch of the same handle loads that.
    assert_eq!(Persisted::from(&load(&file.b, fresh).await), fresh_before);
    assert_eq!(events(&file.b, fresh).await.len(), 1);
    for store in [&file.a, &file.b] {
        let run = load(store, stale).await;
        assert_eq!(run.status, RunStatus::Cancelled);
        assert_eq!(run.last_sequence, 2);
        assert!(run.steps.is_empty(), "{:?}", run.steps);
    }
    let recorded: Vec<RunEventType> = events(&file.b, stale)
        .await
        .iter()
        .map(|e| e.record.event_type)
        .collect();
    assert_eq!(
        recorded,
        [RunEventType::RunQueued, RunEventType::RunCancelled]
    );
    other_process.close().await;
}
