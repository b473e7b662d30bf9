//! The run state machine: how a run's steps move from pending to done as jobs start and finish,
//! retries come due and deadlines pass. Pure and synchronous, so the runner applies a whole batch
//! of messages under one transaction and the planner is property-tested without I/O.

mod limits;
mod planner;
mod state;
mod storable;

pub use limits::{Limits, MAX_STEP_INPUT_BYTES_VAR, MAX_STEP_OUTPUT_BYTES_VAR};
pub use planner::{
    DEFAULT_LEASE_TTL, Effects, EngineConfig, Fenced, Timer, abort_run, apply_job_result,
    apply_job_started, redispatch_step, start_run, wake_run,
};
pub use state::{
    AttemptRecord, EventRecord, RunState, RunStatus, StepState, StepStatus, now_micros,
};
