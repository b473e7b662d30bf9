//! Read-only queries on the platform's database, whichever backend holds it. The bench measures
//! completion and dispatch delays from the timestamps the services record, which are exact where
//! client-side timing would add gRPC and polling noise. Each backend's SQL lives in its module;
//! both answer the same questions in the same units.

mod postgres;
mod sqlite;

use std::path::Path;

use uuid::Uuid;

/// Statuses in which a run has ended.
const TERMINAL: &str = "('completed', 'failed', 'cancelled', 'timed_out')";

/// Delays between a step's timestamps, in milliseconds, over a set of chain runs.
#[derive(Clone, Debug, Default)]
pub struct Dispatch {
    /// `started_at - queued_at` of every step: job enqueued → started.
    pub enqueue_to_start: Vec<f64>,
    /// `started_at(position i+1) - ended_at(position i)`: step end → dependent start.
    pub end_to_next_start: Vec<f64>,
}

/// A connection pool on the database of the platform under test.
pub enum Db {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

impl Db {
    /// The bench database of the production backend.
    pub async fn postgres(url: &str) -> anyhow::Result<Self> {
        Ok(Self::Postgres(postgres::connect(url).await?))
    }

    /// The SQLite file of the embedded backend, once `baton dev` has created it.
    pub async fn sqlite(path: &Path) -> anyhow::Result<Self> {
        Ok(Self::Sqlite(sqlite::connect(path).await?))
    }

    /// The database's version: `SHOW server_version` or `sqlite_version()`.
    pub async fn server_version(&self) -> anyhow::Result<String> {
        match self {
            Self::Postgres(pool) => postgres::server_version(pool).await,
            Self::Sqlite(pool) => sqlite::server_version(pool).await,
        }
    }

    /// Runs of a workflow in `tenant` created at or after `since_micros`: (all, ended).
    pub async fn run_counts(
        &self,
        tenant: &str,
        workflow_ref: &str,
        since_micros: i64,
    ) -> anyhow::Result<(i64, i64)> {
        match self {
            Self::Postgres(pool) => {
                postgres::run_counts(pool, tenant, workflow_ref, since_micros).await
            }
            Self::Sqlite(pool) => {
                sqlite::run_counts(pool, tenant, workflow_ref, since_micros).await
            }
        }
    }

    /// How many of these runs are in each status.
    pub async fn statuses(&self, ids: &[Uuid]) -> anyhow::Result<Vec<(String, i64)>> {
        match self {
            Self::Postgres(pool) => postgres::statuses(pool, ids).await,
            Self::Sqlite(pool) => sqlite::statuses(pool, ids).await,
        }
    }

    /// A few of these runs that did not complete: (id, status, error).
    pub async fn not_completed(
        &self,
        ids: &[Uuid],
    ) -> anyhow::Result<Vec<(Uuid, String, Option<String>)>> {
        match self {
            Self::Postgres(pool) => postgres::not_completed(pool, ids).await,
            Self::Sqlite(pool) => sqlite::not_completed(pool, ids).await,
        }
    }

    /// Completed steps of these runs.
    pub async fn completed_steps(&self, ids: &[Uuid]) -> anyhow::Result<i64> {
        match self {
            Self::Postgres(pool) => postgres::completed_steps(pool, ids).await,
            Self::Sqlite(pool) => sqlite::completed_steps(pool, ids).await,
        }
    }

    /// `max(ended_at) - min(created_at)` over these runs, in seconds.
    pub async fn server_span(&self, ids: &[Uuid]) -> anyhow::Result<f64> {
        match self {
            Self::Postgres(pool) => postgres::server_span(pool, ids).await,
            Self::Sqlite(pool) => sqlite::server_span(pool, ids).await,
        }
    }

    /// Per run, in ms: `started_at - created_at` (accepted → started) and `ended_at - created_at`
    /// (accepted → ended).
    pub async fn run_spans(&self, ids: &[Uuid]) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
        match self {
            Self::Postgres(pool) => postgres::run_spans(pool, ids).await,
            Self::Sqlite(pool) => sqlite::run_spans(pool, ids).await,
        }
    }

    /// Dispatch delays of the steps of these chain runs (positions 0..n, each needing the
    /// previous one).
    pub async fn dispatch(&self, ids: &[Uuid]) -> anyhow::Result<Dispatch> {
        match self {
            Self::Postgres(pool) => postgres::dispatch(pool, ids).await,
            Self::Sqlite(pool) => sqlite::dispatch(pool, ids).await,
        }
    }

    /// `ended_at - started_at` of the steps of `kind` in these runs, ms: what each step took
    /// from its start being recorded to its end.
    pub async fn step_durations(&self, ids: &[Uuid], kind: &str) -> anyhow::Result<Vec<f64>> {
        match self {
            Self::Postgres(pool) => postgres::step_durations(pool, ids, kind).await,
            Self::Sqlite(pool) => sqlite::step_durations(pool, ids, kind).await,
        }
    }

    /// The PostgreSQL pool of the production backend; `None` on SQLite.
    pub fn postgres_pool(&self) -> Option<&sqlx::PgPool> {
        match self {
            Self::Postgres(pool) => Some(pool),
            Self::Sqlite(_) => None,
        }
    }

    pub async fn close(self) {
        match self {
            Self::Postgres(pool) => pool.close().await,
            Self::Sqlite(pool) => pool.close().await,
        }
    }
}
