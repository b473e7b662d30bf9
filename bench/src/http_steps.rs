//! The http scenario's measurement: runs of parallel `http` steps against the loopback server,
//! timed as the throughput scenarios are, plus what only an http step has: the requests its
//! callee saw, and each step's own duration from the database.

use anyhow::bail;

use crate::api::Api;
use crate::db::Db;
use crate::loopback::Loopback;
use crate::stats::Summary;
use crate::throughput;

/// The step kind the scenario measures.
const KIND: &str = "http";

#[derive(Clone, Debug)]
pub struct Outcome {
    pub throughput: throughput::Outcome,
    /// Parallel http steps in each run.
    pub branches: usize,
    /// Requests the loopback server answered while the runs went through.
    pub requests: u64,
    /// `ended_at - started_at` of each http step, ms.
    pub step_ms: Option<Summary>,
}

impl Outcome {
    /// http steps in the runs: runs × branches.
    pub fn http_steps(&self) -> usize {
        self.throughput.runs * self.branches
    }

    /// http steps per second, first StartRun sent → all runs ended.
    pub fn http_steps_per_s(&self) -> f64 {
        self.http_steps() as f64 / self.throughput.elapsed_s
    }

    /// http steps per second of the server-side span (`max(ended_at) - min(created_at)`).
    pub fn server_http_steps_per_s(&self) -> f64 {
        self.http_steps() as f64 / self.throughput.server_span_s
    }

    /// Requests beyond one per http step: retries or duplicate deliveries.
    pub fn extra_requests(&self) -> u64 {
        self.requests.saturating_sub(self.http_steps() as u64)
    }
}

/// [`throughput::run`] of a workflow with `branches` http steps per run, each calling `server`
/// once. Fails as it does, and also when the server saw fewer requests than the runs have http
/// steps: then a step completed without its request having been answered.
pub async fn run(
    api: &Api,
    db: &Db,
    server: &Loopback,
    config: &throughput::Config<'_>,
    branches: usize,
    alive: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Outcome> {
    let before = server.requests();
    let throughput = throughput::run(api, db, config, alive).await?;
    let requests = server.requests() - before;
    let http_steps = config.runs * branches;
    if requests < http_steps as u64 {
        bail!(
            "{}: the loopback server answered {requests} requests, but the {} completed runs have \
             {http_steps} http steps ({branches} each): some completed without their request",
            config.label,
            config.runs
        );
    }
    let step_ms = Summary::of(&db.step_durations(&throughput.run_ids, KIND).await?);
    Ok(Outcome {
        throughput,
        branches,
        requests,
        step_ms,
    })
}
