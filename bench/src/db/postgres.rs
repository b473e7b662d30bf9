//! Read-only queries on the services' database. The bench measures completion and dispatch
//! delays from the timestamps the services record, which are exact where client-side timing
//! would add gRPC and polling noise.

use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
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

pub struct Db {
    pool: PgPool,
}

impl Db {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .context("cannot connect to the bench database")?;
        Ok(Self { pool })
    }

    /// `SHOW server_version`.
    pub async fn server_version(&self) -> anyhow::Result<String> {
        Ok(sqlx::query_scalar("SHOW server_version")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Runs of a workflow: (all, ended).
    pub async fn run_counts(&self, workflow_ref: &str) -> anyhow::Result<(i64, i64)> {
        let sql = format!(
            "SELECT count(*), count(*) FILTER (WHERE status IN {TERMINAL}) \
             FROM runs WHERE workflow_ref = $1"
        );
        let row: (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(workflow_ref)
            .fetch_one(&self.pool)
            .await
            .context("cannot count runs")?;
        Ok(row)
    }

    /// How many of these runs are in each status.
    pub async fn statuses(&self, ids: &[Uuid]) -> anyhow::Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT status, count(*) FROM runs WHERE id = ANY($1) GROUP BY status ORDER BY status",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await?)
    }

    /// A few of these runs that did not complete: (id, status, error).
    pub async fn not_completed(
        &self,
        ids: &[Uuid],
    ) -> anyhow::Result<Vec<(Uuid, String, Option<String>)>> {
        Ok(sqlx::query_as(
            "SELECT id, status, error FROM runs WHERE id = ANY($1) AND status <> 'completed' \
             ORDER BY created_at LIMIT 5",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Completed steps of these runs.
    pub async fn completed_steps(&self, ids: &[Uuid]) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM step_runs WHERE run_id = ANY($1) AND status = 'completed'",
        )
        .bind(ids)
        .fetch_one(&self.pool)
        .await?)
    }

    /// `max(ended_at) - min(created_at)` over these runs, in seconds.
    pub async fn server_span(&self, ids: &[Uuid]) -> anyhow::Result<f64> {
        let span: Option<f64> = sqlx::query_scalar(
            "SELECT EXTRACT(EPOCH FROM max(ended_at) - min(created_at))::float8 \
             FROM runs WHERE id = ANY($1)",
        )
        .bind(ids)
        .fetch_one(&self.pool)
        .await?;
        span.context("the runs have no timestamps")
    }

    /// Per run, in ms: `started_at - created_at` (accepted → started) and `ended_at - created_at`
    /// (accepted → ended).
    pub async fn run_spans(&self, ids: &[Uuid]) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
        let rows: Vec<(f64, f64)> = sqlx::query_as(
            "SELECT (EXTRACT(EPOCH FROM started_at - created_at) * 1000)::float8, \
                    (EXTRACT(EPOCH FROM ended_at - created_at) * 1000)::float8 \
             FROM runs WHERE id = ANY($1) AND started_at IS NOT NULL AND ended_at IS NOT NULL",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .context("cannot read run timestamps")?;
        Ok(rows.into_iter().unzip())
    }

    /// Dispatch delays of the steps of these chain runs (positions 0..n, each needing the
    /// previous one).
    pub async fn dispatch(&self, ids: &[Uuid]) -> anyhow::Result<Dispatch> {
        let enqueue_to_start = sqlx::query_scalar(
            "SELECT (EXTRACT(EPOCH FROM started_at - queued_at) * 1000)::float8 \
             FROM step_runs \
             WHERE run_id = ANY($1) AND queued_at IS NOT NULL AND started_at IS NOT NULL",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .context("cannot read step timestamps")?;
        let end_to_next_start = sqlx::query_scalar(
            "SELECT (EXTRACT(EPOCH FROM b.started_at - a.ended_at) * 1000)::float8 \
             FROM step_runs a JOIN step_runs b ON b.run_id = a.run_id AND b.position = a.position + 1 \
             WHERE a.run_id = ANY($1) AND a.ended_at IS NOT NULL AND b.started_at IS NOT NULL",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .context("cannot read step timestamps")?;
        Ok(Dispatch {
            enqueue_to_start,
            end_to_next_start,
        })
    }

    pub async fn close(self) {
        self.pool.close().await;
    }
}
