//! Filling the production database with history: copies of one real finished chain run (its run,
//! steps, attempts and events, every column as the services wrote it) inserted in bulk with
//! `INSERT ... SELECT ... FROM generate_series`, so that the scenarios can be measured again on a
//! database holding many finished runs. The bench runs no VACUUM or ANALYZE: it waits, reading
//! `pg_stat_user_tables` only, until the services' own table upkeep (or the server's autovacuum)
//! has seen the new rows, as it would have while real history accumulated over hours, and then
//! measures.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sqlx::PgPool;
use uuid::Uuid;

/// Runs inserted by one statement (with their steps, attempts and events, in one transaction).
pub const BATCH: u64 = 10_000;

/// How a column of a copied row gets its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Col {
    /// The copy's own run id.
    RunId,
    /// As in the template.
    Same,
    /// The template's time, moved back into the past by the copy's shift.
    Time,
    /// The template's value made unique per copy when it is set (an idempotency key).
    UniqueText,
}

/// A table the copy writes, with every column of it (from the PostgreSQL migrations).
struct Table {
    name: &'static str,
    /// The column holding the run id (`id` in `runs`, `run_id` elsewhere).
    run_key: &'static str,
    columns: &'static [(&'static str, Col)],
}

/// In the order the foreign keys need.
const TABLES: &[Table] = &[
    Table {
        name: "runs",
        run_key: "id",
        columns: &[
            ("id", Col::RunId),
            ("tenant", Col::Same),
            ("workflow_ref", Col::Same),
            ("status", Col::Same),
            ("inputs", Col::Same),
            ("output", Col::Same),
            ("error", Col::Same),
            ("idempotency_key", Col::UniqueText),
            ("max_parallel", Col::Same),
            ("deadline", Col::Time),
            ("created_at", Col::Time),
            ("started_at", Col::Time),
            ("ended_at", Col::Time),
            ("last_sequence", Col::Same),
            ("trace_context", Col::Same),
        ],
    },
    Table {
        name: "step_runs",
        run_key: "run_id",
        columns: &[
            ("run_id", Col::RunId),
            ("position", Col::Same),
            ("step_id", Col::Same),
            ("kind", Col::Same),
            ("status", Col::Same),
            ("attempt", Col::Same),
            ("output", Col::Same),
            ("error", Col::Same),
            ("worker_id", Col::Same),
            ("queued_at", Col::Time),
            ("started_at", Col::Time),
            ("ended_at", Col::Time),
            ("next_attempt_at", Col::Time),
            ("usage", Col::Same),
            ("lease", Col::Same),
            ("lease_holder", Col::Same),
            ("lease_expires_at", Col::Time),
        ],
    },
    Table {
        name: "step_attempts",
        run_key: "run_id",
        columns: &[
            ("run_id", Col::RunId),
            ("step_id", Col::Same),
            ("attempt", Col::Same),
            ("status", Col::Same),
            ("error", Col::Same),
            ("worker_id", Col::Same),
            ("queued_at", Col::Time),
            ("started_at", Col::Time),
            ("ended_at", Col::Time),
            ("usage", Col::Same),
        ],
    },
    Table {
        name: "run_events",
        run_key: "run_id",
        columns: &[
            ("run_id", Col::RunId),
            ("sequence", Col::Same),
            ("event_type", Col::Same),
            ("step_id", Col::Same),
            ("attempt", Col::Same),
            ("message", Col::Same),
            ("output", Col::Same),
            ("time", Col::Time),
        ],
    },
];

/// The copy's run id: `$2` is a seed of this fill, `g` the copy's number.
const RUN_ID: &str = "md5($2 || ':' || g)::uuid";
/// How far back copy `g` of `$5` lies: `$4` seconds (so every copy ended before the oldest run
/// already there), plus 10 ms per copy after it, so the history is spread over time as real
/// history is.
const SHIFT: &str =
    "(make_interval(secs => $4) + ($5::bigint - g + 1) * interval '10 milliseconds')";

/// The statement copying the template run `$1`'s rows of `table` once per `g` in `$3..=$6`
/// (parameters: template id, seed, first copy, base shift in seconds, copies in all, last copy).
fn insert_sql(table: &Table) -> String {
    let names: Vec<&str> = table.columns.iter().map(|(name, _)| *name).collect();
    let values: Vec<String> = table
        .columns
        .iter()
        .map(|(name, col)| match col {
            Col::RunId => RUN_ID.to_owned(),
            Col::Same => format!("t.{name}"),
            Col::Time => format!("t.{name} - {SHIFT}"),
            Col::UniqueText => format!("t.{name} || ':' || g"),
        })
        .collect();
    format!(
        "INSERT INTO {table} ({names}) SELECT {values} \
         FROM generate_series($3::bigint, $6::bigint) AS g CROSS JOIN {table} AS t \
         WHERE t.{key} = $1",
        table = table.name,
        names = names.join(", "),
        values = values.join(", "),
        key = table.run_key,
    )
}

/// The batches `(first, last)` copy numbers of `total` copies, `batch` at a time.
fn batches(total: u64, batch: u64) -> Vec<(u64, u64)> {
    let batch = batch.max(1);
    (0..total.div_ceil(batch))
        .map(|i| (i * batch + 1, ((i + 1) * batch).min(total)))
        .collect()
}

/// What the template run left, per table, as the copies repeat it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pub id: Uuid,
    pub steps: i64,
    pub attempts: i64,
    pub events: i64,
}

/// What a fill inserted.
#[derive(Clone, Debug)]
pub struct Filled {
    pub template: Template,
    pub elapsed_s: f64,
}

/// Inserts `runs` copies of the latest completed run of `workflow_ref`, `BATCH` per
/// transaction, printing progress.
pub async fn fill(pool: &PgPool, workflow_ref: &str, runs: u64) -> anyhow::Result<Filled> {
    let template = template(pool, workflow_ref).await?;
    eprintln!(
        "history: copying run {} ({} steps, {} attempts, {} events) {runs} times",
        template.id, template.steps, template.attempts, template.events
    );
    // Seconds from the oldest run there to the template's start, plus one: every copy ends
    // before the runs already measured began.
    let base_shift: f64 = sqlx::query_scalar(
        "SELECT (EXTRACT(EPOCH FROM t.created_at - (SELECT min(created_at) FROM runs)) + 1)::float8 \
         FROM runs t WHERE t.id = $1",
    )
    .bind(template.id)
    .fetch_one(pool)
    .await
    .context("cannot read the template run's time")?;
    let seed = Uuid::new_v4().to_string();
    let statements: Vec<(&str, String)> = TABLES.iter().map(|t| (t.name, insert_sql(t))).collect();
    let started = Instant::now();
    for (first, last) in batches(runs, BATCH) {
        let mut tx = pool.begin().await?;
        for (table, sql) in &statements {
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(template.id)
                .bind(&seed)
                .bind(first as i64)
                .bind(base_shift)
                .bind(runs as i64)
                .bind(last as i64)
                .execute(&mut *tx)
                .await
                .with_context(|| {
                    format!("cannot insert history into {table} (runs {first}..={last})")
                })?;
        }
        tx.commit().await?;
        eprintln!(
            "history: {last} of {runs} runs inserted ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(Filled {
        template,
        elapsed_s: started.elapsed().as_secs_f64(),
    })
}

/// The tables whose statistics the hot path's plans depend on.
const HOT_TABLES: &[&str] = &["runs", "step_runs", "run_events"];

/// Waits until the hot tables have been analyzed (by the runner's upkeep or autovacuum) since
/// the fill ended, reading the server's statistics every 250 ms; returns how long that took, or
/// `None` when `timeout` passed first.
pub async fn await_upkeep(pool: &PgPool, timeout: Duration) -> anyhow::Result<Option<f64>> {
    let started = Instant::now();
    let filled_at: f64 = sqlx::query_scalar("SELECT extract(epoch FROM now())::float8")
        .fetch_one(pool)
        .await
        .context("cannot read the database's clock")?;
    loop {
        let pending: Vec<String> = sqlx::query_scalar(
            "SELECT t FROM unnest($1::text[]) AS t WHERE NOT EXISTS ( \
               SELECT 1 FROM pg_stat_user_tables s \
               WHERE s.schemaname = current_schema() AND s.relname = t \
                 AND greatest(s.last_analyze, s.last_autoanalyze) >= to_timestamp($2))",
        )
        .bind(HOT_TABLES)
        .bind(filled_at)
        .fetch_all(pool)
        .await
        .context("cannot read pg_stat_user_tables")?;
        if pending.is_empty() {
            return Ok(Some(started.elapsed().as_secs_f64()));
        }
        if started.elapsed() >= timeout {
            eprintln!(
                "history: {} not analyzed {:.0} s after the fill; measuring anyway",
                pending.join(", "),
                timeout.as_secs_f64()
            );
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The latest completed run of `workflow_ref` with what it left; an error if there is none or it
/// has no steps.
async fn template(pool: &PgPool, workflow_ref: &str) -> anyhow::Result<Template> {
    let row: Option<(Uuid, i64, i64, i64)> = sqlx::query_as(
        "SELECT r.id, \
                (SELECT count(*) FROM step_runs s WHERE s.run_id = r.id), \
                (SELECT count(*) FROM step_attempts a WHERE a.run_id = r.id), \
                (SELECT count(*) FROM run_events e WHERE e.run_id = r.id) \
         FROM runs r WHERE r.workflow_ref = $1 AND r.status = 'completed' \
         ORDER BY r.ended_at DESC LIMIT 1",
    )
    .bind(workflow_ref)
    .fetch_optional(pool)
    .await
    .context("cannot find a finished run to copy")?;
    let Some((id, steps, attempts, events)) = row else {
        bail!("no completed run of {workflow_ref} to copy into history");
    };
    if steps == 0 || events == 0 {
        bail!("run {id} of {workflow_ref} has {steps} steps and {events} events; cannot copy it");
    }
    Ok(Template {
        id,
        steps,
        attempts,
        events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cover_every_copy_once() {
        assert_eq!(
            batches(25_000, 10_000),
            [(1, 10_000), (10_001, 20_000), (20_001, 25_000)]
        );
        assert_eq!(batches(10_000, 10_000), [(1, 10_000)]);
        assert_eq!(batches(3, 0), [(1, 1), (2, 2), (3, 3)]);
        assert!(batches(0, 10_000).is_empty());
    }

    #[test]
    fn insert_copies_every_column_and_moves_times() {
        let sql = insert_sql(&TABLES[1]);
        assert!(
            sql.starts_with("INSERT INTO step_runs (run_id, position, step_id, "),
            "{sql}"
        );
        assert!(
            sql.contains(&format!("SELECT {RUN_ID}, t.position, t.step_id")),
            "{sql}"
        );
        assert!(sql.contains(&format!("t.queued_at - {SHIFT}")), "{sql}");
        assert!(
            sql.contains(&format!("t.lease_expires_at - {SHIFT}")),
            "{sql}"
        );
        assert!(sql.contains("t.lease, t.lease_holder"), "{sql}");
        assert!(
            sql.ends_with(
                "FROM generate_series($3::bigint, $6::bigint) AS g CROSS JOIN step_runs AS t \
                 WHERE t.run_id = $1"
            ),
            "{sql}"
        );
        let runs = insert_sql(&TABLES[0]);
        assert!(runs.contains("WHERE t.id = $1"), "{runs}");
        assert!(runs.contains("t.idempotency_key || ':' || g"), "{runs}");
    }

    #[test]
    fn tables_in_foreign_key_order() {
        let names: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
        assert_eq!(names, ["runs", "step_runs", "step_attempts", "run_events"]);
        for t in TABLES {
            assert_eq!(t.columns[0].1, Col::RunId, "{}", t.name);
            assert_eq!(t.columns.iter().filter(|c| c.1 == Col::RunId).count(), 1);
        }
    }
}
