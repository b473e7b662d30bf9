//! Retention: finished runs older than the operator keeps are deleted in small batches, each one
//! statement (so one short transaction) that takes their steps, attempts and events with them.

use super::{PgStore, error::pg_error};
use crate::{StoreError, retention::finished_statuses};

impl PgStore {
    /// Deletes up to `limit` runs that ended before `ended_before_micros`, oldest first. Runs a
    /// batch holds locked are skipped rather than waited for, so retention never stalls the
    /// runner; the next round takes them.
    #[tracing::instrument(skip_all, fields(limit, deleted = tracing::field::Empty))]
    pub(super) async fn delete_finished(
        &self,
        ended_before_micros: i64,
        limit: i64,
    ) -> Result<u64, StoreError> {
        if limit <= 0 {
            return Ok(0);
        }
        let ended_before = chrono::DateTime::from_timestamp_micros(ended_before_micros).unwrap_or(
            if ended_before_micros < 0 {
                chrono::DateTime::<chrono::Utc>::MIN_UTC
            } else {
                chrono::DateTime::<chrono::Utc>::MAX_UTC
            },
        );
        // Steps, attempts and events go with their run (ON DELETE CASCADE).
        let deleted = sqlx::query(
            "DELETE FROM runs WHERE id IN ( \
               SELECT id FROM runs \
               WHERE ended_at IS NOT NULL AND ended_at < $1 AND status = ANY($2) \
               ORDER BY ended_at, id LIMIT $3 \
               FOR UPDATE SKIP LOCKED)",
        )
        .bind(ended_before)
        .bind(finished_statuses())
        .bind(limit)
        .execute(&self.pool)
        .await
        .map_err(pg_error)?
        .rows_affected();
        tracing::Span::current().record("deleted", deleted);
        Ok(deleted)
    }
}
