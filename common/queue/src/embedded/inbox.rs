//! The runner's side on SQLite: its inbox, what a batch sends around its commit, and the timers
//! that turn into inbox messages when due.

use std::time::Duration;

use async_trait::async_trait;
use baton_proto::v1;
use prost::Message;

use super::{
    SqliteQueue, entry_ids, failed,
    sql::{self, Log},
};
use crate::{
    BatchOutcome, Delivery, FiredTimers, QueueError, RunnerInbox, StreamName, TimerEntry, Timers,
};

#[async_trait]
impl RunnerInbox for SqliteQueue {
    #[tracing::instrument(level = "debug", skip_all, fields(messages = messages.len()))]
    async fn send_to_runner(&self, messages: &[v1::RunnerMessage]) -> Result<(), QueueError> {
        if messages.is_empty() {
            return Ok(());
        }
        let inbox = StreamName::Runner.to_string();
        let entries: Vec<_> = messages
            .iter()
            .map(|m| (inbox.clone(), m.encode_to_vec()))
            .collect();
        let step = "sending to the runner inbox";
        let mut tx = self.write(step).await?;
        sql::append(&mut tx, &entries).await.map_err(failed(step))?;
        tx.commit().await.map_err(failed(step))?;
        self.wakers.wake_stream(&inbox);
        Ok(())
    }

    async fn read_runner(
        &self,
        consumer: &str,
        max: usize,
        block: Duration,
    ) -> Result<Vec<Delivery<v1::RunnerMessage>>, QueueError> {
        self.read_stream(&StreamName::Runner, consumer, max, block)
            .await
    }

    async fn reclaim_runner(
        &self,
        consumer: &str,
        min_idle: Duration,
        max: usize,
    ) -> Result<Vec<Delivery<v1::RunnerMessage>>, QueueError> {
        self.reclaim_stream(&StreamName::Runner, consumer, min_idle, max)
            .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(jobs = jobs.len(), timers = timers.len()))]
    async fn dispatch(&self, jobs: &[v1::Job], timers: &[TimerEntry]) -> Result<(), QueueError> {
        if jobs.is_empty() && timers.is_empty() {
            return Ok(());
        }
        let entries: Vec<_> = jobs
            .iter()
            .map(|job| {
                (
                    StreamName::jobs(job.kind.as_str()).to_string(),
                    job.encode_to_vec(),
                )
            })
            .collect();
        let wakes: Vec<_> = timers
            .iter()
            .map(|t| (t.due_ms, timer_payload(t)))
            .collect();
        let step = "dispatching jobs and timers";
        let mut tx = self.write(step).await?;
        sql::append(&mut tx, &entries).await.map_err(failed(step))?;
        sql::set_timers(&mut tx, &wakes)
            .await
            .map_err(failed(step))?;
        tx.commit().await.map_err(failed(step))?;
        let mut streams: Vec<&str> = entries.iter().map(|(s, _)| s.as_str()).collect();
        streams.sort_unstable();
        streams.dedup();
        for stream in streams {
            self.wakers.wake_stream(stream);
        }
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(
        events = outcome.events.len(),
        cancels = outcome.cancels.len(),
        dead_letters = outcome.dead_letters.len(),
        ack = outcome.ack.len(),
        drop_timers = outcome.drop_timers.len(),
    ))]
    async fn complete_batch(&self, outcome: BatchOutcome) -> Result<(), QueueError> {
        let BatchOutcome {
            events,
            cancels,
            dead_letters,
            ack,
            drop_timers,
        } = outcome;
        if events.is_empty()
            && cancels.is_empty()
            && dead_letters.is_empty()
            && ack.is_empty()
            && drop_timers.is_empty()
        {
            return Ok(());
        }
        let drop_timers: Vec<_> = drop_timers.iter().map(timer_payload).collect();
        let ack = entry_ids(&ack)?;
        let events: Vec<_> = events.iter().map(Message::encode_to_vec).collect();
        let cancels: Vec<_> = cancels.iter().map(Message::encode_to_vec).collect();
        let dead = StreamName::Dead.to_string();
        let dead_letters: Vec<_> = dead_letters
            .iter()
            .map(|d| (dead.clone(), d.encode_to_vec()))
            .collect();

        let step = "completing a runner batch";
        let mut tx = self.write(step).await?;
        if !events.is_empty() {
            sql::append_log(&mut tx, Log::Events, &events, self.config.events_kept)
                .await
                .map_err(failed(step))?;
        }
        if !cancels.is_empty() {
            sql::append_log(&mut tx, Log::Cancels, &cancels, self.config.cancels_kept)
                .await
                .map_err(failed(step))?;
        }
        if !dead_letters.is_empty() {
            sql::append(&mut tx, &dead_letters)
                .await
                .map_err(failed(step))?;
            sql::trim_dead(&mut tx, self.config.dead_letters_kept)
                .await
                .map_err(failed(step))?;
        }
        sql::ack(&mut *tx, &StreamName::Runner.to_string(), &ack)
            .await
            .map_err(failed(step))?;
        sql::drop_timers(&mut tx, &drop_timers)
            .await
            .map_err(failed(step))?;
        tx.commit().await.map_err(failed(step))?;

        if !events.is_empty() {
            self.wakers.events.notify_waiters();
        }
        if !cancels.is_empty() {
            self.wakers.cancels.notify_waiters();
        }
        Ok(())
    }

    async fn dead_letter_runner(&self, letter: v1::DeadLetter) -> Result<(), QueueError> {
        self.dead_letter(&StreamName::Runner, letter).await
    }

    async fn jobs_present(
        &self,
        kind: &str,
        jobs: &[crate::JobKey],
    ) -> Result<Vec<bool>, QueueError> {
        self.find_jobs(kind, jobs).await
    }
}

/// A timer's row payload: the inbox message it turns into, which also identifies it.
fn timer_payload(timer: &TimerEntry) -> Vec<u8> {
    v1::RunnerMessage {
        message: Some(v1::runner_message::Message::WakeRun(timer.wake.clone())),
    }
    .encode_to_vec()
}

#[async_trait]
impl Timers for SqliteQueue {
    #[tracing::instrument(level = "debug", skip_all, fields(moved = tracing::field::Empty))]
    async fn fire_due_timers(&self, now_ms: i64, max: usize) -> Result<FiredTimers, QueueError> {
        let inbox = StreamName::Runner.to_string();
        let step = "firing due timers";
        // The write lock from the start: concurrent callers fire each timer once.
        let mut tx = self.write(step).await?;
        let moved = sql::fire_timers(&mut tx, &inbox, now_ms, max)
            .await
            .map_err(failed(step))?;
        let next_due_ms = sql::next_timer(&mut *tx).await.map_err(failed(step))?;
        tx.commit().await.map_err(failed(step))?;
        tracing::Span::current().record("moved", moved);
        if moved > 0 {
            self.wakers.wake_stream(&inbox);
        }
        Ok(FiredTimers { moved, next_due_ms })
    }
}
