//! The embedded store: one SQLite file (shared with the embedded queue) for `baton dev` and for
//! tests that need no servers. Same semantics as the Postgres store, held to them by the same
//! conformance suite.

mod batch;
mod error;
mod keys;
mod leases;
mod retention;
mod rows;
mod run_locks;
mod writer;

use std::{collections::HashMap, path::Path, sync::Arc};

use async_trait::async_trait;
use baton_engine::{RunState, now_micros};
use baton_proto::v1::RunEventType;
use sqlx::SqlitePool;
use uuid::Uuid;

use self::{
    batch::{SqliteRunBatch, hex},
    error::sqlite_error,
    rows::{attempt_from_row, event_from_row, get, run_from_row, step_from_row, workflow_from_row},
    run_locks::RunLocks,
    writer::Writer,
};
use crate::{
    CreatedRun, NewRun, NewWorkflow, Page, PageRequest, PutWorkflowOutcome, RunBatch, RunDetail,
    RunFilter, StatusCounts, Store, StoreError, StoredEvent, StoredWorkflow, WorkerHost,
    attempts::{with_final_attempts, worker_ids},
    codec::{host_from_json, host_to_json},
    columns::{
        ATTEMPT_COLUMNS, EVENT_COLUMNS, RUN_COLUMNS, STEP_COLUMNS, WORKFLOW_COLUMNS, trusted,
    },
    page::{page_size, parse_run_token, parse_workflow_token, run_page, workflow_page},
    step_cache::StepCache,
};

/// The store's SQLite schema, versions 1..999. Migrations it does not know are the embedded
/// queue's (1001 and up, in the same file's migration table) and are left alone.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate::Migrator {
    ignore_missing: true,
    ..sqlx::migrate!("./migrations/sqlite")
};

/// [`Store`] over one SQLite file.
///
/// What bounds it: **one writer at a time for the whole file**, each for one short
/// transaction. SQLite has no row locks, so a run batch holds its runs in process instead:
/// every handle of this process on the file shares those locks, batches over the same runs
/// take turns and batches over other runs go on at once. An open batch holds no connection
/// and not the file's write lock, so the embedded queue and the store's other writes use the
/// file meanwhile; its commit takes the write lock for one transaction. A batch in another
/// process does not wait for this one: a commit that finds a run changed since it was read
/// fails with [`StoreError::Conflict`] and writes nothing. Writers wait for the write lock up
/// to the busy timeout ([`baton_sqlite::BUSY_TIMEOUT`]); reads never wait (write-ahead log).
/// Every commit is synced to disk. This suits one process and one machine, not a fleet of
/// replicas.
///
/// Writes of one handle queue in process, without holding a connection while they wait, so
/// readers keep the rest of the pool.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    steps: StepCache,
    writer: Writer,
    runs: Arc<RunLocks>,
}

impl SqliteStore {
    /// Opens (creating when missing) the database file at `path` through
    /// [`baton_sqlite::open`], with a pool of at most `max_connections`.
    pub async fn open(path: &Path, max_connections: u32) -> Result<Self, StoreError> {
        let pool = baton_sqlite::open(path, max_connections)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Self::from_pool(pool))
    }

    /// A store on a pool opened elsewhere, e.g. the one the embedded queue shares. The pool
    /// should come from [`baton_sqlite::open`], which sets the busy timeout writers rely on.
    /// Its run locks are those of every other handle of this process on the same file.
    pub fn from_pool(pool: SqlitePool) -> Self {
        Self {
            runs: RunLocks::of(&pool),
            pool,
            steps: StepCache::default(),
            writer: Writer::default(),
        }
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Applies the store's migrations, leaving the embedded queue's alone. The same as
    /// [`Store::migrate`], for callers that hold the concrete store.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let _turn = self.writer.turn().await?;
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()))
    }

    async fn run_by_key(
        &self,
        executor: impl sqlx::SqliteExecutor<'_>,
        run: &NewRun,
    ) -> Result<RunState, StoreError> {
        let row = sqlx::query(trusted(format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE tenant = ?1 AND idempotency_key = ?2"
        )))
        .bind(&run.tenant)
        .bind(&run.idempotency_key)
        .fetch_optional(executor)
        .await
        .map_err(sqlite_error)?
        .ok_or_else(|| {
            StoreError::Conflict(format!(
                "run {} of idempotency key `{}` vanished while starting",
                run.id,
                run.idempotency_key.as_deref().unwrap_or_default()
            ))
        })?;
        run_from_row(&row)
    }
}

/// New runs: `[id, tenant, workflow_ref, inputs, idempotency_key, created_at, trace_context]`,
/// in the order given, so of two runs with one key the earlier takes it.
static INSERT_RUNS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "INSERT INTO runs (id, tenant, workflow_ref, status, inputs, idempotency_key, created_at, \
           last_sequence, trace_context) \
         SELECT unhex(value ->> 0), value ->> 1, value ->> 2, 'queued', value ->> 3, value ->> 4, \
           value ->> 5, 1, value ->> 6 \
         FROM json_each(?1) WHERE true ORDER BY key \
         ON CONFLICT (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
         RETURNING {RUN_COLUMNS}"
    )
});

/// The first event of each new run: `[run_id, created_at]`.
const INSERT_FIRST_EVENTS: &str = "INSERT INTO run_events (run_id, sequence, event_type, attempt, time) \
     SELECT unhex(value ->> 0), 1, ?2, 0, value ->> 1 FROM json_each(?1)";

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        SqliteStore::migrate(self).await
    }

    #[tracing::instrument(skip_all, fields(tenant = %wf.tenant, workflow = %format!("{}/{}@{}", wf.owner, wf.name, wf.version)))]
    async fn put_workflow(&self, wf: NewWorkflow) -> Result<PutWorkflowOutcome, StoreError> {
        let inserted = {
            let _turn = self.writer.turn().await?;
            sqlx::query(trusted(format!(
                "INSERT INTO workflows (tenant, owner, name, version, digest, definition, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING RETURNING {WORKFLOW_COLUMNS}"
            )))
            .bind(&wf.tenant)
            .bind(&wf.owner)
            .bind(&wf.name)
            .bind(i64::from(wf.version))
            .bind(&wf.digest)
            .bind(wf.definition.to_string())
            .bind(now_micros())
            .fetch_optional(&self.pool)
            .await
            .map_err(sqlite_error)?
        };
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
            "SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE tenant = ?1 AND owner = ?2 \
             AND name = ?3 AND (?4 IS NULL OR version = ?4) ORDER BY version DESC LIMIT 1"
        )))
        .bind(tenant)
        .bind(owner)
        .bind(name)
        .bind(version.map(i64::from))
        .fetch_optional(&self.pool)
        .await
        .map_err(sqlite_error)?;
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
            "SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE tenant = ?1 \
             AND (?2 IS NULL OR owner = ?2) \
             AND (?3 IS NULL OR (owner, name, -version) > (?3, ?4, ?5)) \
             ORDER BY owner, name, version DESC LIMIT ?6"
        )))
        .bind(tenant)
        .bind(owner)
        .bind(after.as_ref().map(|a| a.owner.as_str()))
        .bind(after.as_ref().map(|a| a.name.as_str()))
        .bind(after.as_ref().map(|a| a.negated_version))
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(sqlite_error)?;
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
        let new_rows: Vec<_> = runs
            .iter()
            .map(|r| {
                (
                    hex(r.id),
                    r.tenant.as_str(),
                    r.workflow_ref.as_str(),
                    r.inputs.to_string(),
                    r.idempotency_key.as_deref(),
                    r.created_at,
                    serde_json::to_string(&r.trace_context).unwrap_or_else(|_| "{}".into()),
                )
            })
            .collect();
        let new_rows = serde_json::to_string(&new_rows)
            .map_err(|e| StoreError::Rejected(format!("new runs: {e}")))?;
        // Every run in one statement and their first events in another, under one commit for
        // the whole batch of concurrent StartRun calls.
        let mut write = self.writer.begin(&self.pool).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(INSERT_RUNS.as_str()))
            .bind(new_rows)
            .fetch_all(&mut *write.tx)
            .await
            .map_err(sqlite_error)?;
        let mut inserted: HashMap<Uuid, RunState> = HashMap::with_capacity(rows.len());
        for row in &rows {
            let run = run_from_row(row)?;
            inserted.insert(run.id, run);
        }
        if !inserted.is_empty() {
            let first: Vec<(String, i64)> = inserted
                .values()
                .map(|r| (hex(r.id), r.created_at))
                .collect();
            let first = serde_json::to_string(&first)
                .map_err(|e| StoreError::Rejected(format!("first events: {e}")))?;
            sqlx::query(INSERT_FIRST_EVENTS)
                .bind(first)
                .bind(RunEventType::RunQueued.as_str_name())
                .execute(&mut *write.tx)
                .await
                .map_err(sqlite_error)?;
        }
        let mut results = Vec::with_capacity(runs.len());
        for run in runs {
            if let Some(state) = inserted.remove(&run.id) {
                results.push(Ok((state, true)));
                continue;
            }
            // Its idempotency key was taken, by an earlier run or one earlier in this batch.
            let existing = self.run_by_key(&mut *write.tx, &run).await?;
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
        write.commit().await?;
        Ok(results)
    }

    async fn find_run(&self, id: Uuid) -> Result<Option<RunState>, StoreError> {
        let row = sqlx::query(trusted(format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(sqlite_error)?;
        row.as_ref().map(run_from_row).transpose()
    }

    async fn get_run(&self, id: Uuid) -> Result<Option<RunDetail>, StoreError> {
        let Some(mut run) = self.find_run(id).await? else {
            return Ok(None);
        };
        let steps = sqlx::query(trusted(format!(
            "SELECT {STEP_COLUMNS} FROM step_runs WHERE run_id = ?1 ORDER BY position"
        )))
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(sqlite_error)?;
        run.steps = steps.iter().map(step_from_row).collect::<Result<_, _>>()?;
        let rows = sqlx::query(trusted(format!(
            "SELECT {ATTEMPT_COLUMNS} FROM step_attempts WHERE run_id = ?1 \
             ORDER BY ended_at, step_id, attempt"
        )))
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(sqlite_error)?;
        let attempts = rows
            .iter()
            .map(attempt_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let attempts = with_final_attempts(&run, attempts);
        let worker_ids = worker_ids(&attempts);
        let workers = if worker_ids.is_empty() {
            Vec::new()
        } else {
            let ids = serde_json::Value::from(worker_ids).to_string();
            let hosts = sqlx::query(
                "SELECT host FROM workers WHERE worker_id IN (SELECT value FROM json_each(?1)) \
                 ORDER BY worker_id",
            )
            .bind(ids)
            .fetch_all(&self.pool)
            .await
            .map_err(sqlite_error)?;
            hosts
                .iter()
                .map(|row| {
                    let host: &str = get(row, "host")?;
                    serde_json::from_str(host)
                        .map(|h| host_from_json(&h))
                        .map_err(|e| StoreError::Corrupt(format!("column `host`: {e}")))
                })
                .collect::<Result<_, _>>()?
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
            "SELECT {RUN_COLUMNS} FROM runs WHERE tenant = ?1 \
             AND (?2 IS NULL OR workflow_ref = ?2) AND (?3 IS NULL OR status = ?3) \
             AND (?4 IS NULL OR (created_at, id) < (?4, ?5)) \
             ORDER BY created_at DESC, id DESC LIMIT ?6"
        )))
        .bind(&filter.tenant)
        .bind(&filter.workflow_ref)
        .bind(filter.status.map(|s| s.as_str()))
        .bind(after.map(|a| a.created_at))
        .bind(after.map(|a| a.id))
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(sqlite_error)?;
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
        let rows = sqlx::query(trusted(format!(
            "SELECT {EVENT_COLUMNS} FROM run_events WHERE run_id = ?1 AND sequence > ?2 \
             ORDER BY sequence LIMIT ?3"
        )))
        .bind(run_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(sqlite_error)?;
        rows.iter().map(event_from_row).collect()
    }

    #[tracing::instrument(skip_all, fields(runs = ids.len()))]
    async fn lock_runs(&self, ids: &[Uuid]) -> Result<Box<dyn RunBatch>, StoreError> {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let held = self.runs.lock(&ids).await?;
        Ok(Box::new(
            SqliteRunBatch::load(held, &self.pool, &self.writer, &self.steps, &ids).await?,
        ))
    }

    async fn overdue_runs(
        &self,
        now_micros: i64,
        grace_micros: i64,
        limit: i64,
    ) -> Result<Vec<Uuid>, StoreError> {
        let cutoff = now_micros.saturating_sub(grace_micros);
        sqlx::query_scalar(
            "SELECT run_id FROM step_runs WHERE status = 'retrying' AND next_attempt_at < ?1 \
             UNION SELECT id FROM runs WHERE status = 'running' AND deadline < ?1 LIMIT ?2",
        )
        .bind(cutoff)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(sqlite_error)
    }

    async fn queued_runs(
        &self,
        created_before_micros: i64,
        limit: i64,
    ) -> Result<Vec<Uuid>, StoreError> {
        sqlx::query_scalar(
            "SELECT id FROM runs WHERE status = 'queued' AND created_at < ?1 ORDER BY created_at LIMIT ?2",
        )
        .bind(created_before_micros)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(sqlite_error)
    }

    async fn running_runs(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM runs WHERE status = 'running'")
            .fetch_one(&self.pool)
            .await
            .map_err(sqlite_error)?;
        Ok(n.max(0) as u64)
    }

    async fn expired_leases(&self, limit: i64) -> Result<Vec<crate::StepLease>, StoreError> {
        leases::expired(&self.pool, limit).await
    }

    async fn renew_leases(
        &self,
        leases: &[crate::StepLease],
        ttl_micros: i64,
    ) -> Result<u64, StoreError> {
        leases::renew(&self.pool, &self.writer, leases, ttl_micros).await
    }

    async fn status_counts(&self) -> Result<StatusCounts, StoreError> {
        let pairs = |rows: Vec<(String, i64)>| rows.into_iter().collect();
        let counts = |sql: &'static str| {
            let pool = &self.pool;
            async move {
                sqlx::query_as::<_, (String, i64)>(sql)
                    .fetch_all(pool)
                    .await
                    .map_err(sqlite_error)
            }
        };
        let runs = counts("SELECT status, count(*) FROM runs GROUP BY status").await?;
        let steps = counts("SELECT status, count(*) FROM step_runs GROUP BY status").await?;
        let active = counts(
            "SELECT s.status, count(*) FROM step_runs s JOIN runs r ON r.id = s.run_id \
             WHERE r.status = 'running' GROUP BY s.status",
        )
        .await?;
        let retrying =
            counts("SELECT kind, count(*) FROM step_runs WHERE status = 'retrying' GROUP BY kind")
                .await?;
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

    async fn record_workers(&self, hosts: &[WorkerHost]) -> Result<(), StoreError> {
        if hosts.is_empty() {
            return Ok(());
        }
        let rows: Vec<(&str, String)> = hosts
            .iter()
            .map(|h| (h.worker_id.as_str(), host_to_json(h).to_string()))
            .collect();
        let rows = serde_json::to_string(&rows)
            .map_err(|e| StoreError::Rejected(format!("worker hosts: {e}")))?;
        let _turn = self.writer.turn().await?;
        sqlx::query(
            "INSERT INTO workers (worker_id, host, first_seen) \
             SELECT value ->> 0, value ->> 1, ?2 FROM json_each(?1) WHERE true \
             ON CONFLICT (worker_id) DO UPDATE SET host = excluded.host",
        )
        .bind(rows)
        .bind(now_micros())
        .execute(&self.pool)
        .await
        .map_err(sqlite_error)?;
        Ok(())
    }

    /// SQLite's planner assumes large tables when it has no statistics, so lookups by key take
    /// their index however the file grows; there is nothing to keep up.
    async fn maintain(&self) -> Result<crate::MaintenanceReport, StoreError> {
        Ok(crate::MaintenanceReport::default())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(sqlite_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{batch::id_list, *};

    #[test]
    fn ids_travel_as_hex_that_unhex_turns_back_into_their_bytes() {
        let id = Uuid::new_v4();
        assert_eq!(hex(id).len(), 32);
        assert_eq!(id_list(&[id]), format!("[\"{}\"]", id.simple()));
    }
}
