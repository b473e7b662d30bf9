//! Admission control: at most `BATON_MAX_RUNNING_RUNS` runs run at once. A burst past the bound
//! waits as `queued` in the store, where it is as durable as any run, and starts oldest first as
//! running runs end, so runs already going keep their pace instead of every run slowing down.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use baton_engine::{RunState, now_micros};
use baton_proto::v1::{self, runner_message::Message};
use tokio_util::sync::CancellationToken;

use super::{
    Runner,
    inbox::{InboxEntry, RunMessages},
};

/// How often the running runs are counted in the store, which corrects what this replica
/// cannot see: runs other replicas started and ended.
const RECOUNT_EVERY: Duration = Duration::from_secs(1);
/// How often a replica holding back runs looks for room it was not told about (runs that other
/// replicas ended).
const BACKLOG_POLL: Duration = Duration::from_millis(50);

/// How many runs run, as this replica knows it, and whether it holds runs back.
pub(super) struct Admission {
    limit: Option<u64>,
    /// Runs running by the last count in the store, plus those this replica started since and
    /// minus those it ended.
    running: AtomicI64,
    /// Starts admitted whose batch has not finished.
    reserved: AtomicI64,
    /// This replica left queued runs to start later: newcomers wait behind them.
    backlog: AtomicBool,
    /// Counts the times runs were held back, so a look that found the store's queue short
    /// clears the backlog only if nothing was held back since it began.
    holds: AtomicU64,
    /// Rung when runs end while runs are held back.
    room_made: tokio::sync::Notify,
}

/// What a batch did to the count of running runs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct RunningChange {
    pub(super) started: i64,
    pub(super) ended: i64,
}

impl RunningChange {
    /// Counts the committed runs that started and the started runs that ended. A run that
    /// started and ended in one batch counts as both; one cancelled while queued, as neither.
    pub(super) fn of(runs: &[RunState]) -> Self {
        let mut change = Self::default();
        for run in runs {
            let run_events = || run.new_events.iter().filter(|e| e.step_id.is_none());
            if run_events().any(|e| e.event_type == v1::RunEventType::RunStarted) {
                change.started += 1;
            }
            if run.status.is_terminal() && run.started_at.is_some() && run_events().next().is_some()
            {
                change.ended += 1;
            }
        }
        change
    }
}

impl Admission {
    pub(super) fn new(limit: Option<u64>) -> Self {
        Self {
            limit,
            running: AtomicI64::new(0),
            reserved: AtomicI64::new(0),
            backlog: AtomicBool::new(false),
            holds: AtomicU64::new(0),
            room_made: tokio::sync::Notify::new(),
        }
    }

    /// How many more runs may start now; `usize::MAX` without a bound.
    pub(super) fn room(&self) -> usize {
        let Some(limit) = self.limit else {
            return usize::MAX;
        };
        let taken = self.running.load(Ordering::Relaxed) + self.reserved.load(Ordering::Relaxed);
        usize::try_from((limit as i64).saturating_sub(taken).max(0)).unwrap_or(0)
    }

    /// Reserves room for up to `wanted` starts and returns how many got it. Newcomers
    /// (`behind_backlog`) get none while runs are held back, so the oldest start first. What was
    /// not admitted is held back. Each reservation is given back with [`Admission::release`].
    pub(super) fn admit(&self, wanted: usize, behind_backlog: bool) -> usize {
        if self.limit.is_none() || wanted == 0 {
            return wanted;
        }
        let admitted = if behind_backlog && self.backlog.load(Ordering::Relaxed) {
            0
        } else {
            wanted.min(self.room())
        };
        self.reserved.fetch_add(admitted as i64, Ordering::Relaxed);
        if admitted < wanted {
            self.holds.fetch_add(1, Ordering::SeqCst);
            self.backlog.store(true, Ordering::SeqCst);
        }
        admitted
    }

    /// Gives back reservations once their batch finished, committed or not.
    pub(super) fn release(&self, admitted: usize) {
        if self.limit.is_some() {
            self.reserved.fetch_sub(admitted as i64, Ordering::Relaxed);
        }
    }

    /// Counts what a committed batch started and ended.
    pub(super) fn record(&self, change: RunningChange) {
        if self.limit.is_none() || change == RunningChange::default() {
            return;
        }
        self.running
            .fetch_add(change.started - change.ended, Ordering::Relaxed);
        if change.ended > 0 && self.backlog.load(Ordering::Relaxed) {
            self.room_made.notify_one();
        }
    }

    /// Sets the running count to what the store counted.
    fn recount(&self, running: u64) {
        self.running.store(
            i64::try_from(running).unwrap_or(i64::MAX),
            Ordering::Relaxed,
        );
    }

    fn has_backlog(&self) -> bool {
        self.backlog.load(Ordering::SeqCst)
    }

    /// A mark to pass to [`Admission::backlog_worked_off`], taken before looking at the store.
    fn holds_so_far(&self) -> u64 {
        self.holds.load(Ordering::SeqCst)
    }

    /// The store's queue came up short of what was asked for: clears the backlog unless runs
    /// were held back after `mark`, which the look may have missed.
    fn backlog_worked_off(&self, mark: u64) {
        if self.holds.load(Ordering::SeqCst) == mark {
            self.backlog.store(false, Ordering::SeqCst);
        }
    }
}

impl Runner {
    /// Holds back the start messages of `by_run` that find no room: they are acknowledged and
    /// their runs stay queued in the store for [`Runner::run_admission`] to start. Returns how
    /// many starts were admitted, to release once the batch finished.
    pub(super) async fn admit_starts(&self, by_run: &mut RunMessages) -> usize {
        let starts: Vec<_> = by_run
            .iter()
            .filter(|(_, entries)| {
                entries
                    .iter()
                    .all(|e| matches!(e.message, Message::StartRun(_)))
            })
            .map(|(id, _)| *id)
            .collect();
        let admitted = self.admission.admit(starts.len(), true);
        let held: Vec<String> = starts[admitted..]
            .iter()
            .filter_map(|id| by_run.remove(id))
            .flatten()
            .filter_map(|entry| entry.id)
            .collect();
        if !held.is_empty() {
            self.metrics.run_starts_held(held.len() as u64);
            tracing::debug!(
                runs = held.len(),
                "no room for more running runs; they stay queued"
            );
            let outcome = baton_queue::BatchOutcome {
                ack: held,
                ..Default::default()
            };
            // Not acknowledged, the starts come back after the inbox visibility timeout and
            // are held back again: nothing is lost either way.
            if let Err(e) = self.queue.complete_batch(outcome).await {
                tracing::warn!(error = %e, "cannot acknowledge held-back run starts");
            }
        }
        admitted
    }

    /// Starts queued runs as room is made, oldest first, until `shutdown`. Without a backlog it
    /// still looks every `BATON_SWEEP_INTERVAL` for runs queued longer than
    /// `BATON_SWEEP_GRACE`, whose start message was lost (a crash between the commit of a run
    /// and the message) or held back by a replica that stopped.
    pub async fn run_admission(self: Arc<Self>, shutdown: CancellationToken) {
        let bounded = self.admission.limit.is_some();
        let mut counted = None::<Instant>;
        let mut looked = None::<Instant>;
        loop {
            if bounded && counted.is_none_or(|at| at.elapsed() >= RECOUNT_EVERY) {
                match self.store.running_runs().await {
                    Ok(n) => {
                        self.admission.recount(n);
                        counted = Some(Instant::now());
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot count the running runs"),
                }
            }
            let backlog = self.admission.has_backlog();
            if backlog || looked.is_none_or(|at| at.elapsed() >= self.config.sweep_interval) {
                looked = Some(Instant::now());
                if let Err(e) = self.start_queued().await {
                    tracing::warn!(error = %e, "cannot start queued runs");
                }
            }
            let wait = if self.admission.has_backlog() {
                BACKLOG_POLL
            } else if bounded {
                RECOUNT_EVERY.min(self.config.sweep_interval)
            } else {
                self.config.sweep_interval
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.admission.room_made.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Starts queued runs while there is room: all of them (oldest first) when this replica
    /// holds some back, else those queued past the sweep grace.
    async fn start_queued(&self) -> Result<(), crate::RunnerError> {
        loop {
            let ask = self.admission.room().min(self.config.batch_size);
            if ask == 0 {
                return Ok(());
            }
            let mark = self.admission.holds_so_far();
            let backlog = self.admission.has_backlog();
            let grace = if backlog {
                0
            } else {
                i64::try_from(self.config.sweep_grace.as_micros()).unwrap_or(i64::MAX)
            };
            let ids = self
                .store
                .queued_runs(now_micros().saturating_sub(grace), ask as i64)
                .await?;
            if ids.len() < ask && backlog {
                self.admission.backlog_worked_off(mark);
            }
            if ids.is_empty() {
                return Ok(());
            }
            if !backlog {
                tracing::info!(
                    runs = ids.len(),
                    "starting runs queued past the sweep grace"
                );
            }
            let admitted = self.admission.admit(ids.len(), false);
            let by_run: RunMessages = ids
                .iter()
                .take(admitted)
                .map(|id| (*id, vec![queued_start(*id)]))
                .collect::<HashMap<_, _>>();
            let full = ids.len() == ask;
            self.apply_isolating_runs(by_run).await;
            self.admission.release(admitted);
            if !full {
                return Ok(());
            }
        }
    }
}

/// The start of a queued run, taken from the store rather than the inbox.
fn queued_start(run_id: uuid::Uuid) -> InboxEntry {
    InboxEntry {
        id: None,
        run_id,
        message: Message::StartRun(v1::StartRunCommand {
            run_id: run_id.to_string(),
            ..Default::default()
        }),
        deliveries: 1,
        payload: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_bound_and_holds_newcomers_behind_a_backlog() {
        let admission = Admission::new(Some(10));
        admission.recount(6);
        assert_eq!(admission.room(), 4);
        assert_eq!(admission.admit(3, true), 3);
        assert_eq!(admission.room(), 1);
        assert_eq!(admission.admit(5, true), 1, "only what fits");
        assert!(admission.has_backlog());
        assert_eq!(
            admission.admit(1, true),
            0,
            "newcomers wait behind the backlog"
        );
        admission.release(4);
        admission.record(RunningChange {
            started: 4,
            ended: 2,
        });
        assert_eq!(admission.room(), 2);
        assert_eq!(
            admission.admit(5, false),
            2,
            "the backlog itself goes first"
        );
        admission.release(2);
        admission.record(RunningChange {
            started: 2,
            ended: 0,
        });
        let mark = admission.holds_so_far();
        admission.backlog_worked_off(mark);
        assert!(!admission.has_backlog());
        assert_eq!(admission.admit(1, true), 0, "no room left");
        assert!(admission.has_backlog());
        admission.backlog_worked_off(mark);
        assert!(admission.has_backlog(), "held back after the mark: kept");
    }

    #[test]
    fn without_a_bound_everything_is_admitted() {
        let admission = Admission::new(None);
        assert_eq!(admission.admit(1_000_000, true), 1_000_000);
        assert_eq!(admission.room(), usize::MAX);
        assert!(!admission.has_backlog());
    }

    #[test]
    fn a_count_above_the_bound_leaves_no_room() {
        let admission = Admission::new(Some(4));
        admission.recount(9);
        assert_eq!(admission.room(), 0);
        assert_eq!(admission.admit(2, false), 0);
    }
}
