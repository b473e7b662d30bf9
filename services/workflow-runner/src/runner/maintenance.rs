//! Table upkeep the database server is not doing: every `BATON_DB_MAINTENANCE_INTERVAL` the
//! store refreshes statistics and clears dead rows of tables autovacuum does not look after, so
//! the hot path's plans follow the tables as history grows (see [`baton_store::Store::maintain`]).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::Runner;

impl Runner {
    /// One maintenance pass every `db_maintenance_interval` until `shutdown`. A failure is
    /// logged and tried again next round.
    pub async fn run_maintenance(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(interval) = self.config.db_maintenance_interval else {
            return;
        };
        let mut every = tokio::time::interval(interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.maintain_tables() => {}
            }
        }
    }

    /// Asks the store for one pass and records what it did.
    pub async fn maintain_tables(&self) {
        let began = tokio::time::Instant::now();
        let report = match self.store.maintain().await {
            Ok(report) => report,
            Err(e) => {
                tracing::warn!(error = %e, "cannot maintain the tables; trying again next round");
                return;
            }
        };
        if report.tables.is_empty() {
            return;
        }
        self.metrics
            .observe_postgres("maintain", began.elapsed().as_secs_f64());
        for table in &report.tables {
            if table.analyzed {
                self.metrics.db_maintenance(&table.table, "analyze");
            }
            if table.vacuumed {
                self.metrics.db_maintenance(&table.table, "vacuum");
            }
            tracing::info!(
                table = %table.table,
                analyzed = table.analyzed,
                vacuumed = table.vacuumed,
                took_ms = table.took.as_millis() as u64,
                "table upkeep the database server is not doing (autovacuum is off)"
            );
        }
    }
}
