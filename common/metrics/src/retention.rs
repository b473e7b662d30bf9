//! What retention removes so Baton does not grow without bound: finished runs past the retention
//! period and the consumers replicas that are gone left in the queue's groups.

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

use crate::MetricsError;

/// Finished runs deleted, with their steps and events, because they ended longer ago than
/// `BATON_RETENTION`.
pub const BATON_RUNS_DELETED_TOTAL: &str = "baton_runs_deleted_total";
/// Consumers removed from the queue's groups because they were idle past
/// `BATON_CONSUMER_IDLE_REMOVE` and held no pending entry.
pub const BATON_CONSUMERS_REMOVED_TOTAL: &str = "baton_consumers_removed_total";
/// Upkeep the runner did on a table because the database server does none (autovacuum off), by
/// `table` and `action` (`analyze`, `vacuum`).
pub const BATON_DB_MAINTENANCE_TOTAL: &str = "baton_db_maintenance_total";

#[derive(Clone)]
pub(crate) struct RetentionMetrics {
    runs_deleted: IntCounter,
    consumers_removed: IntCounter,
    db_maintenance: IntCounterVec,
}

impl RetentionMetrics {
    pub(crate) fn register(registry: &Registry) -> Result<Self, MetricsError> {
        let runs_deleted = IntCounter::new(
            BATON_RUNS_DELETED_TOTAL,
            "Finished runs deleted because they ended longer ago than the retention period",
        )?;
        let consumers_removed = IntCounter::new(
            BATON_CONSUMERS_REMOVED_TOTAL,
            "Idle consumers without pending entries removed from the queue's groups",
        )?;
        let db_maintenance = IntCounterVec::new(
            Opts::new(
                BATON_DB_MAINTENANCE_TOTAL,
                "Tables analyzed or vacuumed by Baton because the database server does not",
            ),
            &["table", "action"],
        )?;
        registry.register(Box::new(runs_deleted.clone()))?;
        registry.register(Box::new(consumers_removed.clone()))?;
        registry.register(Box::new(db_maintenance.clone()))?;
        Ok(Self {
            runs_deleted,
            consumers_removed,
            db_maintenance,
        })
    }

    pub(crate) fn runs_deleted(&self, n: u64) {
        self.runs_deleted.inc_by(n);
    }

    pub(crate) fn consumers_removed(&self, n: u64) {
        self.consumers_removed.inc_by(n);
    }

    pub(crate) fn db_maintenance(&self, table: &str, action: &str) {
        self.db_maintenance
            .with_label_values(&[table, action])
            .inc();
    }
}
