//! Run batches on Postgres: runs locked `FOR UPDATE` in id order, and every write of a batch in
//! one statement, with `UNNEST` so one statement covers every run, step, attempt or event of
//! the batch. The runner's throughput comes from here.

use std::collections::HashMap;

use async_trait::async_trait;
use baton_engine::{AttemptRecord, EventRecord, RunState, StepState};
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::{
    error::pg_error,
    rows::{get, run_from_row, step_from_row, ts},
};
use crate::{
    RunBatch, StoreError,
    changes::{StepWrite, changed, step_writes},
    codec::{json_text, usage_to_json},
    columns::{RUN_COLUMNS, STEP_COLUMNS, trusted},
    step_cache::StepCache,
};

/// Column vectors for a batch of step rows, for `UNNEST`.
#[derive(Default)]
struct StepColumns {
    run_ids: Vec<Uuid>,
    positions: Vec<i32>,
    step_ids: Vec<String>,
    kinds: Vec<String>,
    statuses: Vec<&'static str>,
    attempts: Vec<i32>,
    outputs: Vec<Option<String>>,
    errors: Vec<Option<String>>,
    workers: Vec<Option<String>>,
    queued: Vec<Option<DateTime<Utc>>>,
    started: Vec<Option<DateTime<Utc>>>,
    ended: Vec<Option<DateTime<Utc>>>,
    next: Vec<Option<DateTime<Utc>>>,
    usage: Vec<Option<String>>,
    leases: Vec<i64>,
    holders: Vec<i32>,
    lease_ttls: Vec<i64>,
}

impl StepColumns {
    fn push(&mut self, run_id: Uuid, position: usize, s: &StepState) {
        self.run_ids.push(run_id);
        self.positions.push(position as i32);
        self.step_ids.push(s.step_id.clone());
        self.kinds.push(s.kind.clone());
        self.statuses.push(s.status.as_str());
        self.attempts.push(s.attempt as i32);
        self.outputs.push(json_text(&s.output));
        self.errors.push(s.error.clone());
        self.workers.push(s.worker_id.clone());
        self.queued.push(ts(s.queued_at));
        self.started.push(ts(s.started_at));
        self.ended.push(ts(s.ended_at));
        self.next.push(ts(s.next_attempt_at));
        self.usage
            .push(s.usage.as_ref().map(|u| usage_to_json(u).to_string()));
        self.leases.push(i64::try_from(s.lease).unwrap_or(i64::MAX));
        self.holders
            .push(i32::try_from(s.lease_holder).unwrap_or(i32::MAX));
        // A lease lives only while the step is in flight.
        self.lease_ttls.push(if s.status.is_in_flight() {
            s.lease_ttl
        } else {
            0
        });
    }

    fn bind<'q>(
        &'q self,
        q: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
        q.bind(&self.run_ids)
            .bind(&self.positions)
            .bind(&self.step_ids)
            .bind(&self.kinds)
            .bind(&self.statuses)
            .bind(&self.attempts)
            .bind(&self.outputs)
            .bind(&self.errors)
            .bind(&self.workers)
            .bind(&self.queued)
            .bind(&self.started)
            .bind(&self.ended)
            .bind(&self.next)
            .bind(&self.usage)
            .bind(&self.leases)
            .bind(&self.holders)
            .bind(&self.lease_ttls)
    }
}

/// How many parameters [`step_unnest`] binds.
const STEP_PARAMS: usize = 17;

/// `UNNEST` of the 17 step columns bound from parameter `$first` on.
fn step_unnest(first: usize) -> String {
    let types = [
        "uuid",
        "int4",
        "text",
        "text",
        "text",
        "int4",
        "text",
        "text",
        "text",
        "timestamptz",
        "timestamptz",
        "timestamptz",
        "timestamptz",
        "text",
        "int8",
        "int4",
        "int8",
    ];
    let params: Vec<String> = types
        .iter()
        .enumerate()
        .map(|(i, t)| format!("${}::{t}[]", first + i))
        .collect();
    format!(
        "UNNEST({}) AS u(run_id, position, step_id, kind, status, attempt, output, error, worker_id, \
         queued_at, started_at, ended_at, next_attempt_at, usage, lease, lease_holder, lease_ttl)",
        params.join(", ")
    )
}

/// Every write of a batch in one statement (one round trip): data-modifying CTEs for runs, new
/// steps, changed steps, attempts and events. Empty arrays write nothing.
/// A step's lease runs out `lease_ttl` microseconds after the write, by the database's clock,
/// so replicas' clocks never judge it.
static PERSIST_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let inserts_at = 10;
    let updates_at = inserts_at + STEP_PARAMS;
    let a = updates_at + STEP_PARAMS;
    let e = a + 10;
    let p = |i: usize| format!("${i}");
    format!(
        "WITH r AS (\
           UPDATE runs SET status = u.status, output = u.output::jsonb, error = u.error, \
             max_parallel = u.max_parallel, deadline = u.deadline, started_at = u.started_at, \
             ended_at = u.ended_at, last_sequence = u.seq \
           FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int4[], $6::timestamptz[], \
             $7::timestamptz[], $8::timestamptz[], $9::int8[]) \
             AS u(id, status, output, error, max_parallel, deadline, started_at, ended_at, seq) \
           WHERE runs.id = u.id RETURNING 1), \
         si AS (\
           INSERT INTO step_runs ({STEP_COLUMNS}, lease_expires_at) SELECT run_id, position, step_id, kind, \
             status, attempt, output::jsonb, error, worker_id, queued_at, started_at, ended_at, next_attempt_at, \
             usage::jsonb, lease, lease_holder, {expiry} \
             FROM {inserts} \
           RETURNING 1), \
         su AS (\
           UPDATE step_runs s SET status = u.status, attempt = u.attempt, output = u.output::jsonb, \
             error = u.error, worker_id = u.worker_id, queued_at = u.queued_at, started_at = u.started_at, \
             ended_at = u.ended_at, next_attempt_at = u.next_attempt_at, usage = u.usage::jsonb, \
             lease = u.lease, lease_holder = u.lease_holder, lease_expires_at = {expiry} \
           FROM {updates} WHERE s.run_id = u.run_id AND s.position = u.position RETURNING 1), \
         a AS (\
           INSERT INTO step_attempts (run_id, step_id, attempt, status, error, worker_id, queued_at, started_at, ended_at, usage) \
           SELECT run_id, step_id, attempt, status, error, worker_id, queued_at, started_at, ended_at, usage::jsonb \
           FROM UNNEST({a0}::uuid[], {a1}::text[], {a2}::int4[], {a3}::text[], {a4}::text[], {a5}::text[], \
             {a6}::timestamptz[], {a7}::timestamptz[], {a8}::timestamptz[], {a9}::text[]) \
             AS u(run_id, step_id, attempt, status, error, worker_id, queued_at, started_at, ended_at, usage) \
           ON CONFLICT DO NOTHING RETURNING 1), \
         e AS (\
           INSERT INTO run_events (run_id, sequence, event_type, step_id, attempt, message, output, time) \
           SELECT run_id, seq, t, step_id, attempt, message, output::jsonb, time \
           FROM UNNEST({e0}::uuid[], {e1}::int8[], {e2}::text[], {e3}::text[], {e4}::int4[], {e5}::text[], \
             {e6}::text[], {e7}::timestamptz[]) AS u(run_id, seq, t, step_id, attempt, message, output, time) \
           RETURNING 1) \
         SELECT (SELECT count(*) FROM r) + (SELECT count(*) FROM si) + (SELECT count(*) FROM su) \
           + (SELECT count(*) FROM a) + (SELECT count(*) FROM e)",
        inserts = step_unnest(inserts_at),
        updates = step_unnest(updates_at),
        expiry = "CASE WHEN u.lease_ttl > 0 THEN clock_timestamp() + u.lease_ttl * interval '1 microsecond' END",
        a0 = p(a),
        a1 = p(a + 1),
        a2 = p(a + 2),
        a3 = p(a + 3),
        a4 = p(a + 4),
        a5 = p(a + 5),
        a6 = p(a + 6),
        a7 = p(a + 7),
        a8 = p(a + 8),
        a9 = p(a + 9),
        e0 = p(e),
        e1 = p(e + 1),
        e2 = p(e + 2),
        e3 = p(e + 3),
        e4 = p(e + 4),
        e5 = p(e + 5),
        e6 = p(e + 6),
        e7 = p(e + 7),
    )
});

async fn persist(tx: &mut Transaction<'_, Postgres>, runs: &[RunState]) -> Result<(), StoreError> {
    let changed = changed(runs);
    if changed.is_empty() {
        return Ok(());
    }
    let n = changed.len();
    let mut ids = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut outputs = Vec::with_capacity(n);
    let mut errors = Vec::with_capacity(n);
    let mut max_parallel = Vec::with_capacity(n);
    let mut deadlines = Vec::with_capacity(n);
    let mut started = Vec::with_capacity(n);
    let mut ended = Vec::with_capacity(n);
    let mut seqs = Vec::with_capacity(n);
    let mut inserts = StepColumns::default();
    let mut updates = StepColumns::default();
    let mut events: Vec<(Uuid, &EventRecord)> = Vec::new();
    let mut attempts: Vec<(Uuid, &AttemptRecord)> = Vec::new();
    for run in &changed {
        ids.push(run.id);
        statuses.push(run.status.as_str());
        outputs.push(json_text(&run.output));
        errors.push(run.error.clone());
        max_parallel.push(run.max_parallel as i32);
        deadlines.push(ts(run.deadline));
        started.push(ts(run.started_at));
        ended.push(ts(run.ended_at));
        seqs.push(run.last_sequence);
        for (position, step, write) in step_writes(run) {
            match write {
                StepWrite::Insert => inserts.push(run.id, position, step),
                StepWrite::Update => updates.push(run.id, position, step),
            }
        }
        events.extend(run.new_events.iter().map(|e| (run.id, e)));
        attempts.extend(run.new_attempts.iter().map(|a| (run.id, a)));
    }
    let a_runs: Vec<Uuid> = attempts.iter().map(|(r, _)| *r).collect();
    let a_steps: Vec<&str> = attempts.iter().map(|(_, a)| a.step_id.as_str()).collect();
    let a_numbers: Vec<i32> = attempts.iter().map(|(_, a)| a.attempt as i32).collect();
    let a_statuses: Vec<&str> = attempts.iter().map(|(_, a)| a.status.as_str()).collect();
    let a_errors: Vec<Option<&str>> = attempts.iter().map(|(_, a)| a.error.as_deref()).collect();
    let a_workers: Vec<Option<&str>> = attempts
        .iter()
        .map(|(_, a)| a.worker_id.as_deref())
        .collect();
    let a_queued: Vec<Option<DateTime<Utc>>> =
        attempts.iter().map(|(_, a)| ts(a.queued_at)).collect();
    let a_started: Vec<Option<DateTime<Utc>>> =
        attempts.iter().map(|(_, a)| ts(a.started_at)).collect();
    let a_usage: Vec<Option<String>> = attempts
        .iter()
        .map(|(_, a)| a.usage.as_ref().map(|u| usage_to_json(u).to_string()))
        .collect();
    let a_ended: Vec<Option<DateTime<Utc>>> =
        attempts.iter().map(|(_, a)| ts(Some(a.ended_at))).collect();
    let e_runs: Vec<Uuid> = events.iter().map(|(r, _)| *r).collect();
    let e_seqs: Vec<i64> = events.iter().map(|(_, e)| e.sequence).collect();
    let e_types: Vec<&str> = events
        .iter()
        .map(|(_, e)| e.event_type.as_str_name())
        .collect();
    let e_steps: Vec<Option<&str>> = events.iter().map(|(_, e)| e.step_id.as_deref()).collect();
    let e_attempts: Vec<i32> = events.iter().map(|(_, e)| e.attempt as i32).collect();
    let e_messages: Vec<Option<&str>> = events.iter().map(|(_, e)| e.message.as_deref()).collect();
    let e_outputs: Vec<Option<String>> = events.iter().map(|(_, e)| json_text(&e.output)).collect();
    let e_times: Vec<DateTime<Utc>> = events
        .iter()
        .map(|(_, e)| ts(Some(e.time)).unwrap_or_else(Utc::now))
        .collect();

    let query = sqlx::query(sqlx::AssertSqlSafe(PERSIST_SQL.as_str()))
        .bind(&ids)
        .bind(&statuses)
        .bind(&outputs)
        .bind(&errors)
        .bind(&max_parallel)
        .bind(&deadlines)
        .bind(&started)
        .bind(&ended)
        .bind(&seqs);
    let query = updates.bind(inserts.bind(query));
    query
        .bind(&a_runs)
        .bind(&a_steps)
        .bind(&a_numbers)
        .bind(&a_statuses)
        .bind(&a_errors)
        .bind(&a_workers)
        .bind(&a_queued)
        .bind(&a_started)
        .bind(&a_ended)
        .bind(&a_usage)
        .bind(&e_runs)
        .bind(&e_seqs)
        .bind(&e_types)
        .bind(&e_steps)
        .bind(&e_attempts)
        .bind(&e_messages)
        .bind(&e_outputs)
        .bind(&e_times)
        .execute(&mut **tx)
        .await
        .map_err(pg_error)?;
    Ok(())
}

/// Runs locked `FOR UPDATE` in one transaction; dropping it rolls the transaction back.
pub(super) struct PgRunBatch {
    tx: Transaction<'static, Postgres>,
    runs: Vec<RunState>,
    cache: StepCache,
    written: bool,
}

impl PgRunBatch {
    /// Locks the runs (in id order, so concurrent batches cannot deadlock) and loads them with
    /// their steps, from `cache` where it holds them at the run's sequence.
    pub(super) async fn lock(
        pool: &PgPool,
        cache: &StepCache,
        ids: &[Uuid],
    ) -> Result<Self, StoreError> {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let mut tx = pool.begin().await.map_err(pg_error)?;
        let rows = sqlx::query(trusted(format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE id = ANY($1) ORDER BY id FOR UPDATE"
        )))
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(pg_error)?;
        let mut runs = rows
            .iter()
            .map(run_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let missing = cache.fill(&mut runs);
        if !missing.is_empty() {
            let index: HashMap<Uuid, usize> =
                runs.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
            let steps = sqlx::query(trusted(format!(
                "SELECT {STEP_COLUMNS} FROM step_runs WHERE run_id = ANY($1) ORDER BY run_id, position"
            )))
            .bind(&missing)
            .fetch_all(&mut *tx)
            .await
            .map_err(pg_error)?;
            for row in &steps {
                let run_id: Uuid = get(row, "run_id")?;
                if let Some(&i) = index.get(&run_id) {
                    runs[i].steps.push(step_from_row(row)?);
                }
            }
        }
        Ok(Self {
            tx,
            runs,
            cache: cache.clone(),
            written: false,
        })
    }
}

#[async_trait]
impl RunBatch for PgRunBatch {
    fn runs(&mut self) -> &mut [RunState] {
        &mut self.runs
    }

    async fn write(&mut self) -> Result<(), StoreError> {
        if !self.written {
            persist(&mut self.tx, &self.runs).await?;
            self.written = true;
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<Vec<RunState>, StoreError> {
        self.write().await?;
        self.tx.commit().await.map_err(pg_error)?;
        crate::changes::committed(&mut self.runs);
        self.cache.remember(&self.runs);
        Ok(self.runs)
    }
}
