//! The production store: Postgres, the source of truth shared by every replica.
//!
//! Batches lock their runs with row locks (`FOR UPDATE`), so batches over different runs write
//! at the same time; each batch is written in one statement (see [`batch`]).

mod batch;
mod error;
mod keys;
mod leases;
pub(crate) mod maintenance;
mod retention;
mod rows;

use std::collections::HashMap;

use async_trait::async_trait;
use baton_engine::RunState;
use baton_proto::v1::RunEventType;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, postgres::PgPoolOptions};
use uuid::Uuid;

use self::{
    batch::PgRunBatch,
    error::pg_error,
    rows::{attempt_from_row, event_from_row, run_from_row, step_from_row, ts, workflow_from_row},
};
use crate::{
    CreatedRun, NewRun, NewWorkflow, Page, PageRequest, PutWorkflowOutcome, RunBatch, RunDetail,
    RunFilter, StatusCounts, StepLease, Store, StoreError, StoredEvent, StoredWorkflow, WorkerHost,
    attempts::{with_final_attempts, worker_ids},
    codec::{host_from_json, host_to_json},
    columns::{RUN_COLUMNS, STEP_COLUMNS, WORKFLOW_COLUMNS, trusted},
    page::{page_size, parse_run_token, parse_workflow_token, run_page, workflow_page},
    step_cache::StepCache,
};

/// The Postgres schema, applied at service start. Versions 1..999.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a call waits for a connection before it reports the database unavailable. Short: a
/// healthy pool hands one over in microseconds, and while Postgres is down callers should hear
/// `UNAVAILABLE` within their deadlines (the runner waits an outage out by retrying).
const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// [`Store`] over a Postgres pool.
///
/// What bounds it: the pool's connections (each batch holds one until it commits) and row
/// locks, so batches over the same run take turns while batches over different runs write in
/// parallel, from any number of replicas.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    steps: StepCache,
}

impl PgStore {
    /// Connects with a pool of at most `max_connections`.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await
            .map_err(pg_error)?;
        Ok(Self::from_pool(pool))
    }

    pub fn from_pool(pool: PgPool) -> Self {
        Self {
            pool,
            steps: StepCache::default(),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies the embedded migrations; safe to call from every replica at start (the
    /// migrator takes an advisory lock). The same as [`Store::migrate`], for callers that hold
    /// the concrete store.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()))
    }
}

#[async_trait]
impl Store for PgStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        PgStore::migrate(self).await
    }

    #[tracing::instrument(skip_all, fields(tenant = %wf.tenant, workflow = %format!("{}/{}@{}", wf.owner, wf.name, wf.version)))]
    async fn put_workflow(&self, wf: NewWorkflow) -> Result<PutWorkflowOutcome, StoreError> {
        let inserted = sqlx::query(trusted(format!(
            "INSERT INTO workflows (tenant, owner, name, version, digest, definition) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING {WORKFLOW_COLUMNS}"
        )))
        .bind(&wf.tenant)
        .bind(&wf.owner)
        .bind(&wf.name)
        .bind(wf.version as i32)
        .bind(&wf.digest)
        .bind(&wf.definition)
        .fetch_optional(&self.pool)
        .await
        .map_err(pg_error)?;
        if let Some(row) = inserted {
            return Ok(PutWorkflowOutcome::Created(workflow_from_row(&row)?));
        }
        let existing = self
            .get_workflow(&wf.tenant, &wf.owner, &wf.name, Some(wf.version))
            .await?
            .ok_or_else(|| StoreError::Conflict("workflow vanished while registering".into()))?;
        Ok(if existing.digest == wf.digest {
            PutWorkflowOutcome::Unchanged(existing)
        } else {
            PutWorkflowOutcome::Conflict(existing)
        })
    }

    async fn get_workflow(
        &self,
        tenant: &str,
        owner: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<StoredWorkflow>, StoreError> {
        let row = sqlx::query(trusted(format!(
            "SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE tenant = $1 AND owner = $2 \
             AND name = $3 AND ($4::int4 IS NULL OR version = $4) ORDER BY version DESC LIMIT 1"
        )))
        .bind(tenant)
        .bind(owner)
        .bind(name)
        .bind(version.map(|v| v as i32))
        .fetch_optional(&self.pool)
        .await
        .map_err(pg_error)?;
        row.as_ref().map(workflow_from_row).transpose()
    }

    async fn list_workflows(
        &self,
        tenant: &str,
        owner: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<StoredWorkflow>, StoreError> {
        let after = parse_workflow_token(&page.token)?;
        let limit = page_size(&page);
        let rows = sqlx::query(trusted(format!(
            "SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE tenant = $1 \
             AND ($2::text IS NULL OR owner = $2) \
             AND ($3::text IS NULL OR (owner, name, -version) > ($3, $4, $5)) \
             ORDER BY owner, name, version DESC LIMIT $6"
        )))
        .bind(tenant)
        .bind(owner)
        .bind(after.as_ref().map(|a| a.owner.as_str()))
        .bind(after.as_ref().map(|a| a.name.as_str()))
        .bind(after.as_ref().map(|a| a.negated_version))
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(pg_error)?;
        let items = rows
            .iter()
            .map(workflow_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(workflow_page(items, limit))
    }

    #[tracing::instrument(skip_all, fields(runs = runs.len()))]
    async fn create_runs(&self, runs: Vec<NewRun>) -> Result<Vec<CreatedRun>, StoreError> {
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = runs.iter().map(|r| r.id).collect();
        let tenants: Vec<&str> = runs.iter().map(|r| r.tenant.as_str()).collect();
        let refs: Vec<&str> = runs.iter().map(|r| r.workflow_ref.as_str()).collect();
        let inputs: Vec<String> = runs.iter().map(|r| r.inputs.to_string()).collect();
        let keys: Vec<Option<&str>> = runs.iter().map(|r| r.idempotency_key.as_deref()).collect();
        let traces: Vec<String> = runs
            .iter()
            .map(|r| serde_json::to_string(&r.trace_context).unwrap_or_else(|_| "{}".into()))
            .collect();
        let created: Vec<DateTime<Utc>> = runs
            .iter()
            .map(|r| ts(Some(r.created_at)).unwrap_or_else(Utc::now))
            .collect();
        // Every run and its first event in one statement: one round trip and one commit for the
        // whole batch of concurrent StartRun calls.
        let rows = sqlx::query(trusted(format!(
            "WITH r AS (\
               INSERT INTO runs (id, tenant, workflow_ref, status, inputs, idempotency_key, created_at, last_sequence, trace_context) \
               SELECT id, tenant, workflow_ref, 'queued', inputs::jsonb, key, created_at, 1, trace::jsonb \
               FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $8::text[]) \
                 AS u(id, tenant, workflow_ref, inputs, key, created_at, trace) \
               ON CONFLICT (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
               RETURNING {RUN_COLUMNS}), \
             e AS (\
               INSERT INTO run_events (run_id, sequence, event_type, attempt, time) \
               SELECT id, 1, $7, 0, created_at FROM r) \
             SELECT {RUN_COLUMNS} FROM r"
        )))
        .bind(&ids)
        .bind(&tenants)
        .bind(&refs)
        .bind(&inputs)
        .bind(&keys)
        .bind(&created)
        .bind(RunEventType::RunQueued.as_str_name())
        .bind(&traces)
        .fetch_all(&self.pool)
        .await.map_err(pg_error)?;
        let mut inserted: HashMap<Uuid, RunState> = HashMap::with_capacity(rows.len());
        for row in &rows {
            let run = run_from_row(row)?;
            inserted.insert(run.id, run);
        }
        let mut results = Vec::with_capacity(runs.len());
        for run in runs {
            if let Some(state) = inserted.remove(&run.id) {
                results.push(Ok((state, true)));
                continue;
            }
            // Its idempotency key was taken, by an earlier run or one earlier in this batch.
            let row = sqlx::query(trusted(format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE tenant = $1 AND idempotency_key = $2"
            )))
            .bind(&run.tenant)
            .bind(&run.idempotency_key)
            .fetch_optional(&self.pool)
            .await
            .map_err(pg_error)?
            .ok_or_else(|| {
                StoreError::Conflict(format!(
                    "run {} of idempotency key `{}` vanished while starting",
                    run.id,
                    run.idempotency_key.as_deref().unwrap_or_default()
                ))
            })?;
            let existing = run_from_row(&row)?;
            results.push(if existing.workflow_ref != run.workflow_ref {
                Err(StoreError::Conflict(format!(
                    "idempotency key `{}` was used for run {} of workflow {}",
                    run.idempotency_key.unwrap_or_default(),
                    existing.id,
                    existing.workflow_ref
                )))
            } else {
                Ok((existing, false))
            });
        }
        Ok(results)
    }

    async fn find_run(&self, id: Uuid) -> Result<Option<RunState>, StoreError> {
        let row = sqlx::query(trusted(format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(pg_error)?;
        row.as_ref().map(run_from_row).transpose()
    }

    async fn get_run(&self, id: Uuid) -> Result<Option<RunDetail>, StoreError> {
        let Some(row) = sqlx::query(trusted(format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(pg_error)?
        else {
            return Ok(None);
        };
        let mut run = run_from_row(&row)?;
        let steps = sqlx::query(trusted(format!(
            "SELECT {STEP_COLUMNS} FROM step_runs WHERE run_id = $1 ORDER BY position"
        )))
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(pg_error)?;
        run.steps = steps.iter().map(step_from_row).collect::<Result<_, _>>()?;
        let rows = sqlx::query(
            "SELECT step_id, attempt, status, error, worker_id, queued_at, started_at, ended_at, usage \
             FROM step_attempts WHERE run_id = $1 ORDER BY ended_at, step_id, attempt",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await.map_err(pg_error)?;
        let attempts = rows
            .iter()
            .map(attempt_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let attempts = with_final_attempts(&run, attempts);
        let worker_ids = worker_ids(&attempts);
        let workers = if worker_ids.is_empty() {
            Vec::new()
        } else {
            let hosts: Vec<serde_json::Value> = sqlx::query_scalar(
                "SELECT host FROM workers WHERE worker_id = ANY($1) ORDER BY worker_id",
            )
            .bind(&worker_ids)
            .fetch_all(&self.pool)
            .await
            .map_err(pg_error)?;
            hosts.iter().map(host_from_json).collect()
        };
        Ok(Some(RunDetail {
            run,
            attempts,
            workers,
        }))
    }

    async fn list_runs(
        &self,
        filter: RunFilter,
        page: PageRequest,
    ) -> Result<Page<RunState>, StoreError> {
        let after = parse_run_token(&page.token)?;
        let limit = page_size(&page);
        let rows = sqlx::query(trusted(format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE tenant = $1 \
             AND ($2::text IS NULL OR workflow_ref = $2) AND ($3::text IS NULL OR status = $3) \
             AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5)) \
             ORDER BY created_at DESC, id DESC LIMIT $6"
        )))
        .bind(&filter.tenant)
        .bind(&filter.workflow_ref)
        .bind(filter.status.map(|s| s.as_str()))
        .bind(after.and_then(|a| ts(Some(a.created_at))))
        .bind(after.map(|a| a.id))
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(pg_error)?;
        let items = rows
            .iter()
            .map(run_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(run_page(items, limit))
    }

    async fn list_events(
        &self,
        run_id: Uuid,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT run_id, sequence, event_type, step_id, attempt, message, output, time FROM run_events \
             WHERE run_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
        )
        .bind(run_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await.map_err(pg_error)?;
        rows.iter().map(event_from_row).collect()
    }

    #[tracing::instrument(skip_all, fields(runs = ids.len()))]
    async fn lock_runs(&self, ids: &[Uuid]) -> Result<Box<dyn RunBatch>, StoreError> {
        Ok(Box::new(
            PgRunBatch::lock(&self.pool, &self.steps, ids).await?,
        ))
    }

    async fn overdue_runs(
        &self,
        now_micros: i64,
        grace_micros: i64,
        limit: i64,
    ) -> Result<Vec<Uuid>, StoreError> {
        let cutoff = ts(Some(now_micros - grace_micros)).unwrap_or_else(Utc::now);
        sqlx::query_scalar(
            "SELECT run_id FROM step_runs WHERE status = 'retrying' AND next_attempt_at < $1 \
             UNION SELECT id FROM runs WHERE status = 'running' AND deadline < $1 LIMIT $2",
        )
        .bind(cutoff)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(pg_error)
    }

    async fn queued_runs(
        &self,
        created_before_micros: i64,
        limit: i64,
    ) -> Result<Vec<Uuid>, StoreError> {
        let cutoff = ts(Some(created_before_micros)).unwrap_or_else(Utc::now);
        sqlx::query_scalar(
            "SELECT id FROM runs WHERE status = 'queued' AND created_at < $1 ORDER BY created_at LIMIT $2",
        )
        .bind(cutoff)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(pg_error)
    }

    async fn running_runs(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM runs WHERE status = 'running'")
            .fetch_one(&self.pool)
            .await
            .map_err(pg_error)?;
        Ok(n.max(0) as u64)
    }

    async fn expired_leases(&self, limit: i64) -> Result<Vec<StepLease>, StoreError> {
        leases::expired(&self.pool, limit).await
    }

    async fn renew_leases(&self, leases: &[StepLease], ttl_micros: i64) -> Result<u64, StoreError> {
        leases::renew(&self.pool, leases, ttl_micros).await
    }

    async fn status_counts(&self) -> Result<StatusCounts, StoreError> {
        let pairs = |rows: Vec<(String, i64)>| rows.into_iter().collect();
        let runs: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, count(*) FROM runs GROUP BY status")
                .fetch_all(&self.pool)
                .await
                .map_err(pg_error)?;
        let steps: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, count(*) FROM step_runs GROUP BY status")
                .fetch_all(&self.pool)
                .await
                .map_err(pg_error)?;
        let active: Vec<(String, i64)> = sqlx::query_as(
            "SELECT s.status, count(*) FROM step_runs s JOIN runs r ON r.id = s.run_id \
             WHERE r.status = 'running' GROUP BY s.status",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(pg_error)?;
        let retrying: Vec<(String, i64)> = sqlx::query_as(
            "SELECT kind, count(*) FROM step_runs WHERE status = 'retrying' GROUP BY kind",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(pg_error)?;
        Ok(StatusCounts {
            runs: pairs(runs),
            steps: pairs(steps),
            active_steps: pairs(active),
            retrying_by_kind: pairs(retrying),
        })
    }

    async fn delete_finished_runs(
        &self,
        ended_before_micros: i64,
        limit: i64,
    ) -> Result<u64, StoreError> {
        self.delete_finished(ended_before_micros, limit).await
    }

    async fn maintain(&self) -> Result<crate::MaintenanceReport, StoreError> {
        maintenance::maintain(&self.pool).await
    }

    async fn record_workers(&self, hosts: &[WorkerHost]) -> Result<(), StoreError> {
        if hosts.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = hosts.iter().map(|h| h.worker_id.as_str()).collect();
        let facts: Vec<String> = hosts.iter().map(|h| host_to_json(h).to_string()).collect();
        sqlx::query(
            "INSERT INTO workers (worker_id, host) SELECT id, host::jsonb FROM UNNEST($1::text[], $2::text[]) AS u(id, host) \
             ON CONFLICT (worker_id) DO UPDATE SET host = EXCLUDED.host",
        )
        .bind(&ids)
        .bind(&facts)
        .execute(&self.pool)
        .await.map_err(pg_error)?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(pg_error)?;
        Ok(())
    }
}
