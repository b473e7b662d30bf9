//! The queue roles on SQLite, in the same file as the embedded store, so a one-process deployment
//! (`baton dev`) that restarts keeps everything the queue acknowledged as sent. Each call is one
//! transaction; blocking reads wait on an in-process wake-up and poll for other handles' writes.

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use sqlx::{Sqlite, SqlitePool, Transaction, migrate::MigrateError};

use crate::{DEFAULT_DEAD_LETTERS_KEPT, QueueError};

mod admin;
mod events;
mod inbox;
mod jobs;
mod presence;
mod sql;
mod streams;
mod wake;

use wake::Wakers;

/// How many times opening retries the migrations when another process migrates the same new
/// file at the same moment (the loser's insert of the applied version fails; the retry sees it).
const MIGRATION_ATTEMPTS: u32 = 3;

/// Caps and timing of a [`SqliteQueue`].
#[derive(Clone, Debug, PartialEq)]
pub struct SqliteQueueConfig {
    /// Run events kept for live watchers (default 100 000, as the Redis events stream); older
    /// ones are trimmed as new ones arrive, and a watcher that fell behind replays the store.
    pub events_kept: u64,
    /// Dead letters kept (default [`DEFAULT_DEAD_LETTERS_KEPT`], 10 000, the Redis stream's cap
    /// too); the oldest go first.
    pub dead_letters_kept: u64,
    /// Cancel notices kept for subscribers still reading (default 10 000). Subscribers read them
    /// within a poll interval, so this only has to outlast a burst.
    pub cancels_kept: u64,
    /// How often a waiting read looks for writes made through another handle on the same file
    /// (default 100 ms). Writes through this handle wake it at once.
    pub poll_interval: Duration,
}

impl Default for SqliteQueueConfig {
    fn default() -> Self {
        Self {
            events_kept: 100_000,
            dead_letters_kept: DEFAULT_DEAD_LETTERS_KEPT,
            cancels_kept: 10_000,
            poll_interval: Duration::from_millis(100),
        }
    }
}

/// The embedded queue. Clones share one pool and one set of wake-ups; handles opened separately
/// on the same file share the data and see each other's writes within a poll interval.
#[derive(Clone)]
pub struct SqliteQueue {
    pool: SqlitePool,
    wakers: Arc<Wakers>,
    config: SqliteQueueConfig,
}

impl SqliteQueue {
    /// Connections of the pool [`SqliteQueue::open`] opens: SQLite takes one writer at a time,
    /// so more only serve concurrent reads.
    pub const MAX_CONNECTIONS: u32 = 4;

    /// Opens (creating it when missing) the database file at `path` and brings the queue's tables
    /// up to date.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, QueueError> {
        let pool = baton_sqlite::open(path.as_ref(), Self::MAX_CONNECTIONS)
            .await
            .map_err(|e| QueueError::Unavailable(e.to_string()))?;
        Self::from_pool(pool).await
    }

    /// Uses a pool on a file opened with [`baton_sqlite::open`] (the store's, in an embedded
    /// deployment) and brings the queue's tables up to date.
    pub async fn from_pool(pool: SqlitePool) -> Result<Self, QueueError> {
        migrate(&pool).await?;
        Ok(Self {
            pool,
            wakers: Arc::default(),
            config: SqliteQueueConfig::default(),
        })
    }

    /// Replaces the default caps and poll interval.
    pub fn with_config(mut self, config: SqliteQueueConfig) -> Self {
        self.config = config;
        self
    }

    pub fn config(&self) -> &SqliteQueueConfig {
        &self.config
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Starts a write transaction that holds the write lock from its first statement, so a
    /// read-then-write never fails on another connection's commit in between.
    async fn write(&self, step: &'static str) -> Result<Transaction<'static, Sqlite>, QueueError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(failed(step))
    }
}

/// Runs the queue's migrations (versions from 1001), leaving the store's alone.
async fn migrate(pool: &SqlitePool) -> Result<(), QueueError> {
    let mut migrator = sqlx::migrate!("migrations/sqlite");
    migrator.set_ignore_missing(true);
    let mut attempt = 1;
    loop {
        let error = match migrator.run(pool).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let in_the_database = matches!(
            error,
            MigrateError::Execute(_) | MigrateError::ExecuteMigration(..)
        );
        if in_the_database && attempt < MIGRATION_ATTEMPTS {
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let reason = format!("sqlite: migrating the queue tables: {error}");
        return Err(if in_the_database {
            QueueError::Unavailable(reason)
        } else {
            // A changed or unknown migration: the file is not one this build can use.
            QueueError::Corrupt(reason)
        });
    }
}

/// Maps a database error to [`QueueError::Unavailable`], naming the step that failed.
fn failed(step: &'static str) -> impl FnOnce(sqlx::Error) -> QueueError {
    move |e| QueueError::Unavailable(format!("sqlite: {step}: {e}"))
}

/// Unix microseconds: idle times are compared at this resolution, so a reclaim never comes a
/// fraction of a millisecond before the visibility timeout.
fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// A count or cap as SQLite's integer, saturating.
fn sql_int(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// An entry id handed out by this queue, parsed back.
fn entry_id(id: &str) -> Result<i64, QueueError> {
    id.parse()
        .map_err(|_| QueueError::Corrupt(format!("entry id {id:?} is not one this queue gave")))
}

fn entry_ids(ids: &[String]) -> Result<Vec<i64>, QueueError> {
    ids.iter().map(|id| entry_id(id)).collect()
}
