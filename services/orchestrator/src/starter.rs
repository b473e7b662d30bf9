//! StartRun calls that arrive together are recorded together: one statement and one commit for
//! the batch, and one Redis round trip to hand the runs to the runner. Under load this is group
//! commit; a lone call waits for nothing extra.

use std::sync::Arc;

use baton_engine::RunState;
use baton_proto::v1;
use baton_queue::RunnerInbox;
use baton_store::{CreatedRun, NewRun, Store, StoreError};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::error::{ApiError, shared_store_failure};

/// Most runs recorded in one statement.
const MAX_BATCH: usize = 256;
/// Batches being recorded at once.
const IN_FLIGHT: usize = 4;

type Reply = oneshot::Sender<Result<(RunState, bool), ApiError>>;

/// Hands StartRun requests to the batching task.
#[derive(Clone)]
pub struct RunStarter {
    tx: mpsc::Sender<(NewRun, Reply)>,
}

impl RunStarter {
    pub fn spawn(store: Arc<dyn Store>, queue: Arc<dyn RunnerInbox>) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(batch_loop(store, queue, rx));
        Self { tx }
    }

    /// Records the run and hands it to the runner; returns it and whether it was created now
    /// (false when its idempotency key returned an earlier run).
    pub async fn start(&self, run: NewRun) -> Result<(RunState, bool), ApiError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || ApiError::Unavailable("the orchestrator is shutting down".into());
        self.tx.send((run, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn batch_loop(
    store: Arc<dyn Store>,
    queue: Arc<dyn RunnerInbox>,
    mut rx: mpsc::Receiver<(NewRun, Reply)>,
) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        let requests = std::mem::take(&mut batch);
        let (store, queue) = (store.clone(), queue.clone());
        tokio::spawn(async move {
            record(store.as_ref(), queue.as_ref(), requests).await;
            drop(permit);
        });
    }
}

#[tracing::instrument(name = "start_runs", skip_all, fields(runs = requests.len()))]
async fn record(store: &dyn Store, queue: &dyn RunnerInbox, requests: Vec<(NewRun, Reply)>) {
    let (runs, replies): (Vec<NewRun>, Vec<Reply>) = requests.into_iter().unzip();
    // Kept only to record the runs one by one if the database refuses the batch.
    let alone = (runs.len() > 1).then(|| runs.clone());
    let results = match store.create_runs(runs).await {
        Ok(results) => results,
        Err(e) => match alone {
            // A value the database refuses fails only the run that holds it, not its neighbours.
            Some(runs) if !matches!(e, StoreError::Unavailable(_)) => {
                tracing::warn!(error = %e, runs = runs.len(), "a batch of runs was refused; recording them one by one");
                one_by_one(store, runs).await
            }
            _ => {
                tracing::error!(error = %e, "cannot record runs");
                for reply in replies {
                    let _ = reply.send(Err(shared_store_failure(&e)));
                }
                return;
            }
        },
    };
    let starts: Vec<v1::RunnerMessage> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter(|(_, created)| *created)
        .map(|(run, _)| v1::RunnerMessage {
            message: Some(v1::runner_message::Message::StartRun(v1::StartRunCommand {
                run_id: run.id.to_string(),
                trace_context: Default::default(),
            })),
        })
        .collect();
    // The runs are recorded; if Redis is down now, the runner's sweeper starts them later.
    if let Err(e) = queue.send_to_runner(&starts).await {
        tracing::warn!(runs = starts.len(), error = %e, "cannot hand runs to the runner yet; the sweeper will start them");
    }
    for (result, reply) in results.into_iter().zip(replies) {
        let _ = reply.send(result.map_err(ApiError::from));
    }
}

/// Records each run on its own, so a run the database refuses fails alone.
async fn one_by_one(store: &dyn Store, runs: Vec<NewRun>) -> Vec<CreatedRun> {
    let mut results = Vec::with_capacity(runs.len());
    for run in runs {
        let id = run.id;
        let result = match store.create_runs(vec![run]).await {
            Ok(mut one) => one
                .pop()
                .unwrap_or_else(|| Err(StoreError::Corrupt(format!("no result for run {id}")))),
            Err(e) => {
                tracing::error!(run.id = %id, error = %e, "cannot record the run");
                Err(e)
            }
        };
        results.push(result);
    }
    results
}
