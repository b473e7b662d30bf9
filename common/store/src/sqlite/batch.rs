//! Run batches on SQLite. A batch holds its runs in process ([`super::run_locks`]) and reads
//! them without taking the file's write lock, so other writers to the file go on while it is
//! open; its commit is one short `BEGIN IMMEDIATE` transaction that first checks no other
//! process changed the runs since they were read. Each table is written in one statement whose
//! rows travel as one JSON array, expanded by `json_each`: one bound parameter whatever the
//! batch size, and one statement text, prepared once per connection.

use std::collections::HashMap;

use async_trait::async_trait;
use baton_engine::RunState;
use sqlx::{Sqlite, SqlitePool, Transaction};
use uuid::Uuid;

use super::{
    error::sqlite_error,
    rows::{get, run_from_row, step_from_row},
    run_locks::HeldRuns,
    writer::Writer,
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
        "INSERT INTO step_runs ({STEP_COLUMNS}, lease_expires_at) \
         SELECT unhex(value ->> 0), value ->> 1, value ->> 2, value ->> 3, value ->> 4, \
           value ->> 5, value ->> 6, value ->> 7, value ->> 8, value ->> 9, value ->> 10, \
           value ->> 11, value ->> 12, value ->> 13, value ->> 14, value ->> 15, value ->> 16 \
         FROM json_each(?1) WHERE true \
         ON CONFLICT (run_id, position) DO UPDATE SET status = excluded.status, \
           attempt = excluded.attempt, output = excluded.output, error = excluded.error, \
           worker_id = excluded.worker_id, queued_at = excluded.queued_at, \
           started_at = excluded.started_at, ended_at = excluded.ended_at, \
           next_attempt_at = excluded.next_attempt_at, usage = excluded.usage, \
           lease = excluded.lease, lease_holder = excluded.lease_holder, \
           lease_expires_at = excluded.lease_expires_at"
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
/// A step row in [`UPSERT_STEPS`] order, sent as a JSON array.
#[derive(serde::Serialize)]
struct StepRow<'a>(
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
    i64,
    u32,
    /// When the lease runs out: one file on one machine, so this process's clock is the
    /// database's.
    Option<i64>,
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

/// What a batch writes at commit, serialized ahead by [`RunBatch::write`] so the commit's
/// transaction holds the write lock only for the statements.
struct Prepared {
    /// Each changed run with the `last_sequence` the batch read it at, which the file must
    /// still hold.
    read_at: Vec<(Uuid, i64)>,
    runs: String,
    steps: Option<String>,
    attempts: Option<String>,
    events: Option<String>,
}

/// The rows of what changed in `runs`, one JSON array per table (`None` for a table with
/// nothing to write); `None` when nothing changed.
fn prepare(
    runs: &[RunState],
    read_sequences: &HashMap<Uuid, i64>,
) -> Result<Option<Prepared>, StoreError> {
    let changed = changed(runs);
    if changed.is_empty() {
        return Ok(None);
    }
    let mut read_at = Vec::with_capacity(changed.len());
    let mut run_rows: Vec<RunRow<'_>> = Vec::with_capacity(changed.len());
    let mut step_rows: Vec<StepRow<'_>> = Vec::new();
    let mut attempt_rows: Vec<AttemptRow<'_>> = Vec::new();
    let mut event_rows: Vec<EventRow<'_>> = Vec::new();
    for run in &changed {
        let read = read_sequences.get(&run.id).copied().ok_or_else(|| {
            StoreError::Rejected(format!("run {} was not locked by this batch", run.id))
        })?;
        read_at.push((run.id, read));
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
            step_rows.push(StepRow(
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
                i64::try_from(s.lease).unwrap_or(i64::MAX),
                s.lease_holder,
                (s.status.is_in_flight() && s.lease_ttl > 0)
                    .then(|| baton_engine::now_micros().saturating_add(s.lease_ttl)),
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
    fn unless_empty<T: serde::Serialize>(rows: &[T]) -> Result<Option<String>, StoreError> {
        (!rows.is_empty()).then(|| rows_json(rows)).transpose()
    }
    Ok(Some(Prepared {
        read_at,
        runs: rows_json(&run_rows)?,
        steps: unless_empty(&step_rows)?,
        attempts: unless_empty(&attempt_rows)?,
        events: unless_empty(&event_rows)?,
    }))
}

/// Fails with a conflict naming the first run whose `last_sequence` in the file is no longer
/// the one the batch read: a writer in another process committed to it in between (writers of
/// this process wait for the run's lock), and what the batch would write is built on a state
/// that is gone.
async fn check_unchanged(
    tx: &mut Transaction<'static, Sqlite>,
    read_at: &[(Uuid, i64)],
) -> Result<(), StoreError> {
    let ids: Vec<Uuid> = read_at.iter().map(|(id, _)| *id).collect();
    let stored: HashMap<Uuid, i64> = sqlx::query_as::<_, (Uuid, i64)>(
        "SELECT id, last_sequence FROM runs WHERE id IN (SELECT unhex(value) FROM json_each(?1))",
    )
    .bind(id_list(&ids))
    .fetch_all(&mut **tx)
    .await
    .map_err(sqlite_error)?
    .into_iter()
    .collect();
    for &(id, read) in read_at {
        match stored.get(&id) {
            Some(&now) if now == read => {}
            Some(&now) => {
                return Err(StoreError::Conflict(format!(
                    "run {id} changed while this batch held it: read at sequence {read}, now at \
                     {now} by another writer of the database file"
                )));
            }
            None => {
                return Err(StoreError::Conflict(format!(
                    "run {id} vanished while this batch held it"
                )));
            }
        }
    }
    Ok(())
}

/// Writes `prepared`: at most one statement per table, tables with nothing to write skipped.
async fn persist(
    tx: &mut Transaction<'static, Sqlite>,
    prepared: Prepared,
) -> Result<(), StoreError> {
    execute(tx, UPDATE_RUNS, prepared.runs).await?;
    let tables = [
        (UPSERT_STEPS.as_str(), prepared.steps),
        (INSERT_ATTEMPTS, prepared.attempts),
        (INSERT_EVENTS.as_str(), prepared.events),
    ];
    for (sql, rows) in tables {
        if let Some(rows) = rows {
            execute(tx, sql, rows).await?;
        }
    }
    Ok(())
}

/// Runs held for change by this process; dropping the batch writes nothing and lets the next
/// batch over them in.
pub(super) struct SqliteRunBatch {
    runs: Vec<RunState>,
    /// Each loaded run's `last_sequence` as read.
    read_sequences: HashMap<Uuid, i64>,
    /// Set by [`RunBatch::write`]: `Some(None)` when nothing changed.
    prepared: Option<Option<Prepared>>,
    pool: SqlitePool,
    writer: Writer,
    cache: StepCache,
    held: HeldRuns,
}

impl SqliteRunBatch {
    /// Loads the runs of `held` (`ids`, sorted and without duplicates; unknown ids left out)
    /// with their steps, from `cache` where it holds them at the run's sequence, in one read
    /// transaction: a snapshot of the file that takes no write lock.
    pub(super) async fn load(
        held: HeldRuns,
        pool: &SqlitePool,
        writer: &Writer,
        cache: &StepCache,
        ids: &[Uuid],
    ) -> Result<Self, StoreError> {
        let mut read = pool.begin().await.map_err(sqlite_error)?;
        let rows = sqlx::query(trusted(format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE id IN (SELECT unhex(value) FROM json_each(?1)) \
             ORDER BY id"
        )))
        .bind(id_list(ids))
        .fetch_all(&mut *read)
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
            .fetch_all(&mut *read)
            .await
            .map_err(sqlite_error)?;
            for row in &steps {
                let run_id: Uuid = get(row, "run_id")?;
                if let Some(&i) = index.get(&run_id) {
                    runs[i].steps.push(step_from_row(row)?);
                }
            }
        }
        read.commit().await.map_err(sqlite_error)?;
        let read_sequences = runs.iter().map(|r| (r.id, r.last_sequence)).collect();
        Ok(Self {
            runs,
            read_sequences,
            prepared: None,
            pool: pool.clone(),
            writer: writer.clone(),
            cache: cache.clone(),
            held,
        })
    }
}

#[async_trait]
impl RunBatch for SqliteRunBatch {
    fn runs(&mut self) -> &mut [RunState] {
        &mut self.runs
    }

    /// Serializes what changed; nothing touches the file before the commit, which must not
    /// hold the write lock while the caller's other work (the queue's, on the same file) runs.
    async fn write(&mut self) -> Result<(), StoreError> {
        if self.prepared.is_none() {
            self.prepared = Some(prepare(&self.runs, &self.read_sequences)?);
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<Vec<RunState>, StoreError> {
        self.write().await?;
        let Self {
            mut runs,
            prepared,
            pool,
            writer,
            cache,
            held,
            ..
        } = *self;
        if let Some(prepared) = prepared.flatten() {
            let mut write = writer.begin(&pool).await?;
            check_unchanged(&mut write.tx, &prepared.read_at).await?;
            persist(&mut write.tx, prepared).await?;
            write.commit().await?;
        }
        crate::changes::committed(&mut runs);
        // Remembered before the runs are let go, so the next batch of this handle finds them.
        cache.remember(&runs);
        drop(held);
        Ok(runs)
    }
}
