//! Run batches on SQLite: the batch holds the file's write lock (see [`super::writer`]) from
//! the moment it locks its runs until it commits or drops, and writes each table in one
//! statement. Rows travel as one JSON array per table, expanded by `json_each`: one bound
//! parameter whatever the batch size, and one statement text, prepared once per connection.

use std::collections::HashMap;

use async_trait::async_trait;
use baton_engine::RunState;
use sqlx::{Sqlite, Transaction};
use uuid::Uuid;

use super::{
    error::sqlite_error,
    rows::{get, run_from_row, step_from_row},
    writer::WriteTx,
};
use crate::{
    RunBatch, StoreError,
    changes::{changed, step_writes},
    codec::{json_text, usage_to_json},
    columns::{EVENT_COLUMNS, RUN_COLUMNS, STEP_COLUMNS, trusted},
    step_cache::StepCache,
};

/// An id as it travels in a JSON array; `unhex` turns it back into the stored 16-byte BLOB.
pub(super) fn hex(id: Uuid) -> String {
    id.simple().to_string()
}

/// A JSON array of ids, for `IN (SELECT unhex(value) FROM json_each(?))`.
pub(super) fn id_list(ids: &[Uuid]) -> String {
    let hexes: Vec<String> = ids.iter().copied().map(hex).collect();
    serde_json::Value::from(hexes).to_string()
}

fn rows_json<T: serde::Serialize>(rows: &[T]) -> Result<String, StoreError> {
    serde_json::to_string(rows).map_err(|e| StoreError::Rejected(format!("batch rows: {e}")))
}

/// Changed runs: `[id, status, output, error, max_parallel, deadline, started_at, ended_at,
/// last_sequence]`.
const UPDATE_RUNS: &str = "UPDATE runs SET status = u.status, output = u.output, error = u.error, \
       max_parallel = u.max_parallel, deadline = u.deadline, started_at = u.started_at, \
       ended_at = u.ended_at, last_sequence = u.seq \
     FROM (SELECT unhex(value ->> 0) AS id, value ->> 1 AS status, value ->> 2 AS output, \
       value ->> 3 AS error, value ->> 4 AS max_parallel, value ->> 5 AS deadline, \
       value ->> 6 AS started_at, value ->> 7 AS ended_at, value ->> 8 AS seq \
       FROM json_each(?1)) AS u \
     WHERE runs.id = u.id";

/// New and changed steps, in [`STEP_COLUMNS`] order: inserted when new, updated when not.
static UPSERT_STEPS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "INSERT INTO step_runs ({STEP_COLUMNS}) \
         SELECT unhex(value ->> 0), value ->> 1, value ->> 2, value ->> 3, value ->> 4, \
           value ->> 5, value ->> 6, value ->> 7, value ->> 8, value ->> 9, value ->> 10, \
           value ->> 11, value ->> 12, value ->> 13 \
         FROM json_each(?1) WHERE true \
         ON CONFLICT (run_id, position) DO UPDATE SET status = excluded.status, \
           attempt = excluded.attempt, output = excluded.output, error = excluded.error, \
           worker_id = excluded.worker_id, queued_at = excluded.queued_at, \
           started_at = excluded.started_at, ended_at = excluded.ended_at, \
           next_attempt_at = excluded.next_attempt_at, usage = excluded.usage"
    )
});

/// Attempts replaced by a retry: `[run_id, step_id, attempt, status, error, worker_id,
/// queued_at, started_at, ended_at, usage]`; one already stored is left as it is.
const INSERT_ATTEMPTS: &str = "INSERT INTO step_attempts (run_id, step_id, attempt, status, error, worker_id, \
       queued_at, started_at, ended_at, usage) \
     SELECT unhex(value ->> 0), value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, \
       value ->> 6, value ->> 7, value ->> 8, value ->> 9 \
     FROM json_each(?1) WHERE true ON CONFLICT DO NOTHING";

/// New events, in [`EVENT_COLUMNS`] order.
static INSERT_EVENTS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "INSERT INTO run_events ({EVENT_COLUMNS}) \
         SELECT unhex(value ->> 0), value ->> 1, value ->> 2, value ->> 3, value ->> 4, \
           value ->> 5, value ->> 6, value ->> 7 \
         FROM json_each(?1)"
    )
});

type RunRow<'a> = (
    String,
    &'a str,
    Option<String>,
    Option<&'a str>,
    u32,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    i64,
);
type StepRow<'a> = (
    String,
    usize,
    &'a str,
    &'a str,
    &'a str,
    u32,
    Option<String>,
    Option<&'a str>,
    Option<&'a str>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
);
type AttemptRow<'a> = (
    String,
    &'a str,
    u32,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    Option<i64>,
    Option<i64>,
    i64,
    Option<String>,
);
type EventRow<'a> = (
    String,
    i64,
    &'a str,
    Option<&'a str>,
    u32,
    Option<&'a str>,
    Option<String>,
    i64,
);

async fn execute(
    tx: &mut Transaction<'static, Sqlite>,
    sql: &'static str,
    rows: String,
) -> Result<(), StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(rows)
        .execute(&mut **tx)
        .await
        .map_err(sqlite_error)?;
    Ok(())
}

/// Writes what changed in `runs`: at most one statement per table, tables with nothing to
/// write skipped.
async fn persist(
    tx: &mut Transaction<'static, Sqlite>,
    runs: &[RunState],
) -> Result<(), StoreError> {
    let changed = changed(runs);
    if changed.is_empty() {
        return Ok(());
    }
    let mut run_rows: Vec<RunRow<'_>> = Vec::with_capacity(changed.len());
    let mut step_rows: Vec<StepRow<'_>> = Vec::new();
    let mut attempt_rows: Vec<AttemptRow<'_>> = Vec::new();
    let mut event_rows: Vec<EventRow<'_>> = Vec::new();
    for run in &changed {
        let id = hex(run.id);
        run_rows.push((
            id.clone(),
            run.status.as_str(),
            json_text(&run.output),
            run.error.as_deref(),
            run.max_parallel,
            run.deadline,
            run.started_at,
            run.ended_at,
            run.last_sequence,
        ));
        for (position, s, _) in step_writes(run) {
            step_rows.push((
                id.clone(),
                position,
                &s.step_id,
                &s.kind,
                s.status.as_str(),
                s.attempt,
                json_text(&s.output),
                s.error.as_deref(),
                s.worker_id.as_deref(),
                s.queued_at,
                s.started_at,
                s.ended_at,
                s.next_attempt_at,
                s.usage.as_ref().map(|u| usage_to_json(u).to_string()),
            ));
        }
        for a in &run.new_attempts {
            attempt_rows.push((
                id.clone(),
                &a.step_id,
                a.attempt,
                a.status.as_str(),
                a.error.as_deref(),
                a.worker_id.as_deref(),
                a.queued_at,
                a.started_at,
                a.ended_at,
                a.usage.as_ref().map(|u| usage_to_json(u).to_string()),
            ));
        }
        for e in &run.new_events {
            event_rows.push((
                id.clone(),
                e.sequence,
                e.event_type.as_str_name(),
                e.step_id.as_deref(),
                e.attempt,
                e.message.as_deref(),
                json_text(&e.output),
                e.time,
            ));
        }
    }
    execute(tx, UPDATE_RUNS, rows_json(&run_rows)?).await?;
    if !step_rows.is_empty() {
        execute(tx, UPSERT_STEPS.as_str(), rows_json(&step_rows)?).await?;
    }
    if !attempt_rows.is_empty() {
        execute(tx, INSERT_ATTEMPTS, rows_json(&attempt_rows)?).await?;
    }
    if !event_rows.is_empty() {
        execute(tx, INSERT_EVENTS.as_str(), rows_json(&event_rows)?).await?;
    }
    Ok(())
}

/// Runs loaded under the file's write lock; dropping the batch rolls back and passes the lock on.
pub(super) struct SqliteRunBatch {
    write: WriteTx,
    runs: Vec<RunState>,
    cache: StepCache,
    written: bool,
}

impl SqliteRunBatch {
    /// Loads the runs (each once, in id order; unknown ids left out) with their steps, from
    /// `cache` where it holds them at the run's sequence, inside `write`.
    pub(super) async fn lock(
        mut write: WriteTx,
        cache: &StepCache,
        ids: &[Uuid],
    ) -> Result<Self, StoreError> {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let rows = sqlx::query(trusted(format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE id IN (SELECT unhex(value) FROM json_each(?1)) \
             ORDER BY id"
        )))
        .bind(id_list(&ids))
        .fetch_all(&mut *write.tx)
        .await
        .map_err(sqlite_error)?;
        let mut runs = rows
            .iter()
            .map(run_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let missing = cache.fill(&mut runs);
        if !missing.is_empty() {
            let index: HashMap<Uuid, usize> =
                runs.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
            let steps = sqlx::query(trusted(format!(
                "SELECT {STEP_COLUMNS} FROM step_runs \
                 WHERE run_id IN (SELECT unhex(value) FROM json_each(?1)) ORDER BY run_id, position"
            )))
            .bind(id_list(&missing))
            .fetch_all(&mut *write.tx)
            .await
            .map_err(sqlite_error)?;
            for row in &steps {
                let run_id: Uuid = get(row, "run_id")?;
                if let Some(&i) = index.get(&run_id) {
                    runs[i].steps.push(step_from_row(row)?);
                }
            }
        }
        Ok(Self {
            write,
            runs,
            cache: cache.clone(),
            written: false,
        })
    }
}

#[async_trait]
impl RunBatch for SqliteRunBatch {
    fn runs(&mut self) -> &mut [RunState] {
        &mut self.runs
    }

    async fn write(&mut self) -> Result<(), StoreError> {
        if !self.written {
            persist(&mut self.write.tx, &self.runs).await?;
            self.written = true;
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<Vec<RunState>, StoreError> {
        self.write().await?;
        let Self {
            write, runs, cache, ..
        } = *self;
        write.commit().await?;
        cache.remember(&runs);
        Ok(runs)
    }
}
