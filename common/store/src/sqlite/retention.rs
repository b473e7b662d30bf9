//! Retention on SQLite: finished runs older than the operator keeps are deleted in small batches,
//! each one short write transaction that takes their steps, attempts and events with them.

use super::{SqliteStore, error::sqlite_error};
use crate::{StoreError, retention::finished_statuses};

impl SqliteStore {
    /// Deletes up to `limit` runs that ended before `ended_before_micros`, oldest first.
    #[tracing::instrument(skip_all, fields(limit, deleted = tracing::field::Empty))]
    pub(super) async fn delete_finished(
        &self,
        ended_before_micros: i64,
        limit: i64,
    ) -> Result<u64, StoreError> {
        if limit <= 0 {
            return Ok(0);
        }
        let statuses = serde_json::Value::from(finished_statuses()).to_string();
        let _turn = self.writer.turn().await?;
        // Steps, attempts and events go with their run (ON DELETE CASCADE; the pool turns
        // foreign keys on).
        let deleted = sqlx::query(
            "DELETE FROM runs WHERE id IN ( \
               SELECT id FROM runs \
               WHERE ended_at IS NOT NULL AND ended_at < ?1 \
                 AND status IN (SELECT value FROM json_each(?2)) \
               ORDER BY ended_at, id LIMIT ?3)",
        )
        .bind(ended_before_micros)
        .bind(statuses)
        .bind(limit)
        .execute(&self.pool)
        .await
        .map_err(sqlite_error)?
        .rows_affected();
        tracing::Span::current().record("deleted", deleted);
        Ok(deleted)
    }
}
