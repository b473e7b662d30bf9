//! Table upkeep where the server does none. With `autovacuum` off nothing refreshes the
//! planner's statistics, so plans cached while the tables were empty (sequential scans) are kept
//! as they grow and every batch slows with history; this does for Baton's own tables what
//! autovacuum would, by the server's own autovacuum thresholds and cost-based delay.

use std::time::Instant;

use sqlx::{Connection, PgConnection, PgPool};

use super::error::pg_error;
use crate::{MaintenanceReport, StoreError, TableUpkeep};

/// Baton's tables, hottest first.
const TABLES: &[&str] = &[
    "step_runs",
    "runs",
    "run_events",
    "step_attempts",
    "workflows",
    "workers",
    "api_keys",
];

/// The session advisory lock one replica holds while it maintains the tables ("batonmnt");
/// `pg_locks` shows who holds it.
pub const LOCK_KEY: i64 = 0x6261_746f_6e6d_6e74;

/// The server's autovacuum thresholds: a table is due for `ANALYZE` after
/// `analyze_threshold + analyze_scale × rows` changed rows, and for `VACUUM` after
/// `vacuum_threshold + vacuum_scale × rows` dead rows. Autovacuum also vacuums after many
/// inserts, to set visibility bits and freeze; nothing on Baton's hot path needs the one, and the
/// server's anti-wraparound vacuum does the other even with autovacuum off, so upkeep spares the
/// append-only event table that work while runs are being applied.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Thresholds {
    pub analyze_threshold: f64,
    pub analyze_scale: f64,
    pub vacuum_threshold: f64,
    pub vacuum_scale: f64,
}

/// What the server's statistics say of one table.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TableStats {
    pub table: String,
    /// The planner's row count; negative when the table was never analyzed.
    pub reltuples: f64,
    pub dead: i64,
    pub modified_since_analyze: i64,
    /// Whether the server's autovacuum looks after this table.
    pub autovacuum: bool,
}

/// What a table is due for: (`ANALYZE`, `VACUUM`). Nothing for a table autovacuum looks after.
pub(crate) fn due(stats: &TableStats, t: &Thresholds) -> (bool, bool) {
    if stats.autovacuum {
        return (false, false);
    }
    let rows = stats.reltuples.max(0.0);
    let analyze =
        stats.modified_since_analyze as f64 > t.analyze_threshold + t.analyze_scale * rows;
    let vacuum = stats.dead as f64 > t.vacuum_threshold + t.vacuum_scale * rows;
    (analyze, vacuum)
}

const THRESHOLDS_SQL: &str = "SELECT \
    current_setting('autovacuum_analyze_threshold')::float8, \
    current_setting('autovacuum_analyze_scale_factor')::float8, \
    current_setting('autovacuum_vacuum_threshold')::float8, \
    current_setting('autovacuum_vacuum_scale_factor')::float8";

/// Per-table statistics; `autovacuum` is the server switch (with `track_counts`, which it
/// needs) and the table's own `autovacuum_enabled`.
const STATS_SQL: &str = "SELECT s.relname::text, c.reltuples::float8, s.n_dead_tup, \
      s.n_mod_since_analyze, \
      current_setting('autovacuum')::bool AND current_setting('track_counts')::bool \
        AND NOT EXISTS (SELECT 1 FROM unnest(c.reloptions) o \
          WHERE lower(o) IN ('autovacuum_enabled=false', 'autovacuum_enabled=off', \
            'autovacuum_enabled=0', 'autovacuum_enabled=no', 'autovacuum_enabled=f', \
            'autovacuum_enabled=n')) \
    FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid \
    WHERE s.schemaname = current_schema() AND s.relname = ANY($1)";

/// One pass. The statistics are read on a pooled connection, which is all a pass costs while
/// nothing is due; work that is due is done on a connection of its own, so the advisory lock
/// and the cost-delay setting die with it and never reach the pool.
#[tracing::instrument(name = "db_maintenance", skip_all, fields(tables = tracing::field::Empty))]
pub(super) async fn maintain(pool: &PgPool) -> Result<MaintenanceReport, StoreError> {
    {
        let mut pooled = pool.acquire().await.map_err(pg_error)?;
        if due_tables(&mut pooled).await?.is_empty() {
            return Ok(MaintenanceReport::default());
        }
    }
    let mut conn = PgConnection::connect_with(&pool.connect_options())
        .await
        .map_err(pg_error)?;
    let report = maintain_on(&mut conn).await;
    // Closing ends the session, and with it the advisory lock.
    let _ = conn.close().await;
    let report = report?;
    tracing::Span::current().record("tables", report.tables.len());
    Ok(report)
}

/// The tables due for upkeep, hottest first, with what each is due for: (`ANALYZE`, `VACUUM`).
async fn due_tables(conn: &mut PgConnection) -> Result<Vec<(String, bool, bool)>, StoreError> {
    let (analyze_threshold, analyze_scale, vacuum_threshold, vacuum_scale): (f64, f64, f64, f64) =
        sqlx::query_as(THRESHOLDS_SQL)
            .fetch_one(&mut *conn)
            .await
            .map_err(pg_error)?;
    let thresholds = Thresholds {
        analyze_threshold,
        analyze_scale,
        vacuum_threshold,
        vacuum_scale,
    };
    let rows: Vec<(String, f64, i64, i64, bool)> = sqlx::query_as(STATS_SQL)
        .bind(TABLES)
        .fetch_all(&mut *conn)
        .await
        .map_err(pg_error)?;
    let mut due_tables: Vec<(String, bool, bool)> = rows
        .into_iter()
        .filter_map(|(table, reltuples, dead, modified, autovacuum)| {
            let stats = TableStats {
                table,
                reltuples,
                dead,
                modified_since_analyze: modified,
                autovacuum,
            };
            let (analyze, vacuum) = due(&stats, &thresholds);
            (analyze || vacuum).then_some((stats.table, analyze, vacuum))
        })
        .collect();
    due_tables.sort_by_key(|(table, _, _)| TABLES.iter().position(|t| t == table));
    Ok(due_tables)
}

async fn maintain_on(conn: &mut PgConnection) -> Result<MaintenanceReport, StoreError> {
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(LOCK_KEY)
        .fetch_one(&mut *conn)
        .await
        .map_err(pg_error)?;
    if !locked {
        return Ok(MaintenanceReport {
            held_elsewhere: true,
            tables: Vec::new(),
        });
    }
    // Read again under the lock: the replica that held it may have done the work.
    let due = due_tables(conn).await?;
    let mut report = MaintenanceReport::default();
    if due.is_empty() {
        return Ok(report);
    }
    // Paced as autovacuum is, so upkeep never takes the disk from the hot path.
    sqlx::query(
        "SELECT set_config('vacuum_cost_delay', CASE \
           WHEN current_setting('autovacuum_vacuum_cost_delay') = '-1' \
           THEN current_setting('vacuum_cost_delay') \
           ELSE current_setting('autovacuum_vacuum_cost_delay') END, false)",
    )
    .execute(&mut *conn)
    .await
    .map_err(pg_error)?;
    for (table, analyze, vacuum) in due {
        // The name is one of `TABLES`, never input.
        let statement = match (analyze, vacuum) {
            (true, true) => format!("VACUUM (ANALYZE) \"{table}\""),
            (false, true) => format!("VACUUM \"{table}\""),
            _ => format!("ANALYZE \"{table}\""),
        };
        let began = Instant::now();
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut *conn)
            .await
            .map_err(pg_error)?;
        report.tables.push(TableUpkeep {
            table,
            analyzed: analyze,
            vacuumed: vacuum,
            took: began.elapsed(),
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: Thresholds = Thresholds {
        analyze_threshold: 50.0,
        analyze_scale: 0.1,
        vacuum_threshold: 50.0,
        vacuum_scale: 0.2,
    };

    fn table(reltuples: f64, dead: i64, modified: i64) -> TableStats {
        TableStats {
            table: "step_runs".into(),
            reltuples,
            dead,
            modified_since_analyze: modified,
            autovacuum: false,
        }
    }

    #[test]
    fn a_table_never_analyzed_is_analyzed_once_it_has_rows() {
        assert_eq!(due(&table(-1.0, 0, 50), &DEFAULTS), (false, false));
        assert_eq!(due(&table(-1.0, 0, 51), &DEFAULTS), (true, false));
    }

    #[test]
    fn thresholds_grow_with_the_table() {
        // 100 000 rows: analyze after 10 050 changes, vacuum after 20 050 dead rows.
        assert_eq!(
            due(&table(100_000.0, 20_000, 10_000), &DEFAULTS),
            (false, false)
        );
        assert_eq!(
            due(&table(100_000.0, 20_051, 10_051), &DEFAULTS),
            (true, true)
        );
        assert_eq!(due(&table(100_000.0, 20_051, 0), &DEFAULTS), (false, true));
    }

    #[test]
    fn tables_autovacuum_looks_after_are_left_to_it() {
        let mut stats = table(-1.0, 1_000_000, 1_000_000);
        stats.autovacuum = true;
        assert_eq!(due(&stats, &DEFAULTS), (false, false));
    }
}
