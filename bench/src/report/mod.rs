//! The results of a bench run and their presentation: an aligned text report with one section
//! per backend (the production figures with Baton's targets and a ✓/✗ mark, the embedded ones for
//! reference) and a side-by-side table when both ran; and the same figures as JSON for tracking
//! over time.

mod compare;
mod format;
mod history;
mod json;
mod targets;
mod text;

use std::path::PathBuf;

use crate::backend::Backend;
use crate::db::Dispatch;
use crate::machine::Machine;
use crate::stats::Summary;
use crate::{http_steps, latency, throughput};

pub struct Results {
    pub machine: Machine,
    pub bin_dir: PathBuf,
    pub log_dir: PathBuf,
    pub memory_sample_ms: u64,
    /// One per backend measured, in the order they ran.
    pub backends: Vec<BackendResults>,
}

/// Everything measured on one backend.
pub struct BackendResults {
    pub backend: Backend,
    pub versions: Vec<Version>,
    /// The scratch data the figures were measured on (database, prefix, file).
    pub scratch: String,
    /// The measured processes, in the order of every [`MemoryRow::kb`].
    pub services: Vec<ServiceInfo>,
    pub chain: Option<throughput::Outcome>,
    pub chain_dispatch: Option<DispatchSummary>,
    pub fanout: Option<throughput::Outcome>,
    pub lone: Option<latency::Outcome>,
    pub lone_dispatch: Option<DispatchSummary>,
    /// The http scenario, for reference on every backend (no target); measured on the fresh
    /// database only.
    pub http: Option<http_steps::Outcome>,
    pub memory: Vec<MemoryRow>,
    /// The scenarios again after `--history-runs`; `None` when it was off.
    pub history: Option<History>,
}

/// The scenarios measured again once the database holds `runs` more finished runs.
pub struct History {
    pub runs: u64,
    /// `None` on a backend the bench does not fill (embedded).
    pub after: Option<AfterHistory>,
}

/// The figures after the history was inserted, and what each inserted run holds.
pub struct AfterHistory {
    pub fill_s: f64,
    /// Seconds from the fill's end until the hot tables were analyzed by the services' upkeep
    /// (or autovacuum); `None` when that was not seen within the timeout.
    pub upkeep_s: Option<f64>,
    pub steps_per_run: i64,
    pub attempts_per_run: i64,
    pub events_per_run: i64,
    pub chain: Option<throughput::Outcome>,
    pub chain_dispatch: Option<DispatchSummary>,
    pub fanout: Option<throughput::Outcome>,
    pub lone: Option<latency::Outcome>,
    pub lone_dispatch: Option<DispatchSummary>,
}

/// The version of something holding the data, e.g. PostgreSQL 16.4.
#[derive(Clone, Debug)]
pub struct Version {
    /// Its key in the JSON, e.g. `postgres_version`.
    pub key: &'static str,
    pub product: &'static str,
    pub version: String,
}

impl Version {
    /// The version, or `(unknown: <why>)` when it could not be read.
    pub fn new(key: &'static str, product: &'static str, read: anyhow::Result<String>) -> Self {
        Self {
            key,
            product,
            version: read.unwrap_or_else(|e| format!("(unknown: {e})")),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ServiceInfo {
    pub name: String,
    pub pid: u32,
    /// `version (git revision)` from GetInfo, when the service has InfoService.
    pub build: Option<String>,
}

/// Dispatch delays summarised.
pub struct DispatchSummary {
    pub enqueue_to_start: Option<Summary>,
    pub end_to_next_start: Option<Summary>,
}

impl DispatchSummary {
    pub fn of(d: &Dispatch) -> Self {
        Self {
            enqueue_to_start: Summary::of(&d.enqueue_to_start),
            end_to_next_start: Summary::of(&d.end_to_next_start),
        }
    }
}

/// One memory figure per measured process (orchestrator, workflow-runner and, for the http
/// scenario, http-worker; or `baton dev`), in kB.
pub struct MemoryRow {
    pub phase: String,
    /// Whether the target applies (peaks; not idle figures), on a backend with targets.
    pub peak: bool,
    pub kb: Vec<Option<u64>>,
}

impl BackendResults {
    /// `PostgreSQL 16.4, Redis 7.2.4` or `SQLite 3.51.3`.
    pub fn versions_text(&self) -> String {
        self.versions
            .iter()
            .map(|v| format!("{} {}", v.product, v.version))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The dispatch summaries by load: (JSON key, text label, summary).
    fn dispatches(&self) -> [(&'static str, &'static str, Option<&DispatchSummary>); 2] {
        [
            ("loaded", "loaded", self.chain_dispatch.as_ref()),
            ("lone", "lone", self.lone_dispatch.as_ref()),
        ]
    }
}

impl DispatchSummary {
    /// The two delays: (JSON key, text label, summary).
    fn delays(&self) -> [(&'static str, &'static str, Option<&Summary>); 2] {
        [
            (
                "enqueue_to_start_ms",
                "enqueued → started",
                self.enqueue_to_start.as_ref(),
            ),
            (
                "step_end_to_dependent_start_ms",
                "step end → dependent start",
                self.end_to_next_start.as_ref(),
            ),
        ]
    }
}

#[cfg(test)]
mod tests;
