//! The run state machine: how a run's steps move from pending to done as jobs start and finish,
//! retries come due and deadlines pass. Pure and synchronous, so the runner applies a whole batch
//! of messages under one transaction and the planner is property-tested without I/O.

mod planner;
mod state;
mod storable;

pub use planner::{
    Effects, EngineConfig, Timer, abort_run, apply_job_result, apply_job_started, start_run,
    wake_run,
};
pub use state::{
    AttemptRecord, EventRecord, RunState, RunStatus, StepState, StepStatus, now_micros,
};
