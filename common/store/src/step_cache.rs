//! The steps of runs this process changed last, so a batch over a run this handle committed
//! needs no read of its steps. Valid only under the invariant documented on
//! [`RunBatch`](crate::RunBatch): every step change adds an event and so moves the run's
//! `last_sequence`, which a batch reads under the run's lock.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use baton_engine::{RunState, RunStatus, StepState};
use uuid::Uuid;

/// Most runs whose steps are kept in memory.
const STEP_CACHE_LIMIT: usize = 100_000;

/// Keyed by run, each entry valid only for the run's `last_sequence` it was stored at. A batch
/// that finds the locked run at the cached sequence therefore has its steps without reading
/// them; another handle's commit moved the sequence, so its entry no longer matches.
#[derive(Clone, Debug, Default)]
pub(crate) struct StepCache(Arc<Mutex<HashMap<Uuid, CachedSteps>>>);

/// A run's steps as of its `last_sequence`.
type CachedSteps = (i64, Vec<StepState>);

impl StepCache {
    fn take(&self, id: Uuid, last_sequence: i64) -> Option<Vec<StepState>> {
        // Taken out, not copied: the batch owns them until its commit puts them back, and a
        // batch that is dropped leaves nothing behind to go stale.
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match cache.remove(&id) {
            Some((seq, steps)) if seq == last_sequence => Some(steps),
            _ => None,
        }
    }

    /// Gives each freshly locked run that has steps (any not queued) its cached steps; returns
    /// the ids of those whose steps must be read.
    pub(crate) fn fill(&self, runs: &mut [RunState]) -> Vec<Uuid> {
        let mut missing = Vec::new();
        for run in runs.iter_mut().filter(|r| r.status != RunStatus::Queued) {
            match self.take(run.id, run.last_sequence) {
                Some(steps) => run.steps = steps,
                None => missing.push(run.id),
            }
        }
        missing
    }

    /// Keeps the steps of `runs` as committed; ended runs and runs without steps are dropped.
    pub(crate) fn remember(&self, runs: &[RunState]) {
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() > STEP_CACHE_LIMIT {
            cache.clear();
        }
        for run in runs {
            if run.status.is_terminal() || run.steps.is_empty() {
                cache.remove(&run.id);
                continue;
            }
            let mut steps = run.steps.clone();
            for step in &mut steps {
                step.dirty = false;
            }
            cache.insert(run.id, (run.last_sequence, steps));
        }
    }
}
