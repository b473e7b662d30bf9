//! The assertions, read from the scenario's PostgreSQL once the load stopped and the system was
//! given a bounded time to settle: no acknowledged run lost, none stuck, every run's events
//! numbered 1..N with at most one terminal event, and every run ended the way it must. A stuck
//! run is listed with its steps and with what Redis still holds for it, which says why.

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    time::Duration,
};

use sqlx::{PgPool, Row};

use crate::{
    load::{Expect, Ledger},
    streams::{Streams, WorkSnapshot},
};

/// The event types that end a run.
const TERMINAL_EVENTS: &[(&str, &str)] = &[
    ("RUN_EVENT_TYPE_RUN_COMPLETED", "completed"),
    ("RUN_EVENT_TYPE_RUN_FAILED", "failed"),
    ("RUN_EVENT_TYPE_RUN_CANCELLED", "cancelled"),
    ("RUN_EVENT_TYPE_RUN_TIMED_OUT", "timed_out"),
];

/// Run states that are not an end.
const UNFINISHED: &[&str] = &["queued", "running"];

/// One broken promise: which check, which run, and what was found.
#[derive(Clone, Debug)]
pub struct Violation {
    pub check: &'static str,
    pub run: Option<String>,
    pub detail: String,
}

impl Violation {
    pub fn run(check: &'static str, run: &str, detail: impl Into<String>) -> Self {
        Self {
            check,
            run: Some(run.to_owned()),
            detail: detail.into(),
        }
    }

    pub fn general(check: &'static str, detail: impl Into<String>) -> Self {
        Self {
            check,
            run: None,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.run {
            Some(run) => write!(f, "[{}] run {run}: {}", self.check, self.detail),
            None => write!(f, "[{}] {}", self.check, self.detail),
        }
    }
}

/// What the database says after a scenario.
#[derive(Debug, Default)]
pub struct Audit {
    /// Runs in the database.
    pub runs: usize,
    pub by_status: BTreeMap<String, usize>,
    pub violations: Vec<Violation>,
}

/// Polls until no run is queued or running, or `within` passed; returns how long it took, or
/// `None` when runs were still unfinished at the end.
pub async fn settle(pool: &PgPool, streams: &Streams, within: Duration) -> Option<Duration> {
    let began = tokio::time::Instant::now();
    loop {
        let unfinished: Result<i64, _> =
            sqlx::query_scalar("SELECT count(*) FROM runs WHERE status = ANY($1)")
                .bind(UNFINISHED)
                .fetch_one(pool)
                .await;
        if unfinished.is_ok_and(|n| n == 0) && backlog(streams).await.is_ok_and(|b| b.is_empty()) {
            return Some(began.elapsed());
        }
        if began.elapsed() > within {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Work streams that still hold entries: (stream, length).
async fn backlog(streams: &Streams) -> anyhow::Result<Vec<(String, u64)>> {
    let mut left = Vec::new();
    for stream in streams.work_streams() {
        let length = streams.len(&stream).await?;
        if length > 0 {
            left.push((stream, length));
        }
    }
    Ok(left)
}

/// Runs every check.
pub async fn audit(pool: &PgPool, streams: &Streams, ledger: &Ledger) -> anyhow::Result<Audit> {
    let mut audit = Audit::default();
    let rows = sqlx::query(
        "SELECT id::text AS id, status, coalesce(error, '') AS error, idempotency_key, \
                inputs, output, last_sequence FROM runs",
    )
    .fetch_all(pool)
    .await?;
    audit.runs = rows.len();
    let mut runs: HashMap<String, sqlx::postgres::PgRow> = HashMap::new();
    for row in rows {
        let status: String = row.get("status");
        *audit.by_status.entry(status).or_default() += 1;
        runs.insert(row.get("id"), row);
    }
    acknowledged_present(&mut audit, &runs, ledger);
    outcomes(&mut audit, &runs, ledger);
    refused_absent(&mut audit, pool, ledger).await?;
    events(&mut audit, pool).await?;
    stuck(&mut audit, pool, streams).await?;
    for (stream, length) in backlog(streams).await? {
        audit.violations.push(Violation::general(
            "backlog",
            format!("{stream} still holds {length} entries after every run ended"),
        ));
    }
    for (key, status) in &ledger.refused {
        audit.violations.push(Violation::general(
            "refused",
            format!("StartRun {key} was refused: {status}"),
        ));
    }
    Ok(audit)
}

/// Every StartRun that returned OK is in the database, under its key.
fn acknowledged_present(
    audit: &mut Audit,
    runs: &HashMap<String, sqlx::postgres::PgRow>,
    ledger: &Ledger,
) {
    for ack in &ledger.acks {
        match runs.get(&ack.run_id) {
            None => audit.violations.push(Violation::run(
                "lost",
                &ack.run_id,
                format!(
                    "StartRun {} returned OK but the run is not in the database",
                    ack.key
                ),
            )),
            Some(row) => {
                let key: Option<String> = row.get("idempotency_key");
                if key.as_deref() != Some(ack.key.as_str()) {
                    audit.violations.push(Violation::run(
                        "idempotency",
                        &ack.run_id,
                        format!(
                            "StartRun {} returned this run, which has key {key:?}",
                            ack.key
                        ),
                    ));
                }
            }
        }
    }
}

/// Every acknowledged run that ended, ended as it must.
fn outcomes(audit: &mut Audit, runs: &HashMap<String, sqlx::postgres::PgRow>, ledger: &Ledger) {
    for ack in &ledger.acks {
        let Some(row) = runs.get(&ack.run_id) else {
            continue;
        };
        let status: String = row.get("status");
        if UNFINISHED.contains(&status.as_str()) {
            continue; // reported as stuck
        }
        let error: String = row.get("error");
        let problem = match &ack.expect {
            Expect::Complete if status != "completed" => {
                Some(format!("ended {status} ({error}); it had to complete"))
            }
            Expect::Complete => {
                let inputs: serde_json::Value = row.get("inputs");
                let output: Option<serde_json::Value> = row.get("output");
                let got = output.as_ref().map(|o| &o["end"]["i"]);
                (got != Some(&inputs["i"])).then(|| {
                    format!(
                        "completed with output {} for inputs {inputs}: step `end` must hold i = {}",
                        output.unwrap_or_default(),
                        inputs["i"]
                    )
                })
            }
            Expect::FailNaming(text) if status != "failed" || !error.contains(text.as_str()) => {
                Some(format!(
                    "ended {status} with error {error:?}; it had to fail naming {text:?}"
                ))
            }
            Expect::FailNaming(_) | Expect::End => None,
        };
        if let Some(problem) = problem {
            audit
                .violations
                .push(Violation::run("outcome", &ack.run_id, problem));
        }
    }
}

/// No StartRun that had to be refused left a run behind.
async fn refused_absent(audit: &mut Audit, pool: &PgPool, ledger: &Ledger) -> anyhow::Result<()> {
    let stored: Vec<(String, String)> = sqlx::query_as(
        "SELECT id::text, idempotency_key FROM runs WHERE idempotency_key = ANY($1)",
    )
    .bind(&ledger.must_not_exist)
    .fetch_all(pool)
    .await?;
    for (id, key) in stored {
        audit.violations.push(Violation::run(
            "refused-stored",
            &id,
            format!("StartRun {key} was refused, yet its run is stored"),
        ));
    }
    Ok(())
}

/// Events numbered 1..N with no gap, `last_sequence` = N, and exactly one terminal event for an
/// ended run (none for one that has not ended), matching its state.
async fn events(audit: &mut Audit, pool: &PgPool) -> anyhow::Result<()> {
    let terminal: Vec<&str> = TERMINAL_EVENTS.iter().map(|(e, _)| *e).collect();
    let rows = sqlx::query(
        "SELECT r.id::text AS id, r.status, r.last_sequence, \
                count(e.sequence) AS n, coalesce(min(e.sequence), 0) AS lo, \
                coalesce(max(e.sequence), 0) AS hi, \
                coalesce(array_agg(e.event_type ORDER BY e.sequence) \
                    FILTER (WHERE e.event_type = ANY($1)), '{}') AS ends \
         FROM runs r LEFT JOIN run_events e ON e.run_id = r.id GROUP BY r.id",
    )
    .bind(&terminal)
    .fetch_all(pool)
    .await?;
    for row in rows {
        let id: String = row.get("id");
        let status: String = row.get("status");
        let (n, lo, hi, last): (i64, i64, i64, i64) = (
            row.get("n"),
            row.get("lo"),
            row.get("hi"),
            row.get("last_sequence"),
        );
        let ends: Vec<String> = row.get("ends");
        if n == 0 {
            audit
                .violations
                .push(Violation::run("events", &id, "the run has no event"));
            continue;
        }
        if lo != 1 || hi != n {
            let missing = missing_sequences(pool, &id, hi).await?;
            audit.violations.push(Violation::run(
                "events",
                &id,
                format!("{n} events numbered {lo}..{hi}: missing {missing:?}"),
            ));
        }
        if last != hi {
            audit.violations.push(Violation::run(
                "events",
                &id,
                format!("last_sequence is {last} but the newest event is {hi}"),
            ));
        }
        if ends.len() > 1 {
            audit.violations.push(Violation::run(
                "terminal",
                &id,
                format!("{} terminal events: {}", ends.len(), ends.join(", ")),
            ));
        }
        let ended = !UNFINISHED.contains(&status.as_str());
        let matching = TERMINAL_EVENTS
            .iter()
            .find(|(_, s)| *s == status)
            .map(|(e, _)| *e);
        if ended && ends.is_empty() {
            audit.violations.push(Violation::run(
                "terminal",
                &id,
                format!("the run is {status} but has no terminal event"),
            ));
        } else if ended && ends.len() == 1 && matching != Some(ends[0].as_str()) {
            audit.violations.push(Violation::run(
                "terminal",
                &id,
                format!("the run is {status} but its terminal event is {}", ends[0]),
            ));
        } else if !ended && !ends.is_empty() {
            audit.violations.push(Violation::run(
                "terminal",
                &id,
                format!("the run is {status} yet has terminal event {}", ends[0]),
            ));
        }
    }
    Ok(())
}

async fn missing_sequences(pool: &PgPool, run: &str, hi: i64) -> anyhow::Result<Vec<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT s FROM generate_series(1::bigint, $2) s \
         WHERE NOT EXISTS (SELECT 1 FROM run_events WHERE run_id = $1::uuid AND sequence = s) \
         ORDER BY s LIMIT 20",
    )
    .bind(run)
    .bind(hi)
    .fetch_all(pool)
    .await?)
}

/// Runs still queued or running, each with its steps and why nothing will move it.
async fn stuck(audit: &mut Audit, pool: &PgPool, streams: &Streams) -> anyhow::Result<()> {
    let rows = sqlx::query(
        "SELECT r.id::text AS id, r.status, \
                array_agg(s.step_id ORDER BY s.position) FILTER (WHERE s.step_id IS NOT NULL) AS ids, \
                array_agg(s.status ORDER BY s.position) FILTER (WHERE s.step_id IS NOT NULL) AS states, \
                array_agg(s.attempt ORDER BY s.position) FILTER (WHERE s.step_id IS NOT NULL) AS attempts \
         FROM runs r LEFT JOIN step_runs s ON s.run_id = r.id \
         WHERE r.status = ANY($1) GROUP BY r.id ORDER BY min(r.created_at)",
    )
    .bind(UNFINISHED)
    .fetch_all(pool)
    .await?;
    if rows.is_empty() {
        return Ok(());
    }
    let snapshot = match streams.snapshot().await {
        Ok(snapshot) => Some(snapshot),
        Err(e) => {
            audit.violations.push(Violation::general(
                "stuck",
                format!("cannot read Redis to say why runs are stuck: {e:#}"),
            ));
            None
        }
    };
    for row in rows {
        let id: String = row.get("id");
        let status: String = row.get("status");
        let steps: Vec<(String, String, i32)> = {
            let ids: Option<Vec<String>> = row.get("ids");
            let states: Option<Vec<String>> = row.get("states");
            let attempts: Option<Vec<i32>> = row.get("attempts");
            ids.unwrap_or_default()
                .into_iter()
                .zip(states.unwrap_or_default())
                .zip(attempts.unwrap_or_default())
                .map(|((i, s), a)| (i, s, a))
                .collect()
        };
        let listed: Vec<String> = steps
            .iter()
            .map(|(step, state, attempt)| format!("{step}={state}#{attempt}"))
            .collect();
        let why = snapshot
            .as_ref()
            .map(|s| why_stuck(&id, &status, &steps, s))
            .unwrap_or_default();
        audit.violations.push(Violation::run(
            "stuck",
            &id,
            format!("{status}; steps [{}]; {why}", listed.join(" ")),
        ));
    }
    Ok(())
}

/// What Redis holds for a stuck run, in words.
fn why_stuck(
    run: &str,
    status: &str,
    steps: &[(String, String, i32)],
    redis: &WorkSnapshot,
) -> String {
    let in_inbox = redis.inbox_runs.contains(run);
    let timer = redis.timer_runs.contains(run);
    if status == "queued" {
        return if in_inbox {
            "its start message is still in the runner inbox".into()
        } else {
            "no start message in Redis: nothing will start it".into()
        };
    }
    let in_flight: Vec<&(String, String, i32)> = steps
        .iter()
        .filter(|(_, state, _)| state == "queued" || state == "running")
        .collect();
    if in_flight.is_empty() {
        return format!(
            "no step queued or running; {} wake-up timer, {} inbox message",
            if timer { "a" } else { "no" },
            if in_inbox { "an" } else { "no" },
        );
    }
    let lost: Vec<String> = in_flight
        .iter()
        .filter(|(step, _, attempt)| {
            !redis
                .jobs
                .contains_key(&(run.to_owned(), step.clone(), *attempt as u32))
        })
        .map(|(step, state, attempt)| format!("{step} ({state}, attempt {attempt})"))
        .collect();
    if lost.is_empty() {
        "every queued or running step's job is still in its stream".into()
    } else {
        format!(
            "no job in Redis for {} and nothing dispatched it again",
            lost.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(list: &[(&str, &str, i32)]) -> Vec<(String, String, i32)> {
        list.iter()
            .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), *c))
            .collect()
    }

    #[test]
    fn a_stuck_run_is_explained_by_what_redis_holds() {
        let mut redis = WorkSnapshot::default();
        let queued = steps(&[("a", "completed", 1), ("b", "queued", 1)]);
        assert_eq!(
            why_stuck("r", "running", &queued, &redis),
            "no job in Redis for b (queued, attempt 1) and nothing dispatched it again"
        );
        redis
            .jobs
            .insert(("r".into(), "b".into(), 1), "p:jobs:noop".into());
        assert_eq!(
            why_stuck("r", "running", &queued, &redis),
            "every queued or running step's job is still in its stream"
        );
        assert_eq!(
            why_stuck("r", "queued", &[], &redis),
            "no start message in Redis: nothing will start it"
        );
        let idle = steps(&[("a", "completed", 1), ("b", "pending", 0)]);
        assert_eq!(
            why_stuck("r", "running", &idle, &redis),
            "no step queued or running; no wake-up timer, no inbox message"
        );
    }
}
