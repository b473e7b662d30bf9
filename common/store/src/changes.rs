//! What a run batch writes back, decided once for every backend: the runs that changed, and of
//! each the steps to insert (all of them, when they were created in this batch) or to update.

use baton_engine::{RunState, StepState};

/// How a step's row is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StepWrite {
    /// Created in this batch: its row does not exist yet.
    Insert,
    /// Changed since it was loaded.
    Update,
}

/// Marks the runs as written: a step's `lease_ttl` counts from the write that used it, so it is
/// spent once committed, and runs come back as the next batch would load them.
pub(crate) fn committed(runs: &mut [RunState]) {
    for step in runs.iter_mut().flat_map(|r| r.steps.iter_mut()) {
        step.lease_ttl = 0;
    }
}

/// The runs of a batch with anything to write.
pub(crate) fn changed(runs: &[RunState]) -> Vec<&RunState> {
    runs.iter().filter(|r| r.is_changed()).collect()
}

/// The steps of `run` to write, with their positions.
pub(crate) fn step_writes(
    run: &RunState,
) -> impl Iterator<Item = (usize, &StepState, StepWrite)> + '_ {
    run.steps
        .iter()
        .enumerate()
        .filter_map(move |(position, step)| {
            if run.steps_created {
                Some((position, step, StepWrite::Insert))
            } else if step.dirty {
                Some((position, step, StepWrite::Update))
            } else {
                None
            }
        })
}
