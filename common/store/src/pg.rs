//! The Postgres store. Batches are written with `UNNEST` so one statement covers every run, step,
//! attempt or event of a batch: the runner's throughput comes from there.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;
use baton_engine::{AttemptRecord, EventRecord, RunState, RunStatus, StepState, StepStatus};
use baton_proto::v1::{self, RunEventType};
use chrono::{DateTime, Utc};
use sqlx::{
    PgPool, Postgres, Row, Transaction,
    postgres::{PgPoolOptions, PgRow},
};
use uuid::Uuid;

use crate::{
    CreatedRun, NewRun, NewWorkflow, Page, PageRequest, PutWorkflowOutcome, RunBatch, RunDetail,
    RunFilter, StatusCounts, Store, StoreError, StoredEvent, StoredWorkflow, WakeCandidate,
};

/// Embedded migrations, applied at service start.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

const RUN_COLUMNS: &str = "id, tenant, workflow_ref, status, inputs, output, error, idempotency_key, \
     max_parallel, deadline, created_at, started_at, ended_at, last_sequence, trace_context";
const STEP_COLUMNS: &str = "run_id, position, step_id, kind, status, attempt, output, error, worker_id, \
     queued_at, started_at, ended_at, next_attempt_at, usage";
const WORKFLOW_COLUMNS: &str = "owner, name, version, digest, definition, created_at";

/// [`Store`] over a Postgres pool.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    steps: StepCache,
}

/// Most runs whose steps are kept in memory.
const STEP_CACHE_LIMIT: usize = 100_000;

/// The steps of runs this process changed last, keyed by run and valid only for the run's
/// `last_sequence`. Every step change adds an event and so moves `last_sequence`; a batch that
/// finds the locked run at the cached sequence therefore has its steps without reading them.
#[derive(Clone, Debug, Default)]
struct StepCache(Arc<Mutex<HashMap<Uuid, CachedSteps>>>);

/// A run's steps as of its `last_sequence`.
type CachedSteps = (i64, Vec<StepState>);

impl StepCache {
    fn get(&self, id: Uuid, last_sequence: i64) -> Option<Vec<StepState>> {
        // Taken out, not copied: the batch owns them until its commit puts them back.
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match cache.remove(&id) {
            Some((seq, steps)) if seq == last_sequence => Some(steps),
            _ => None,
        }
    }

    fn remember(&self, runs: &[RunState]) {
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() > STEP_CACHE_LIMIT {
            cache.clear();
        }
        for run in runs {
            if run.status.is_terminal() || run.steps.is_empty() {
                cache.remove(&run.id);
                continue;
            }
            let mut steps = run.steps.clone();
            for step in &mut steps {
                step.dirty = false;
            }
            cache.insert(run.id, (run.last_sequence, steps));
        }
    }
}

impl PgStore {
    /// Connects with a pool of at most `max_connections`.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(url)
            .await?;
        Ok(Self {
            pool,
            steps: StepCache::default(),
        })
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

    /// Applies the embedded migrations; safe to call from every replica at start.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }
}

/// SQL assembled only from this module's column-list constants, never from input.
fn trusted(sql: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql)
}

fn ts(micros: Option<i64>) -> Option<DateTime<Utc>> {
    micros.and_then(DateTime::from_timestamp_micros)
}

fn micros(dt: Option<DateTime<Utc>>) -> Option<i64> {
    dt.map(|d| d.timestamp_micros())
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn run_from_row(row: &PgRow) -> Result<RunState, StoreError> {
    let status: String = row.try_get("status")?;
    Ok(RunState {
        id: row.try_get("id")?,
        tenant: row.try_get("tenant")?,
        workflow_ref: row.try_get("workflow_ref")?,
        status: status.parse::<RunStatus>().map_err(corrupt)?,
        inputs: row.try_get("inputs")?,
        output: row.try_get("output")?,
        error: row.try_get("error")?,
        idempotency_key: row.try_get("idempotency_key")?,
        max_parallel: u32::try_from(row.try_get::<i32, _>("max_parallel")?).unwrap_or(1),
        deadline: micros(row.try_get("deadline")?),
        created_at: row
            .try_get::<DateTime<Utc>, _>("created_at")?
            .timestamp_micros(),
        started_at: micros(row.try_get("started_at")?),
        ended_at: micros(row.try_get("ended_at")?),
        last_sequence: row.try_get("last_sequence")?,
        trace_context: serde_json::from_value(row.try_get("trace_context")?).unwrap_or_default(),
        steps: Vec::new(),
        dirty: false,
        steps_created: false,
        new_events: Vec::new(),
        new_attempts: Vec::new(),
    })
}

fn step_from_row(row: &PgRow) -> Result<StepState, StoreError> {
    let status: String = row.try_get("status")?;
    Ok(StepState {
        step_id: row.try_get("step_id")?,
        kind: row.try_get("kind")?,
        status: status.parse::<StepStatus>().map_err(corrupt)?,
        attempt: u32::try_from(row.try_get::<i32, _>("attempt")?).unwrap_or(0),
        output: row.try_get("output")?,
        error: row.try_get("error")?,
        queued_at: micros(row.try_get("queued_at")?),
        started_at: micros(row.try_get("started_at")?),
        ended_at: micros(row.try_get("ended_at")?),
        next_attempt_at: micros(row.try_get("next_attempt_at")?),
        worker_id: row.try_get("worker_id")?,
        usage: row
            .try_get::<Option<serde_json::Value>, _>("usage")?
            .as_ref()
            .map(usage_from_json),
        dirty: false,
    })
}

fn workflow_from_row(row: &PgRow) -> Result<StoredWorkflow, StoreError> {
    Ok(StoredWorkflow {
        owner: row.try_get("owner")?,
        name: row.try_get("name")?,
        version: u32::try_from(row.try_get::<i32, _>("version")?).map_err(corrupt)?,
        digest: row.try_get("digest")?,
        definition: row.try_get("definition")?,
        created_at: row
            .try_get::<DateTime<Utc>, _>("created_at")?
            .timestamp_micros(),
    })
}

fn event_from_row(row: &PgRow) -> Result<StoredEvent, StoreError> {
    let event_type: String = row.try_get("event_type")?;
    Ok(StoredEvent {
        run_id: row.try_get("run_id")?,
        record: EventRecord {
            sequence: row.try_get("sequence")?,
            event_type: RunEventType::from_str_name(&event_type)
                .ok_or_else(|| corrupt(format!("unknown event type {event_type}")))?,
            step_id: row.try_get("step_id")?,
            attempt: u32::try_from(row.try_get::<i32, _>("attempt")?).unwrap_or(0),
            time: row.try_get::<DateTime<Utc>, _>("time")?.timestamp_micros(),
            message: row.try_get("message")?,
            output: row.try_get("output")?,
        },
    })
}

/// Resource usage as stored: a JSON object with the proto's field names.
fn usage_to_json(u: &v1::ResourceUsage) -> serde_json::Value {
    serde_json::json!({
        "queue_time_ms": u.queue_time_ms,
        "execution_time_ms": u.execution_time_ms,
        "total_duration_ms": u.total_duration_ms,
        "memory_start_mb": u.memory_start_mb,
        "memory_peak_mb": u.memory_peak_mb,
        "memory_end_mb": u.memory_end_mb,
        "cpu_percent": u.cpu_percent,
        "thread_count": u.thread_count,
    })
}

fn usage_from_json(v: &serde_json::Value) -> v1::ResourceUsage {
    let int = |k: &str| v.get(k).and_then(serde_json::Value::as_i64).unwrap_or(0);
    let float = |k: &str| v.get(k).and_then(serde_json::Value::as_f64).unwrap_or(0.0);
    v1::ResourceUsage {
        queue_time_ms: int("queue_time_ms"),
        execution_time_ms: int("execution_time_ms"),
        total_duration_ms: int("total_duration_ms"),
        memory_start_mb: float("memory_start_mb"),
        memory_peak_mb: float("memory_peak_mb"),
        memory_end_mb: float("memory_end_mb"),
        cpu_percent: float("cpu_percent"),
        thread_count: u32::try_from(int("thread_count")).unwrap_or(0),
    }
}

/// Host facts as stored: a JSON object with the proto's field names.
fn host_to_json(h: &v1::WorkerHost) -> serde_json::Value {
    serde_json::json!({
        "worker_id": h.worker_id,
        "os": h.os,
        "arch": h.arch,
        "hostname": h.hostname,
        "physical_cores": h.physical_cores,
        "logical_cores": h.logical_cores,
        "total_memory_mb": h.total_memory_mb,
        "runtime_version": h.runtime_version,
        "container_runtime": h.container_runtime,
        "pid": h.pid,
    })
}

fn host_from_json(v: &serde_json::Value) -> v1::WorkerHost {
    let text = |k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let int = |k: &str| v.get(k).and_then(serde_json::Value::as_i64).unwrap_or(0);
    v1::WorkerHost {
        worker_id: text("worker_id"),
        os: text("os"),
        arch: text("arch"),
        hostname: text("hostname"),
        physical_cores: u32::try_from(int("physical_cores")).unwrap_or(0),
        logical_cores: u32::try_from(int("logical_cores")).unwrap_or(0),
        total_memory_mb: v
            .get("total_memory_mb")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.0),
        runtime_version: text("runtime_version"),
        container_runtime: text("container_runtime"),
        pid: int("pid"),
    }
}

fn json_text(v: &Option<serde_json::Value>) -> Option<String> {
    v.as_ref().map(serde_json::Value::to_string)
}

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
    }
}

/// `UNNEST` of the 14 step columns bound from parameter `$first` on.
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
    ];
    let params: Vec<String> = types
        .iter()
        .enumerate()
        .map(|(i, t)| format!("${}::{t}[]", first + i))
        .collect();
    format!(
        "UNNEST({}) AS u(run_id, position, step_id, kind, status, attempt, output, error, worker_id, \
         queued_at, started_at, ended_at, next_attempt_at, usage)",
        params.join(", ")
    )
}

/// Every write of a batch in one statement (one round trip): data-modifying CTEs for runs, new
/// steps, changed steps, attempts and events. Empty arrays write nothing.
static PERSIST_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
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
           INSERT INTO step_runs ({STEP_COLUMNS}) SELECT run_id, position, step_id, kind, status, attempt, \
             output::jsonb, error, worker_id, queued_at, started_at, ended_at, next_attempt_at, usage::jsonb \
             FROM {inserts} \
           RETURNING 1), \
         su AS (\
           UPDATE step_runs s SET status = u.status, attempt = u.attempt, output = u.output::jsonb, \
             error = u.error, worker_id = u.worker_id, queued_at = u.queued_at, started_at = u.started_at, \
             ended_at = u.ended_at, next_attempt_at = u.next_attempt_at, usage = u.usage::jsonb \
           FROM {updates} WHERE s.run_id = u.run_id AND s.position = u.position RETURNING 1), \
         a AS (\
           INSERT INTO step_attempts (run_id, step_id, attempt, status, error, worker_id, queued_at, started_at, ended_at, usage) \
           SELECT run_id, step_id, attempt, status, error, worker_id, queued_at, started_at, ended_at, usage::jsonb \
           FROM UNNEST($38::uuid[], $39::text[], $40::int4[], $41::text[], $42::text[], $43::text[], \
             $44::timestamptz[], $45::timestamptz[], $46::timestamptz[], $47::text[]) \
             AS u(run_id, step_id, attempt, status, error, worker_id, queued_at, started_at, ended_at, usage) \
           ON CONFLICT DO NOTHING RETURNING 1), \
         e AS (\
           INSERT INTO run_events (run_id, sequence, event_type, step_id, attempt, message, output, time) \
           SELECT run_id, seq, t, step_id, attempt, message, output::jsonb, time \
           FROM UNNEST($48::uuid[], $49::int8[], $50::text[], $51::text[], $52::int4[], $53::text[], $54::text[], \
             $55::timestamptz[]) AS u(run_id, seq, t, step_id, attempt, message, output, time) \
           RETURNING 1) \
         SELECT (SELECT count(*) FROM r) + (SELECT count(*) FROM si) + (SELECT count(*) FROM su) \
           + (SELECT count(*) FROM a) + (SELECT count(*) FROM e)",
        inserts = step_unnest(10),
        updates = step_unnest(24),
    )
});

async fn persist(tx: &mut Transaction<'_, Postgres>, runs: &[RunState]) -> Result<(), StoreError> {
    let changed: Vec<&RunState> = runs.iter().filter(|r| r.is_changed()).collect();
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
        for (position, step) in run.steps.iter().enumerate() {
            if run.steps_created {
                inserts.push(run.id, position, step);
            } else if step.dirty {
                updates.push(run.id, position, step);
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
        .await?;
    Ok(())
}

/// The attempt history with each step's final attempt, which lives in the step's row (only
/// attempts replaced by a retry are written to `step_attempts`).
fn with_final_attempts(run: &RunState, mut attempts: Vec<AttemptRecord>) -> Vec<AttemptRecord> {
    for step in &run.steps {
        let finished = matches!(step.status, StepStatus::Completed | StepStatus::Failed);
        let Some(ended_at) = step.ended_at.filter(|_| finished && step.attempt > 0) else {
            continue;
        };
        let recorded = attempts
            .iter()
            .any(|a| a.step_id == step.step_id && a.attempt == step.attempt);
        if !recorded {
            attempts.push(AttemptRecord {
                step_id: step.step_id.clone(),
                attempt: step.attempt,
                status: step.status,
                error: step
                    .error
                    .clone()
                    .filter(|_| step.status == StepStatus::Failed),
                worker_id: step.worker_id.clone(),
                queued_at: step.queued_at,
                started_at: step.started_at,
                ended_at,
                usage: step.usage,
            });
        }
    }
    attempts.sort_by(|a, b| {
        (a.ended_at, &a.step_id, a.attempt).cmp(&(b.ended_at, &b.step_id, b.attempt))
    });
    attempts
}

fn parse_run_token(token: &str) -> Result<Option<(DateTime<Utc>, Uuid)>, StoreError> {
    if token.is_empty() {
        return Ok(None);
    }
    let (t, id) = token.split_once('_').ok_or(StoreError::BadPageToken)?;
    let t = t.parse::<i64>().map_err(|_| StoreError::BadPageToken)?;
    let id = id.parse::<Uuid>().map_err(|_| StoreError::BadPageToken)?;
    Ok(Some((
        DateTime::from_timestamp_micros(t).ok_or(StoreError::BadPageToken)?,
        id,
    )))
}

fn page_size(page: &PageRequest) -> i64 {
    match page.size {
        0 => 100,
        n => i64::from(n.min(1_000)),
    }
}

struct PgRunBatch {
    tx: Transaction<'static, Postgres>,
    runs: Vec<RunState>,
    cache: StepCache,
    written: bool,
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
        self.tx.commit().await?;
        self.cache.remember(&self.runs);
        Ok(self.runs)
    }
}

#[async_trait]
impl Store for PgStore {
    #[tracing::instrument(skip_all, fields(workflow = %format!("{}/{}@{}", wf.owner, wf.name, wf.version)))]
    async fn put_workflow(&self, wf: NewWorkflow) -> Result<PutWorkflowOutcome, StoreError> {
        let inserted = sqlx::query(trusted(format!(
            "INSERT INTO workflows (owner, name, version, digest, definition) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT DO NOTHING RETURNING {WORKFLOW_COLUMNS}"
        )))
        .bind(&wf.owner)
        .bind(&wf.name)
        .bind(wf.version as i32)
        .bind(&wf.digest)
        .bind(&wf.definition)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = inserted {
            return Ok(PutWorkflowOutcome::Created(workflow_from_row(&row)?));
        }
        let existing = self
            .get_workflow(&wf.owner, &wf.name, Some(wf.version))
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
        owner: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<StoredWorkflow>, StoreError> {
        let row = sqlx::query(trusted(format!(
            "SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE owner = $1 AND name = $2 \
             AND ($3::int4 IS NULL OR version = $3) ORDER BY version DESC LIMIT 1"
        )))
        .bind(owner)
        .bind(name)
        .bind(version.map(|v| v as i32))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(workflow_from_row).transpose()
    }

    async fn list_workflows(
        &self,
        owner: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<StoredWorkflow>, StoreError> {
        let after = if page.token.is_empty() {
            None
        } else {
            let r: baton_workflow::WorkflowRef =
                page.token.parse().map_err(|_| StoreError::BadPageToken)?;
            Some((
                r.owner,
                r.name,
                -(r.version.ok_or(StoreError::BadPageToken)? as i32),
            ))
        };
        let limit = page_size(&page);
        let rows = sqlx::query(trusted(format!(
            "SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE ($1::text IS NULL OR owner = $1) \
             AND ($2::text IS NULL OR (owner, name, -version) > ($2, $3, $4)) \
             ORDER BY owner, name, version DESC LIMIT $5"
        )))
        .bind(owner)
        .bind(after.as_ref().map(|a| a.0.as_str()))
        .bind(after.as_ref().map(|a| a.1.as_str()))
        .bind(after.as_ref().map(|a| a.2))
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await?;
        let mut items = rows
            .iter()
            .map(workflow_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next_token = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items
                .last()
                .map(StoredWorkflow::workflow_ref)
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Page { items, next_token })
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
        .await?;
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
            .fetch_one(&self.pool)
            .await?;
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
        .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    async fn get_run(&self, id: Uuid) -> Result<Option<RunDetail>, StoreError> {
        let Some(row) = sqlx::query(trusted(format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let mut run = run_from_row(&row)?;
        let steps = sqlx::query(trusted(format!(
            "SELECT {STEP_COLUMNS} FROM step_runs WHERE run_id = $1 ORDER BY position"
        )))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        run.steps = steps.iter().map(step_from_row).collect::<Result<_, _>>()?;
        let rows = sqlx::query(
            "SELECT step_id, attempt, status, error, worker_id, queued_at, started_at, ended_at, usage \
             FROM step_attempts WHERE run_id = $1 ORDER BY ended_at, step_id, attempt",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let attempts = rows
            .iter()
            .map(|r| {
                let status: String = r.try_get("status")?;
                Ok(AttemptRecord {
                    step_id: r.try_get("step_id")?,
                    attempt: u32::try_from(r.try_get::<i32, _>("attempt")?).unwrap_or(0),
                    status: status.parse::<StepStatus>().map_err(corrupt)?,
                    error: r.try_get("error")?,
                    worker_id: r.try_get("worker_id")?,
                    queued_at: micros(r.try_get("queued_at")?),
                    started_at: micros(r.try_get("started_at")?),
                    ended_at: r
                        .try_get::<DateTime<Utc>, _>("ended_at")?
                        .timestamp_micros(),
                    usage: r
                        .try_get::<Option<serde_json::Value>, _>("usage")?
                        .as_ref()
                        .map(usage_from_json),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let attempts = with_final_attempts(&run, attempts);
        let mut worker_ids: Vec<&str> = attempts
            .iter()
            .filter_map(|a| a.worker_id.as_deref())
            .collect();
        worker_ids.sort_unstable();
        worker_ids.dedup();
        let workers = if worker_ids.is_empty() {
            Vec::new()
        } else {
            let hosts: Vec<serde_json::Value> = sqlx::query_scalar(
                "SELECT host FROM workers WHERE worker_id = ANY($1) ORDER BY worker_id",
            )
            .bind(&worker_ids)
            .fetch_all(&self.pool)
            .await?;
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
        .bind(after.map(|a| a.0))
        .bind(after.map(|a| a.1))
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await?;
        let mut items = rows
            .iter()
            .map(run_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next_token = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items
                .last()
                .map(|r| format!("{}_{}", r.created_at, r.id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Page { items, next_token })
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
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    #[tracing::instrument(skip_all, fields(runs = ids.len()))]
    async fn lock_runs(&self, ids: &[Uuid]) -> Result<Box<dyn RunBatch>, StoreError> {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(trusted(format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE id = ANY($1) ORDER BY id FOR UPDATE"
        )))
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        let mut runs = rows
            .iter()
            .map(run_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let mut missing = Vec::new();
        for run in runs.iter_mut().filter(|r| r.status != RunStatus::Queued) {
            match self.steps.get(run.id, run.last_sequence) {
                Some(steps) => run.steps = steps,
                None => missing.push(run.id),
            }
        }
        if !missing.is_empty() {
            let index: HashMap<Uuid, usize> =
                runs.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
            let steps = sqlx::query(trusted(format!(
                "SELECT {STEP_COLUMNS} FROM step_runs WHERE run_id = ANY($1) ORDER BY run_id, position"
            )))
            .bind(&missing)
            .fetch_all(&mut *tx)
            .await?;
            for row in &steps {
                let run_id: Uuid = row.try_get("run_id")?;
                if let Some(&i) = index.get(&run_id) {
                    runs[i].steps.push(step_from_row(row)?);
                }
            }
        }
        Ok(Box::new(PgRunBatch {
            tx,
            runs,
            cache: self.steps.clone(),
            written: false,
        }))
    }

    async fn overdue_runs(
        &self,
        now_micros: i64,
        grace_micros: i64,
        limit: i64,
    ) -> Result<Vec<WakeCandidate>, StoreError> {
        let cutoff = ts(Some(now_micros - grace_micros)).unwrap_or_else(Utc::now);
        let queued: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM runs WHERE status = 'queued' AND created_at < $1 ORDER BY created_at LIMIT $2",
        )
        .bind(cutoff)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let overdue: Vec<Uuid> = sqlx::query_scalar(
            "SELECT run_id FROM step_runs WHERE status = 'retrying' AND next_attempt_at < $1 \
             UNION SELECT id FROM runs WHERE status = 'running' AND deadline < $1 LIMIT $2",
        )
        .bind(cutoff)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(queued
            .into_iter()
            .map(WakeCandidate::NotStarted)
            .chain(overdue.into_iter().map(WakeCandidate::Overdue))
            .collect())
    }

    async fn status_counts(&self) -> Result<StatusCounts, StoreError> {
        let pairs = |rows: Vec<(String, i64)>| rows.into_iter().collect();
        let runs: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, count(*) FROM runs GROUP BY status")
                .fetch_all(&self.pool)
                .await?;
        let steps: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, count(*) FROM step_runs GROUP BY status")
                .fetch_all(&self.pool)
                .await?;
        let active: Vec<(String, i64)> = sqlx::query_as(
            "SELECT s.status, count(*) FROM step_runs s JOIN runs r ON r.id = s.run_id \
             WHERE r.status = 'running' GROUP BY s.status",
        )
        .fetch_all(&self.pool)
        .await?;
        let retrying: Vec<(String, i64)> = sqlx::query_as(
            "SELECT kind, count(*) FROM step_runs WHERE status = 'retrying' GROUP BY kind",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(StatusCounts {
            runs: pairs(runs),
            steps: pairs(steps),
            active_steps: pairs(active),
            retrying_by_kind: pairs(retrying),
        })
    }

    async fn record_workers(&self, hosts: &[v1::WorkerHost]) -> Result<(), StoreError> {
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
        .await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
