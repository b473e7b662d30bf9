//! Step leases on SQLite. One file lives on one machine, so this process's clock is the
//! database's.

use sqlx::SqlitePool;
use uuid::Uuid;

use super::{error::sqlite_error, writer::Writer};
use crate::{StepLease, StoreError};

pub(super) async fn expired(pool: &SqlitePool, limit: i64) -> Result<Vec<StepLease>, StoreError> {
    let rows: Vec<(Uuid, String, String, i64, i64)> = sqlx::query_as(
        "SELECT s.run_id, s.step_id, s.kind, s.attempt, s.lease FROM step_runs s \
         JOIN runs r ON r.id = s.run_id \
         WHERE s.lease_expires_at < ?1 AND s.status IN ('queued', 'running') \
           AND r.status = 'running' \
         ORDER BY s.lease_expires_at LIMIT ?2",
    )
    .bind(baton_engine::now_micros())
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(sqlite_error)?;
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
    pool: &SqlitePool,
    writer: &Writer,
    leases: &[StepLease],
    ttl_micros: i64,
) -> Result<u64, StoreError> {
    if leases.is_empty() {
        return Ok(0);
    }
    let until = baton_engine::now_micros().saturating_add(ttl_micros);
    let mut tx = writer.begin(pool).await?;
    let mut renewed = 0;
    for lease in leases {
        renewed += sqlx::query(
            "UPDATE step_runs SET lease_expires_at = ?1 \
             WHERE run_id = ?2 AND step_id = ?3 AND lease = ?4 AND lease_expires_at IS NOT NULL",
        )
        .bind(until)
        .bind(lease.run_id)
        .bind(&lease.step_id)
        .bind(i64::try_from(lease.lease).unwrap_or(i64::MAX))
        .execute(&mut *tx.tx)
        .await
        .map_err(sqlite_error)?
        .rows_affected();
    }
    tx.commit().await?;
    Ok(renewed)
}
