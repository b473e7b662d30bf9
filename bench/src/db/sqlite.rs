//! The bench's queries on the embedded backend's SQLite file (times are integer microseconds,
//! ids 16-byte blobs, id sets bound as one JSON array of hex ids). The bench opens the file as
//! one more reader beside `baton dev`: in WAL mode its reads take no lock a writer waits for.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use uuid::Uuid;

use super::{Dispatch, TERMINAL};

/// The rows of a set of runs, for `IN`: the ids arrive as a JSON array of hex text.
const IDS: &str = "(SELECT unhex(value) FROM json_each(?1))";

pub async fn connect(path: &Path) -> anyhow::Result<SqlitePool> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(30));
    SqlitePoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .with_context(|| format!("cannot open the embedded database {}", path.display()))
}

/// The ids as `["<32 hex digits>", ...]`.
fn ids_json(ids: &[Uuid]) -> String {
    let hex: Vec<String> = ids.iter().map(|id| id.simple().to_string()).collect();
    serde_json::Value::from(hex).to_string()
}

pub async fn server_version(pool: &SqlitePool) -> anyhow::Result<String> {
    Ok(sqlx::query_scalar("SELECT sqlite_version()")
        .fetch_one(pool)
        .await?)
}

pub async fn run_counts(
    pool: &SqlitePool,
    tenant: &str,
    workflow_ref: &str,
    since_micros: i64,
) -> anyhow::Result<(i64, i64)> {
    let sql = format!(
        "SELECT count(*), count(*) FILTER (WHERE status IN {TERMINAL}) \
         FROM runs WHERE tenant = ?1 AND created_at >= ?3 AND workflow_ref = ?2"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(workflow_ref)
        .bind(since_micros)
        .fetch_one(pool)
        .await
        .context("cannot count runs")
}

pub async fn statuses(pool: &SqlitePool, ids: &[Uuid]) -> anyhow::Result<Vec<(String, i64)>> {
    let sql = format!(
        "SELECT status, count(*) FROM runs WHERE id IN {IDS} GROUP BY status ORDER BY status"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(ids_json(ids))
        .fetch_all(pool)
        .await?)
}

pub async fn not_completed(
    pool: &SqlitePool,
    ids: &[Uuid],
) -> anyhow::Result<Vec<(Uuid, String, Option<String>)>> {
    let sql = format!(
        "SELECT id, status, error FROM runs WHERE id IN {IDS} AND status <> 'completed' \
         ORDER BY created_at LIMIT 5"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(ids_json(ids))
        .fetch_all(pool)
        .await?)
}

pub async fn completed_steps(pool: &SqlitePool, ids: &[Uuid]) -> anyhow::Result<i64> {
    let sql =
        format!("SELECT count(*) FROM step_runs WHERE run_id IN {IDS} AND status = 'completed'");
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(ids_json(ids))
        .fetch_one(pool)
        .await?)
}

pub async fn server_span(pool: &SqlitePool, ids: &[Uuid]) -> anyhow::Result<f64> {
    let sql = format!("SELECT (max(ended_at) - min(created_at)) / 1e6 FROM runs WHERE id IN {IDS}");
    let span: Option<f64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(ids_json(ids))
        .fetch_one(pool)
        .await?;
    span.context("the runs have no timestamps")
}

pub async fn run_spans(pool: &SqlitePool, ids: &[Uuid]) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let sql = format!(
        "SELECT (started_at - created_at) / 1e3, (ended_at - created_at) / 1e3 \
         FROM runs WHERE id IN {IDS} AND started_at IS NOT NULL AND ended_at IS NOT NULL"
    );
    let rows: Vec<(f64, f64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(ids_json(ids))
        .fetch_all(pool)
        .await
        .context("cannot read run timestamps")?;
    Ok(rows.into_iter().unzip())
}

pub async fn dispatch(pool: &SqlitePool, ids: &[Uuid]) -> anyhow::Result<Dispatch> {
    let enqueue = format!(
        "SELECT (started_at - queued_at) / 1e3 FROM step_runs \
         WHERE run_id IN {IDS} AND queued_at IS NOT NULL AND started_at IS NOT NULL"
    );
    let enqueue_to_start = sqlx::query_scalar(sqlx::AssertSqlSafe(enqueue))
        .bind(ids_json(ids))
        .fetch_all(pool)
        .await
        .context("cannot read step timestamps")?;
    let next = format!(
        "SELECT (b.started_at - a.ended_at) / 1e3 \
         FROM step_runs a JOIN step_runs b ON b.run_id = a.run_id AND b.position = a.position + 1 \
         WHERE a.run_id IN {IDS} AND a.ended_at IS NOT NULL AND b.started_at IS NOT NULL"
    );
    let end_to_next_start = sqlx::query_scalar(sqlx::AssertSqlSafe(next))
        .bind(ids_json(ids))
        .fetch_all(pool)
        .await
        .context("cannot read step timestamps")?;
    Ok(Dispatch {
        enqueue_to_start,
        end_to_next_start,
    })
}

pub async fn step_durations(
    pool: &SqlitePool,
    ids: &[Uuid],
    kind: &str,
) -> anyhow::Result<Vec<f64>> {
    let sql = format!(
        "SELECT (ended_at - started_at) / 1e3 FROM step_runs \
         WHERE run_id IN {IDS} AND kind = ?2 AND started_at IS NOT NULL AND ended_at IS NOT NULL"
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(ids_json(ids))
        .bind(kind)
        .fetch_all(pool)
        .await
        .context("cannot read step timestamps")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded store's own schema, so the queries are tested against the real tables.
    const STORE_SCHEMA: &str =
        include_str!("../../../common/store/migrations/sqlite/0001_init.sql");

    /// A fresh file with the store's tables and two runs of `bench/chain@1`: `done` completed
    /// (two steps, times in µs: queued 1000, started 1500, ended 2000; queued 2000, started 4000,
    /// ended 5000) and `broken` failed with no steps.
    async fn fixture(dir: &Path) -> (SqlitePool, Uuid, Uuid) {
        let path = dir.join("bench.db");
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let setup = SqlitePool::connect_with(options).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(STORE_SCHEMA))
            .execute(&setup)
            .await
            .unwrap();
        let (done, broken) = (Uuid::new_v4(), Uuid::new_v4());
        for (id, status, error, ended) in [
            (done, "completed", None, 5_000_i64),
            (broken, "failed", Some("step s0 failed"), 9_000),
        ] {
            sqlx::query(
                "INSERT INTO runs (id, tenant, workflow_ref, status, inputs, error, created_at, \
                 started_at, ended_at) VALUES (?1, 't', 'bench/chain@1', ?2, '{}', ?3, 0, 1000, ?4)",
            )
            .bind(id)
            .bind(status)
            .bind(error)
            .bind(ended)
            .execute(&setup)
            .await
            .unwrap();
        }
        for (position, queued, started, ended) in [
            (0, 1_000_i64, 1_500_i64, 2_000_i64),
            (1, 2_000, 4_000, 5_000),
        ] {
            sqlx::query(
                "INSERT INTO step_runs (run_id, position, step_id, kind, status, queued_at, \
                 started_at, ended_at) VALUES (?1, ?2, ?3, 'noop', 'completed', ?4, ?5, ?6)",
            )
            .bind(done)
            .bind(position)
            .bind(format!("s{position}"))
            .bind(queued)
            .bind(started)
            .bind(ended)
            .execute(&setup)
            .await
            .unwrap();
        }
        setup.close().await;
        (connect(&path).await.unwrap(), done, broken)
    }

    #[tokio::test]
    async fn figures_from_the_embedded_schema() {
        let dir = std::env::temp_dir().join(format!("baton-bench-sqlite-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let (pool, done, broken) = fixture(&dir).await;
        let both = [done, broken];

        assert!(server_version(&pool).await.unwrap().starts_with("3."));
        assert_eq!(
            run_counts(&pool, "t", "bench/chain@1", 0).await.unwrap(),
            (2, 2)
        );
        assert_eq!(
            run_counts(&pool, "t", "bench/chain@1", 1).await.unwrap(),
            (0, 0)
        );
        assert_eq!(
            run_counts(&pool, "u", "bench/chain@1", 0).await.unwrap(),
            (0, 0)
        );
        assert_eq!(
            run_counts(&pool, "t", "bench/other@1", 0).await.unwrap(),
            (0, 0)
        );
        assert_eq!(
            statuses(&pool, &both).await.unwrap(),
            [("completed".to_owned(), 1), ("failed".to_owned(), 1)]
        );
        assert_eq!(statuses(&pool, &[done]).await.unwrap().len(), 1);
        assert_eq!(
            not_completed(&pool, &both).await.unwrap(),
            [(
                broken,
                "failed".to_owned(),
                Some("step s0 failed".to_owned())
            )]
        );
        assert_eq!(completed_steps(&pool, &both).await.unwrap(), 2);
        assert_eq!(completed_steps(&pool, &[broken]).await.unwrap(), 0);
        // Microseconds become seconds and milliseconds.
        assert_eq!(server_span(&pool, &both).await.unwrap(), 0.009);
        let (mut to_start, mut to_end) = run_spans(&pool, &both).await.unwrap();
        to_start.sort_by(f64::total_cmp);
        to_end.sort_by(f64::total_cmp);
        assert_eq!((to_start, to_end), (vec![1.0, 1.0], vec![5.0, 9.0]));
        let mut d = dispatch(&pool, &[done]).await.unwrap();
        d.enqueue_to_start.sort_by(f64::total_cmp);
        assert_eq!(d.enqueue_to_start, [0.5, 2.0]);
        assert_eq!(d.end_to_next_start, [2.0]);
        let mut took = step_durations(&pool, &both, "noop").await.unwrap();
        took.sort_by(f64::total_cmp);
        assert_eq!(took, [0.5, 1.0]);
        assert!(
            step_durations(&pool, &both, "http")
                .await
                .unwrap()
                .is_empty()
        );

        pool.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
