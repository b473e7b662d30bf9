//! API keys on Postgres: one statement per call; a revoke keeps the first time with `COALESCE`,
//! so two revokes racing leave the earlier write.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{PgStore, error::pg_error, rows::api_key_from_row};
use crate::{
    ApiKeyRecord, KeyStore, NewApiKey, StoreError,
    columns::{API_KEY_COLUMNS, trusted},
};

/// `micros` as a timestamp Postgres can hold, or a refusal naming `field`.
fn timestamp(field: &str, micros: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| StoreError::Rejected(format!("{field}: {micros} is not a time")))
}

#[async_trait]
impl KeyStore for PgStore {
    #[tracing::instrument(skip_all, fields(key.id = %key.id, tenant = %key.tenant))]
    async fn create_api_key(&self, key: NewApiKey) -> Result<ApiKeyRecord, StoreError> {
        let created_at = timestamp("created_at_micros", key.created_at_micros)?;
        let row = sqlx::query(trusted(format!(
            "INSERT INTO api_keys (id, tenant, role, name, secret_hash, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING \
             RETURNING {API_KEY_COLUMNS}"
        )))
        .bind(&key.id)
        .bind(&key.tenant)
        .bind(&key.role)
        .bind(&key.name)
        .bind(&key.secret_hash)
        .bind(&key.created_by)
        .bind(created_at)
        .fetch_optional(&self.pool)
        .await
        .map_err(pg_error)?
        .ok_or_else(|| StoreError::api_key_taken(&key.id))?;
        api_key_from_row(&row)
    }

    async fn find_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row = sqlx::query(trusted(format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(pg_error)?;
        row.as_ref().map(api_key_from_row).transpose()
    }

    async fn list_api_keys(
        &self,
        tenant: Option<&str>,
        include_revoked: bool,
    ) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let rows = sqlx::query(trusted(format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE ($1::text IS NULL OR tenant = $1) \
             AND ($2 OR revoked_at IS NULL) ORDER BY created_at DESC, id DESC"
        )))
        .bind(tenant)
        .bind(include_revoked)
        .fetch_all(&self.pool)
        .await
        .map_err(pg_error)?;
        rows.iter().map(api_key_from_row).collect()
    }

    #[tracing::instrument(skip_all, fields(key.id = %id))]
    async fn revoke_api_key(
        &self,
        id: &str,
        at_micros: i64,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        let at = timestamp("at_micros", at_micros)?;
        let row = sqlx::query(trusted(format!(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 \
             RETURNING {API_KEY_COLUMNS}"
        )))
        .bind(id)
        .bind(at)
        .fetch_optional(&self.pool)
        .await
        .map_err(pg_error)?;
        row.as_ref().map(api_key_from_row).transpose()
    }

    async fn count_active_api_keys(&self) -> Result<u64, StoreError> {
        let count: i64 =
            sqlx::query_scalar("SELECT count(*) FROM api_keys WHERE revoked_at IS NULL")
                .fetch_one(&self.pool)
                .await
                .map_err(pg_error)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}
