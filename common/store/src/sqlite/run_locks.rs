//! Run locks in process, in place of the row locks SQLite does not have: a batch holds its runs
//! here from `lock_runs` to its commit or drop, without a connection or the file's write lock,
//! so the file stays free for every other writer (the embedded queue among them) meanwhile.
//! Every handle of this process on one file shares one set, so their batches take turns too.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, LazyLock, Mutex, Weak},
};

use sqlx::SqlitePool;
use tokio::sync::{Mutex as RunMutex, OwnedMutexGuard};
use uuid::Uuid;

use crate::StoreError;

/// How long a batch waits for a run another batch of this process holds: as long as SQLite
/// waits for another connection's lock, so a lock that never comes fails the same way.
const LOCK_TIMEOUT: std::time::Duration = baton_sqlite::BUSY_TIMEOUT;

/// The run locks of each database file open in this process, by the file's canonical path (an
/// in-memory database by the name sqlx gave it, once per pool). Held weakly: a file's locks go
/// when its last handle does.
static FILES: LazyLock<Mutex<HashMap<PathBuf, Weak<RunLocks>>>> = LazyLock::new(Default::default);

/// The runs of one file that batches of this process hold or wait for. A run's entry lives
/// while anyone holds or waits for it; the last to let go removes it.
#[derive(Debug, Default)]
pub(super) struct RunLocks {
    runs: Mutex<HashMap<Uuid, Arc<RunMutex<()>>>>,
}

impl RunLocks {
    /// The locks every handle of this process on `pool`'s file shares.
    pub(super) fn of(pool: &SqlitePool) -> Arc<Self> {
        let key = file_key(pool.connect_options().get_filename());
        let mut files = FILES.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(locks) = files.get(&key).and_then(Weak::upgrade) {
            return locks;
        }
        files.retain(|_, locks| locks.strong_count() > 0);
        let locks = Arc::new(Self::default());
        files.insert(key, Arc::downgrade(&locks));
        locks
    }

    /// Waits for each of `ids` (sorted and without duplicates, so two batches always take
    /// shared runs in the same order and cannot deadlock) and holds them until the guard drops.
    pub(super) async fn lock(self: &Arc<Self>, ids: &[Uuid]) -> Result<HeldRuns, StoreError> {
        debug_assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids sorted and unique");
        let deadline = tokio::time::Instant::now() + LOCK_TIMEOUT;
        let mut held = HeldRuns {
            locks: self.clone(),
            ids: Vec::with_capacity(ids.len()),
            guards: Vec::with_capacity(ids.len()),
        };
        for &id in ids {
            let run = self.entry(id);
            held.ids.push(id);
            let guard = tokio::time::timeout_at(deadline, run.lock_owned())
                .await
                .map_err(|_| {
                    StoreError::Unavailable(format!(
                        "run {id} not free within {LOCK_TIMEOUT:?}: another batch of this \
                         process holds it"
                    ))
                })?;
            held.guards.push(guard);
        }
        Ok(held)
    }

    fn entry(&self, id: Uuid) -> Arc<RunMutex<()>> {
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        runs.entry(id).or_default().clone()
    }

    /// Removes the entries of `ids` that nobody holds or waits for any more (only the map
    /// refers to them). Waiters take their reference under the same lock, so none is removed
    /// from under one.
    fn forget_unused(&self, ids: &[Uuid]) {
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        for id in ids {
            if runs.get(id).is_some_and(|run| Arc::strong_count(run) == 1) {
                runs.remove(id);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.runs.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Runs held by one batch; dropping it (at commit, or with the batch) lets the next batch in.
#[derive(Debug)]
pub(super) struct HeldRuns {
    locks: Arc<RunLocks>,
    /// Every run this batch held or waited for, so dropping it cleans up after a wait that
    /// timed out too.
    ids: Vec<Uuid>,
    guards: Vec<OwnedMutexGuard<()>>,
}

impl Drop for HeldRuns {
    fn drop(&mut self) {
        self.guards.clear();
        self.locks.forget_unused(&self.ids);
    }
}

/// One key per file however it was named: the canonical path, or for a file not there yet its
/// canonical directory and name. An in-memory database's name is unique to its pool already.
fn file_key(path: &Path) -> PathBuf {
    if let Ok(canonical) = std::fs::canonicalize(path) {
        return canonical;
    }
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            std::fs::canonicalize(dir).map_or_else(|_| path.to_path_buf(), |d| d.join(name))
        }
        _ => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();
        ids.sort_unstable();
        ids
    }

    #[tokio::test]
    async fn a_held_run_waits_and_a_released_one_leaves_nothing_behind() {
        let locks = Arc::new(RunLocks::default());
        let runs = ids(2);
        let first = locks.lock(&runs).await.unwrap();
        let mut second = Box::pin(locks.lock(&runs[1..]));
        assert!(
            poll_once(&mut second).await.is_none(),
            "a held run is not granted twice"
        );
        let disjoint = ids(1);
        drop(locks.lock(&disjoint).await.unwrap());
        drop(first);
        let second = second.await.unwrap();
        assert_eq!(locks.len(), 1, "only the run still held");
        drop(second);
        assert_eq!(locks.len(), 0);
    }

    /// Polls `f` once, so a test can see that it waits without sleeping.
    async fn poll_once<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut *f).poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }

    #[test]
    fn a_file_has_one_key_however_it_is_named() {
        let dir = std::env::temp_dir().join(format!("baton-locks-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("baton.db");
        let before = file_key(&path);
        std::fs::write(&path, b"").unwrap();
        assert_eq!(file_key(&path), before);
        assert_eq!(file_key(&dir.join(".").join("baton.db")), before);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
