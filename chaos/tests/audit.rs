//! The audit finds each broken promise it claims to check, run by run: on the suite's own
//! PostgreSQL and Redis, a database with one run of each kind of damage, and one healthy run that
//! must raise nothing.

use std::collections::BTreeSet;

use baton_chaos::{
    audit,
    load::{Ack, Expect, Ledger},
    servers::Servers,
    streams::Streams,
};

const HEALTHY: &str = "00000000-0000-7000-8000-000000000001";
const GAP: &str = "00000000-0000-7000-8000-000000000002";
const TWO_ENDS: &str = "00000000-0000-7000-8000-000000000003";
const STUCK: &str = "00000000-0000-7000-8000-000000000004";
const WRONG_END: &str = "00000000-0000-7000-8000-000000000005";
const LOST: &str = "00000000-0000-7000-8000-000000000006";
const NO_END_EVENT: &str = "00000000-0000-7000-8000-000000000007";

fn ack(run: &str) -> Ack {
    Ack {
        key: format!("key-{run}"),
        run_id: run.into(),
        expect: Expect::Complete,
    }
}

#[tokio::test]
async fn each_broken_promise_is_found_and_a_healthy_run_passes() {
    let servers = Servers::start().await.unwrap();
    let url = servers.postgres.create_database("audit").await.unwrap();
    let store = baton_store::PgStore::connect(&url, 2).await.unwrap();
    store.migrate().await.unwrap();
    let pool = store.pool();
    let runs = [
        (HEALTHY, "completed", r#"{"end": {"i": 1}}"#),
        (GAP, "completed", r#"{"end": {"i": 1}}"#),
        (TWO_ENDS, "completed", r#"{"end": {"i": 1}}"#),
        (STUCK, "running", "null"),
        (WRONG_END, "failed", "null"),
        (NO_END_EVENT, "completed", r#"{"end": {"i": 1}}"#),
    ];
    let events: &[(&str, &[&str])] = &[
        (HEALTHY, &["RUN_QUEUED", "RUN_STARTED", "RUN_COMPLETED"]),
        (GAP, &["RUN_QUEUED", "", "RUN_COMPLETED"]),
        (TWO_ENDS, &["RUN_QUEUED", "RUN_COMPLETED", "RUN_FAILED"]),
        (STUCK, &["RUN_QUEUED", "RUN_STARTED", "STEP_QUEUED"]),
        (WRONG_END, &["RUN_QUEUED", "RUN_FAILED"]),
        (NO_END_EVENT, &["RUN_QUEUED", "RUN_STARTED"]),
    ];
    for (id, status, output) in runs {
        let last = events.iter().find(|(r, _)| *r == id).unwrap().1.len() as i64;
        sqlx::query(
            "INSERT INTO runs (id, tenant, workflow_ref, status, inputs, output, idempotency_key, \
             created_at, last_sequence) \
             VALUES ($1::uuid, 'default', 'chaos/chain@1', $2, '{\"i\": 1}', $3::jsonb, $4, now(), $5)",
        )
        .bind(id)
        .bind(status)
        .bind(output)
        .bind(format!("key-{id}"))
        .bind(last)
        .execute(pool)
        .await
        .unwrap();
    }
    for (id, types) in events {
        for (n, event) in types.iter().enumerate() {
            if event.is_empty() {
                continue; // the gap
            }
            sqlx::query(
                "INSERT INTO run_events (run_id, sequence, event_type, time) \
                 VALUES ($1::uuid, $2, $3, now())",
            )
            .bind(id)
            .bind(n as i64 + 1)
            .bind(format!("RUN_EVENT_TYPE_{event}"))
            .execute(pool)
            .await
            .unwrap();
        }
    }
    sqlx::query(
        "INSERT INTO step_runs (run_id, position, step_id, kind, status, attempt) \
         VALUES ($1::uuid, 0, 'work', 'noop', 'queued', 1)",
    )
    .bind(STUCK)
    .execute(pool)
    .await
    .unwrap();

    let ledger = Ledger {
        acks: [HEALTHY, GAP, TWO_ENDS, STUCK, WRONG_END, LOST, NO_END_EVENT]
            .into_iter()
            .map(ack)
            .collect(),
        ..Default::default()
    };
    let streams = Streams::new(&servers.redis.url(), "audit");
    let found = audit::audit(pool, &streams, &ledger).await.unwrap();

    let got: BTreeSet<(&str, String)> = found
        .violations
        .iter()
        .map(|v| (v.check, v.run.clone().unwrap_or_default()))
        .collect();
    let want: BTreeSet<(&str, String)> = [
        ("events", GAP),
        ("terminal", TWO_ENDS),
        ("stuck", STUCK),
        ("outcome", WRONG_END),
        ("lost", LOST),
        ("terminal", NO_END_EVENT),
    ]
    .into_iter()
    .map(|(c, r)| (c, r.to_owned()))
    .collect();
    assert_eq!(got, want, "{:#?}", found.violations);
    let detail = |run: &str| {
        found
            .violations
            .iter()
            .find(|v| v.run.as_deref() == Some(run))
            .unwrap()
            .detail
            .clone()
    };
    assert!(detail(GAP).contains("missing [2]"), "{}", detail(GAP));
    assert!(
        detail(STUCK).contains("no job in Redis for work (queued, attempt 1)"),
        "{}",
        detail(STUCK)
    );
    assert_eq!(found.runs, 6);
    store.pool().close().await;
}
