//! Taking work from a stream, shared by the runner inbox and the job streams: the blocking read,
//! reclaiming entries left idle, and moving an entry to the dead letters.

use std::time::Duration;

use baton_proto::v1;
use prost::Message;

use super::{
    SqliteQueue, entry_id, failed, now_us, sql,
    wake::{self, Woken},
};
use crate::{Delivery, QueueError, StreamName};

impl SqliteQueue {
    /// Takes up to `max` entries of `stream` for `consumer`, waiting up to `block` for the first.
    #[tracing::instrument(level = "debug", skip_all, fields(stream = %stream, consumer))]
    pub(super) async fn read_stream<T: Message + Default>(
        &self,
        stream: &StreamName,
        consumer: &str,
        max: usize,
        block: Duration,
    ) -> Result<Vec<Delivery<T>>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let stream = stream.to_string();
        let deadline = wake::deadline(block);
        let notify = self.wakers.stream(&stream);
        let mut woken = Woken::Notified;
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            // Listening before looking: a write committed after the look still wakes this read.
            notified.as_mut().enable();
            // After a poll, a read-only look first, so idle readers never take the write lock.
            let look = woken == Woken::Notified
                || sql::has_waiting(&self.pool, &stream)
                    .await
                    .map_err(failed("looking for entries to take"))?;
            if look {
                let taken = sql::take(&self.pool, &stream, consumer, now_us(), max)
                    .await
                    .map_err(failed("taking entries"))?;
                if !taken.is_empty() {
                    return Ok(taken.into_iter().map(sql::delivery).collect());
                }
            }
            woken = wake::pause(notified, self.config.poll_interval, deadline).await;
            if woken == Woken::Deadline {
                return Ok(Vec::new());
            }
        }
    }

    /// Takes over, for `consumer`, entries of `stream` delivered and left unacknowledged for at
    /// least `min_idle`, counting a delivery each.
    #[tracing::instrument(level = "debug", skip_all, fields(stream = %stream, consumer))]
    pub(super) async fn reclaim_stream<T: Message + Default>(
        &self,
        stream: &StreamName,
        consumer: &str,
        min_idle: Duration,
        max: usize,
    ) -> Result<Vec<Delivery<T>>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let now = now_us();
        let idle_us = i64::try_from(min_idle.as_micros()).unwrap_or(i64::MAX);
        let rows = sql::reclaim(
            &self.pool,
            &stream.to_string(),
            consumer,
            now,
            now.saturating_sub(idle_us),
            max,
        )
        .await
        .map_err(failed("reclaiming idle entries"))?;
        Ok(rows.into_iter().map(sql::delivery).collect())
    }

    /// Adds `letter` to the dead letters and acknowledges its entry (`letter.entry_id`, if any)
    /// on `stream`, in one transaction.
    #[tracing::instrument(level = "debug", skip_all, fields(stream = %stream, entry = %letter.entry_id))]
    pub(super) async fn dead_letter(
        &self,
        stream: &StreamName,
        letter: v1::DeadLetter,
    ) -> Result<(), QueueError> {
        let entry = match letter.entry_id.as_str() {
            "" => None,
            id => Some(entry_id(id)?),
        };
        let step = "moving an entry to the dead letters";
        let mut tx = self.write(step).await?;
        sql::append(
            &mut tx,
            &[(StreamName::Dead.to_string(), letter.encode_to_vec())],
        )
        .await
        .map_err(failed(step))?;
        sql::trim_dead(&mut tx, self.config.dead_letters_kept)
            .await
            .map_err(failed(step))?;
        if let Some(entry) = entry {
            sql::ack(&mut *tx, &stream.to_string(), &[entry])
                .await
                .map_err(failed(step))?;
        }
        tx.commit().await.map_err(failed(step))
    }
}
