//! What goes out to many readers on SQLite: the run event log, read after a cursor, and cancel
//! notices, which every subscriber reads in order from the point it subscribed.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use async_trait::async_trait;
use baton_proto::v1;
use prost::Message;
use sqlx::SqlitePool;
use tokio::sync::Notify;

use super::{
    SqliteQueue, failed,
    sql::{self, Log},
    wake::{self, Woken},
};
use crate::{BoxStream, CancelNotices, EventCursor, EventLog, QueueError};

/// Cancel notices a subscriber reads at a time.
const CANCELS_PER_READ: usize = 256;

/// The event id a cursor stands for (0 before the first).
fn cursor_id(cursor: &EventCursor) -> Result<i64, QueueError> {
    match cursor.as_backend() {
        "" => Ok(0),
        id => id.parse().map_err(|_| {
            QueueError::Corrupt(format!("event cursor {id:?} is not one this queue gave"))
        }),
    }
}

#[async_trait]
impl EventLog for SqliteQueue {
    async fn read_events(
        &self,
        after: &EventCursor,
        max: usize,
        block: Duration,
    ) -> Result<Vec<(EventCursor, v1::RunEvent)>, QueueError> {
        let mut after = cursor_id(after)?;
        if max == 0 {
            return Ok(Vec::new());
        }
        let deadline = wake::deadline(block);
        loop {
            let notified = self.wakers.events.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let rows = sql::read_log(&self.pool, Log::Events, after, max)
                .await
                .map_err(failed("reading run events"))?;
            if !rows.is_empty() {
                let mut events = Vec::with_capacity(rows.len());
                for (id, payload) in rows {
                    after = id;
                    match v1::RunEvent::decode(payload.as_slice()) {
                        Ok(event) => {
                            events.push((EventCursor::from_backend(id.to_string()), event))
                        }
                        // Watchers replay the store, the truth, for whatever this entry said.
                        Err(e) => {
                            tracing::warn!(entry = id, error = %e, "skipping an undecodable run event")
                        }
                    }
                }
                // Only undecodable entries: read on past them.
                if !events.is_empty() {
                    return Ok(events);
                }
                continue;
            }
            if wake::pause(notified, self.config.poll_interval, deadline).await == Woken::Deadline {
                return Ok(Vec::new());
            }
        }
    }

    async fn tail(&self) -> Result<EventCursor, QueueError> {
        let newest = sql::last_log_id(&self.pool, Log::Events)
            .await
            .map_err(failed("finding the newest run event"))?;
        Ok(EventCursor::from_backend(newest.to_string()))
    }
}

#[async_trait]
impl CancelNotices for SqliteQueue {
    async fn publish_cancel(&self, notice: &v1::CancelNotice) -> Result<(), QueueError> {
        let step = "publishing a cancel notice";
        let mut tx = self.write(step).await?;
        sql::append_log(
            &mut tx,
            Log::Cancels,
            &[notice.encode_to_vec()],
            self.config.cancels_kept,
        )
        .await
        .map_err(failed(step))?;
        tx.commit().await.map_err(failed(step))?;
        self.wakers.cancels.notify_waiters();
        Ok(())
    }

    async fn subscribe_cancels(&self) -> Result<BoxStream<v1::CancelNotice>, QueueError> {
        let after = sql::last_log_id(&self.pool, Log::Cancels)
            .await
            .map_err(failed("subscribing to cancel notices"))?;
        let subscriber = CancelSubscriber {
            pool: self.pool.clone(),
            notify: self.wakers.cancels.clone(),
            poll: self.config.poll_interval,
            after,
            heard: VecDeque::new(),
        };
        Ok(Box::pin(futures::stream::unfold(
            subscriber,
            |mut subscriber| async move {
                let notice = subscriber.next().await;
                Some((notice, subscriber))
            },
        )))
    }
}

/// One subscriber's place in the cancel notices.
struct CancelSubscriber {
    pool: SqlitePool,
    notify: Arc<Notify>,
    poll: Duration,
    /// The id of the last notice read.
    after: i64,
    /// Read and not handed out yet.
    heard: VecDeque<v1::CancelNotice>,
}

impl CancelSubscriber {
    /// The next notice, waiting as long as it takes. The stream never ends: a failed read is
    /// logged and tried again at the next poll.
    async fn next(&mut self) -> v1::CancelNotice {
        loop {
            if let Some(notice) = self.heard.pop_front() {
                return notice;
            }
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match sql::read_log(&self.pool, Log::Cancels, self.after, CANCELS_PER_READ).await {
                Ok(rows) => {
                    for (id, payload) in rows {
                        self.after = id;
                        match v1::CancelNotice::decode(payload.as_slice()) {
                            Ok(notice) => self.heard.push_back(notice),
                            Err(e) => {
                                tracing::warn!(id, "skipping an undecodable cancel notice: {e}")
                            }
                        }
                    }
                    if !self.heard.is_empty() {
                        continue;
                    }
                }
                Err(e) => tracing::warn!("reading cancel notices failed, trying again: {e}"),
            }
            let forever = wake::deadline(Duration::MAX);
            wake::pause(notified, self.poll, forever).await;
        }
    }
}
