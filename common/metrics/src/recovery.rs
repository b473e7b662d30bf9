//! How often Baton repaired lost work and turned away stale reports: the figures that show the
//! reconciler and the fencing tokens at work, and what a fault-injection run prints.

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

use crate::MetricsError;

/// Steps dispatched again because their job was lost.
pub const BATON_STEPS_REDISPATCHED_TOTAL: &str = "baton_steps_redispatched_total";
/// Reports about a job that changed nothing because their lease was stale, by `report`
/// (`started`, `result`, `heartbeat`).
pub const BATON_FENCED_REPORTS_TOTAL: &str = "baton_fenced_reports_total";
/// Expired leases extended because their job was found still queued or running.
pub const BATON_LEASES_RENEWED_TOTAL: &str = "baton_leases_renewed_total";

#[derive(Clone)]
pub(crate) struct RecoveryMetrics {
    redispatched: IntCounter,
    fenced: IntCounterVec,
    renewed: IntCounter,
}

impl RecoveryMetrics {
    pub(crate) fn register(registry: &Registry) -> Result<Self, MetricsError> {
        let redispatched = IntCounter::new(
            BATON_STEPS_REDISPATCHED_TOTAL,
            "Steps dispatched again because their job was lost",
        )?;
        let fenced = IntCounterVec::new(
            Opts::new(
                BATON_FENCED_REPORTS_TOTAL,
                "Reports about a job ignored because their lease was stale",
            ),
            &["report"],
        )?;
        let renewed = IntCounter::new(
            BATON_LEASES_RENEWED_TOTAL,
            "Expired step leases extended because their job was still in the queue",
        )?;
        registry.register(Box::new(redispatched.clone()))?;
        registry.register(Box::new(fenced.clone()))?;
        registry.register(Box::new(renewed.clone()))?;
        // Present from the first scrape, so a rate over them is defined before the first fault.
        for report in ["started", "result", "heartbeat"] {
            fenced.with_label_values(&[report]);
        }
        Ok(Self {
            redispatched,
            fenced,
            renewed,
        })
    }

    pub(crate) fn steps_redispatched(&self, n: u64) {
        self.redispatched.inc_by(n);
    }

    pub(crate) fn reports_fenced(&self, report: &str, n: u64) {
        self.fenced.with_label_values(&[report]).inc_by(n);
    }

    pub(crate) fn leases_renewed(&self, n: u64) {
        self.renewed.inc_by(n);
    }
}
