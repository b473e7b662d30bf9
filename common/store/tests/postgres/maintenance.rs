//! Table upkeep on a server that does none: with autovacuum off for Baton's tables, a plan
//! cached while a table was empty stays a sequential scan as the table grows, until
//! [`Store::maintain`] analyzes it. Autovacuum is turned off per table here, so the checks hold
//! whatever the server's own setting is.

use std::time::Duration;

use baton_store::{PG_MAINTENANCE_LOCK, PgStore, Store};
use sqlx::{Connection, PgConnection};

use super::{admin, create_database, drop_database, resume};

const TABLES: &[&str] = &[
    "runs",
    "step_runs",
    "step_attempts",
    "run_events",
    "workflows",
    "workers",
    "api_keys",
];

/// A migrated database whose tables autovacuum leaves alone; runs `check` with the store and a
/// connection of its own, then drops the database.
async fn without_autovacuum<F, Fut>(check: F)
where
    F: FnOnce(PgStore, PgConnection, Writer) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut admin = admin().await;
    let (database, url) = create_database(&mut admin).await;
    let store = PgStore::connect(&url, 2).await.expect("connect");
    store.migrate().await.expect("migrations apply");
    let mut conn = PgConnection::connect(&url).await.expect("connect");
    for table in TABLES {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "ALTER TABLE {table} SET (autovacuum_enabled = false)"
        )))
        .execute(&mut conn)
        .await
        .expect("turn autovacuum off for the table");
    }
    let pool = store.pool().clone();
    let outcome = tokio::spawn(check(store, conn, Writer(url))).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), pool.close()).await;
    drop_database(&mut admin, &database).await;
    resume(outcome);
}

/// Writes on a connection of its own that it then closes: a session reports its counts to the
/// server's statistics when it ends (an idle one, only after 10 s).
struct Writer(String);

impl Writer {
    async fn run(&self, sql: &str) {
        let mut conn = PgConnection::connect(&self.0).await.expect("connect");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        conn.close().await.expect("close");
    }

    async fn insert_runs(&self, n: i32) {
        self.run(&format!(
            "INSERT INTO runs (id, tenant, workflow_ref, status, inputs, created_at) \
             SELECT gen_random_uuid(), 'acme', 'acme/etl@1', 'completed', '{{}}', now() \
             FROM generate_series(1, {n})"
        ))
        .await;
    }
}

/// Maintains until a pass has analyzed `table`: the server's statistics counters reach it up to
/// a second after the rows were written.
async fn maintain_until_analyzed(store: &PgStore, table: &str) -> baton_store::MaintenanceReport {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let report = store.maintain().await.expect("maintain");
        assert!(!report.held_elsewhere, "nobody else holds the lock");
        if report.tables.iter().any(|t| t.table == table && t.analyzed) {
            return report;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{table} was never analyzed: last report {report:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn lookup_plan(conn: &mut PgConnection) -> String {
    let rows: Vec<String> = sqlx::raw_sql(
        "EXPLAIN EXECUTE lock_runs(ARRAY['00000000-0000-0000-0000-000000000001'::uuid])",
    )
    .fetch_all(&mut *conn)
    .await
    .expect("explain")
    .iter()
    .map(|row| sqlx::Row::get::<String, _>(row, 0))
    .collect();
    rows.join("\n")
}

#[tokio::test]
async fn a_plan_cached_on_an_empty_table_is_made_again_once_the_table_grows() {
    without_autovacuum(|store, mut conn, writer| async move {
        // What a long-lived pool connection does: plan the runner's lookup once, while the
        // table is empty, and keep that plan.
        sqlx::raw_sql(
            "SET plan_cache_mode = force_generic_plan; \
             PREPARE lock_runs(uuid[]) AS SELECT id FROM runs WHERE id = ANY($1) FOR UPDATE",
        )
        .execute(&mut conn)
        .await
        .expect("prepare");
        let empty = lookup_plan(&mut conn).await;
        assert!(empty.contains("Seq Scan on runs"), "{empty}");

        writer.insert_runs(20_000).await;
        let grown = lookup_plan(&mut conn).await;
        assert!(
            grown.contains("Seq Scan on runs"),
            "nothing told the planner the table grew: {grown}"
        );

        let report = maintain_until_analyzed(&store, "runs").await;
        let runs = report.tables.iter().find(|t| t.table == "runs").unwrap();
        assert!(runs.analyzed);
        let replanned = lookup_plan(&mut conn).await;
        assert!(
            replanned.contains("Index") && !replanned.contains("Seq Scan"),
            "after the upkeep the lookup takes the primary key: {replanned}"
        );
        let reltuples: f32 =
            sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE relname = 'runs'")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert!(
            reltuples > 10_000.0,
            "statistics now know the rows: {reltuples}"
        );

        // Nothing changed since: the next pass leaves the table alone.
        let again = store.maintain().await.expect("maintain");
        assert!(again.tables.iter().all(|t| t.table != "runs"), "{again:?}");
    })
    .await;
}

#[tokio::test]
async fn dead_rows_are_vacuumed_once_past_the_servers_threshold() {
    without_autovacuum(|store, mut conn, writer| async move {
        writer.insert_runs(2_000).await;
        maintain_until_analyzed(&store, "runs").await;
        // Every row dead: far past 50 + 20 % of 2 000.
        writer.run("UPDATE runs SET status = 'failed'").await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let vacuumed = loop {
            let report = store.maintain().await.expect("maintain");
            if let Some(t) = report
                .tables
                .iter()
                .find(|t| t.table == "runs" && t.vacuumed)
            {
                break t.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never vacuumed: {report:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert!(
            vacuumed.analyzed,
            "2 000 changed rows are due for ANALYZE too"
        );
        let last_vacuum: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
            "SELECT last_vacuum FROM pg_stat_user_tables WHERE relname = 'runs'",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert!(last_vacuum.is_some());
    })
    .await;
}

#[tokio::test]
async fn one_replica_at_a_time_maintains() {
    without_autovacuum(|store, mut conn, writer| async move {
        writer.insert_runs(500).await;
        let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(PG_MAINTENANCE_LOCK)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert!(held);
        // Once the new rows reach the statistics, a pass has work to do, and finds the lock taken.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let report = store.maintain().await.expect("maintain");
            assert!(report.tables.is_empty(), "{report:?}");
            if report.held_elsewhere {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never due: {report:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(PG_MAINTENANCE_LOCK)
            .execute(&mut conn)
            .await
            .unwrap();
        maintain_until_analyzed(&store, "runs").await;
    })
    .await;
}

#[tokio::test]
async fn tables_the_servers_autovacuum_covers_are_left_to_it() {
    without_autovacuum(|store, mut conn, writer| async move {
        sqlx::raw_sql("ALTER TABLE runs RESET (autovacuum_enabled)")
            .execute(&mut conn)
            .await
            .unwrap();
        let server_autovacuum: String = sqlx::query_scalar("SHOW autovacuum")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        writer.insert_runs(500).await;
        // step_attempts has autovacuum off: once it is analyzed, the counters have reached runs.
        writer
            .run(
                "INSERT INTO step_attempts (run_id, step_id, attempt, status, ended_at) \
                 SELECT id, 'a', 1, 'succeeded', now() FROM runs",
            )
            .await;
        let report = maintain_until_analyzed(&store, "step_attempts").await;
        let runs_maintained = report.tables.iter().any(|t| t.table == "runs");
        if server_autovacuum == "on" {
            assert!(!runs_maintained, "autovacuum looks after runs: {report:?}");
        } else {
            assert!(
                runs_maintained,
                "the server's autovacuum is off: {report:?}"
            );
        }
    })
    .await;
}
