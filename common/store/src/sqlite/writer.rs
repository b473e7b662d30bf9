//! One writer at a time. SQLite has no row locks: a write transaction holds the whole file's
//! write lock from `BEGIN IMMEDIATE` to its commit, so every write here is one short
//! transaction. Writers of one handle first queue here, in process and without holding a
//! connection, so they wait in order and the pool stays free for readers; writers of other
//! handles and processes wait on SQLite's lock, up to the busy timeout.

use std::sync::Arc;

use sqlx::{Sqlite, SqlitePool, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::error::sqlite_error;
use crate::StoreError;

/// How long a writer waits for its turn among this handle's writers: as long as SQLite waits
/// for another connection's lock, so a turn that never comes fails the same way.
const TURN_TIMEOUT: std::time::Duration = baton_sqlite::BUSY_TIMEOUT;

/// This handle's place in line for the file's write lock.
#[derive(Clone, Debug, Default)]
pub(super) struct Writer(Arc<Mutex<()>>);

/// This handle's turn to write; other writers of the handle wait until it is dropped.
pub(super) type Turn = OwnedMutexGuard<()>;

impl Writer {
    /// Waits for this handle's turn (not yet SQLite's lock: a statement run with the turn held
    /// takes that itself).
    pub(super) async fn turn(&self) -> Result<Turn, StoreError> {
        tokio::time::timeout(TURN_TIMEOUT, self.0.clone().lock_owned())
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "no turn to write within {TURN_TIMEOUT:?}: another write of this store holds \
                     the database's write lock"
                ))
            })
    }

    /// A transaction holding the file's write lock, taken at `BEGIN` so it is never refused
    /// halfway through for a lock another connection took after it read.
    pub(super) async fn begin(&self, pool: &SqlitePool) -> Result<WriteTx, StoreError> {
        let turn = self.turn().await?;
        let tx = pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(sqlite_error)?;
        Ok(WriteTx { tx, _turn: turn })
    }
}

/// A write transaction and the turn it holds. Dropped uncommitted, the transaction rolls back
/// (sqlx queues the `ROLLBACK` on the connection) before the turn passes on.
pub(super) struct WriteTx {
    // Declared first so it drops (and queues its rollback) before the turn is released.
    pub(super) tx: Transaction<'static, Sqlite>,
    _turn: Turn,
}

impl WriteTx {
    pub(super) async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(sqlite_error)
    }
}
