//! The embedded backend keeps the store and the queue in one SQLite file. Both open it here, so
//! they agree on the settings that make it durable and safe to share: write-ahead logging, full
//! syncs on commit, a busy timeout instead of "database is locked" errors, and foreign keys.

use std::{path::Path, str::FromStr, time::Duration};

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// How long a statement waits for another connection's write to finish before it fails.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the file could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the database file {path}: {reason}")]
pub struct OpenError {
    pub path: String,
    pub reason: String,
}

/// Opens (creating it and its directory when missing) the database file at `path` with a pool
/// of at most `max_connections`. `:memory:` opens a private in-memory database of one
/// connection, for tests that need nothing on disk.
pub async fn open(path: &Path, max_connections: u32) -> Result<SqlitePool, OpenError> {
    let error = |reason: String| OpenError {
        path: path.display().to_string(),
        reason,
    };
    let memory = path.as_os_str() == ":memory:";
    if !memory && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| error(e.to_string()))?;
    }
    let options = if memory {
        SqliteConnectOptions::from_str("sqlite::memory:").map_err(|e| error(e.to_string()))?
    } else {
        SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
    }
    .synchronous(SqliteSynchronous::Full)
    .busy_timeout(BUSY_TIMEOUT)
    .foreign_keys(true);
    SqlitePoolOptions::new()
        // An in-memory database exists once per connection: keep exactly one.
        .max_connections(if memory { 1 } else { max_connections.max(1) })
        .min_connections(if memory { 1 } else { 0 })
        .idle_timeout(if memory {
            None
        } else {
            Some(Duration::from_secs(600))
        })
        .max_lifetime(None)
        .acquire_timeout(BUSY_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|e| error(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_is_created_with_its_directory_and_in_wal_mode() {
        let dir = std::env::temp_dir().join(format!("baton-sqlite-{}", std::process::id()));
        let path = dir.join("nested").join("baton.db");
        let pool = open(&path, 2).await.unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(keys, 1);
        pool.close().await;
        assert!(path.exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn an_unwritable_place_names_the_path() {
        let err = open(Path::new("/proc/baton/cannot.db"), 1)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("/proc/baton/cannot.db"), "{err}");
    }
}
