//! The bench's queries on the production backend's PostgreSQL database (timestamps are
//! `timestamptz`, ids `uuid`, id sets bound as arrays).

use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use super::{Dispatch, TERMINAL};

pub async fn connect(url: &str) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .context("cannot connect to the bench database")
}

pub async fn server_version(pool: &PgPool) -> anyhow::Result<String> {
    Ok(sqlx::query_scalar("SHOW server_version")
        .fetch_one(pool)
        .await?)
}

pub async fn run_counts(
    pool: &PgPool,
    tenant: &str,
    workflow_ref: &str,
    since_micros: i64,
) -> anyhow::Result<(i64, i64)> {
    // By tenant and creation time, so the index on (tenant, created_at) reads only the
    // scenario's runs, however much history the table holds.
    let sql = format!(
        "SELECT count(*), count(*) FILTER (WHERE status IN {TERMINAL}) \
         FROM runs WHERE tenant = $1 AND created_at >= to_timestamp($3 / 1e6) AND workflow_ref = $2"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(workflow_ref)
        .bind(since_micros as f64)
        .fetch_one(pool)
        .await
        .context("cannot count runs")
}

pub async fn statuses(pool: &PgPool, ids: &[Uuid]) -> anyhow::Result<Vec<(String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT status, count(*) FROM runs WHERE id = ANY($1) GROUP BY status ORDER BY status",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?)
}

pub async fn not_completed(
    pool: &PgPool,
    ids: &[Uuid],
) -> anyhow::Result<Vec<(Uuid, String, Option<String>)>> {
    Ok(sqlx::query_as(
        "SELECT id, status, error FROM runs WHERE id = ANY($1) AND status <> 'completed' \
         ORDER BY created_at LIMIT 5",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?)
}

pub async fn completed_steps(pool: &PgPool, ids: &[Uuid]) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM step_runs WHERE run_id = ANY($1) AND status = 'completed'",
    )
    .bind(ids)
    .fetch_one(pool)
    .await?)
}

pub async fn server_span(pool: &PgPool, ids: &[Uuid]) -> anyhow::Result<f64> {
    let span: Option<f64> = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM max(ended_at) - min(created_at))::float8 \
         FROM runs WHERE id = ANY($1)",
    )
    .bind(ids)
    .fetch_one(pool)
    .await?;
    span.context("the runs have no timestamps")
}

pub async fn run_spans(pool: &PgPool, ids: &[Uuid]) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let rows: Vec<(f64, f64)> = sqlx::query_as(
        "SELECT (EXTRACT(EPOCH FROM started_at - created_at) * 1000)::float8, \
                (EXTRACT(EPOCH FROM ended_at - created_at) * 1000)::float8 \
         FROM runs WHERE id = ANY($1) AND started_at IS NOT NULL AND ended_at IS NOT NULL",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
    .context("cannot read run timestamps")?;
    Ok(rows.into_iter().unzip())
}

pub async fn dispatch(pool: &PgPool, ids: &[Uuid]) -> anyhow::Result<Dispatch> {
    let enqueue_to_start = sqlx::query_scalar(
        "SELECT (EXTRACT(EPOCH FROM started_at - queued_at) * 1000)::float8 \
         FROM step_runs \
         WHERE run_id = ANY($1) AND queued_at IS NOT NULL AND started_at IS NOT NULL",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
    .context("cannot read step timestamps")?;
    let end_to_next_start = sqlx::query_scalar(
        "SELECT (EXTRACT(EPOCH FROM b.started_at - a.ended_at) * 1000)::float8 \
         FROM step_runs a JOIN step_runs b ON b.run_id = a.run_id AND b.position = a.position + 1 \
         WHERE a.run_id = ANY($1) AND a.ended_at IS NOT NULL AND b.started_at IS NOT NULL",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
    .context("cannot read step timestamps")?;
    Ok(Dispatch {
        enqueue_to_start,
        end_to_next_start,
    })
}

pub async fn step_durations(pool: &PgPool, ids: &[Uuid], kind: &str) -> anyhow::Result<Vec<f64>> {
    sqlx::query_scalar(
        "SELECT (EXTRACT(EPOCH FROM ended_at - started_at) * 1000)::float8 \
         FROM step_runs \
         WHERE run_id = ANY($1) AND kind = $2 AND started_at IS NOT NULL AND ended_at IS NOT NULL",
    )
    .bind(ids)
    .bind(kind)
    .fetch_all(pool)
    .await
    .context("cannot read step timestamps")
}
