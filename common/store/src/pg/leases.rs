//! Step leases on Postgres, judged by the database's clock, so no replica's clock decides whose
//! job is lost. Leases are set from `clock_timestamp()`; the expiry scan compares with `now()`
//! (the same clock at the statement's start), which, unlike `clock_timestamp()`, can drive the
//! partial index on `lease_expires_at` instead of a scan of every step.

use sqlx::PgPool;
use uuid::Uuid;

use super::error::pg_error;
use crate::{StepLease, StoreError};

pub(super) async fn expired(pool: &PgPool, limit: i64) -> Result<Vec<StepLease>, StoreError> {
    let rows: Vec<(Uuid, String, String, i32, i64)> = sqlx::query_as(
        "SELECT s.run_id, s.step_id, s.kind, s.attempt, s.lease FROM step_runs s \
         JOIN runs r ON r.id = s.run_id \
         WHERE s.lease_expires_at < now() AND s.status IN ('queued', 'running') \
           AND r.status = 'running' \
         ORDER BY s.lease_expires_at LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(pg_error)?;
    Ok(rows
        .into_iter()
        .map(|(run_id, step_id, kind, attempt, lease)| StepLease {
            run_id,
            step_id,
            kind,
            attempt: u32::try_from(attempt).unwrap_or(0),
            lease: u64::try_from(lease).unwrap_or(0),
        })
        .collect())
}

pub(super) async fn renew(
    pool: &PgPool,
    leases: &[StepLease],
    ttl_micros: i64,
) -> Result<u64, StoreError> {
    if leases.is_empty() {
        return Ok(0);
    }
    let mut sorted: Vec<&StepLease> = leases.iter().collect();
    // One order for every replica, so two renewals over the same steps cannot deadlock.
    sorted.sort_by(|a, b| (a.run_id, &a.step_id).cmp(&(b.run_id, &b.step_id)));
    let runs: Vec<Uuid> = sorted.iter().map(|l| l.run_id).collect();
    let steps: Vec<&str> = sorted.iter().map(|l| l.step_id.as_str()).collect();
    let tokens: Vec<i64> = sorted
        .iter()
        .map(|l| i64::try_from(l.lease).unwrap_or(i64::MAX))
        .collect();
    let renewed = sqlx::query(
        "UPDATE step_runs s SET lease_expires_at = clock_timestamp() + $4 * interval '1 microsecond' \
         FROM UNNEST($1::uuid[], $2::text[], $3::int8[]) AS u(run_id, step_id, lease) \
         WHERE s.run_id = u.run_id AND s.step_id = u.step_id AND s.lease = u.lease \
           AND s.lease_expires_at IS NOT NULL",
    )
    .bind(&runs)
    .bind(&steps)
    .bind(&tokens)
    .bind(ttl_micros)
    .execute(pool)
    .await
    .map_err(pg_error)?;
    Ok(renewed.rows_affected())
}
