//! Whether jobs are still on a Redis stream or reported in the inbox: a scan of both streams,
//! a chunk at a time, that stops once every job asked about was seen.

use redis::Value;

use super::{FIELD, RedisQueue};
use crate::{
    JobKey, QueueError,
    presence::{Entries, Presence},
};

/// Entries read per `XRANGE` while scanning a stream.
const SCAN_CHUNK: usize = 1_000;

impl RedisQueue {
    pub(super) async fn find_jobs(
        &self,
        kind: &str,
        jobs: &[JobKey],
    ) -> Result<Vec<bool>, QueueError> {
        let mut presence = Presence::new(jobs);
        if !jobs.is_empty() {
            self.scan_stream(&self.keys.jobs(kind), &mut presence, Entries::Jobs)
                .await?;
            self.scan_stream(&self.keys.runner(), &mut presence, Entries::Inbox)
                .await?;
        }
        Ok(presence.into_found(jobs))
    }

    /// Hands every entry of `stream` to `look`, oldest first, until the stream ends or
    /// `presence` has seen every key.
    async fn scan_stream(
        &self,
        stream: &str,
        presence: &mut Presence<'_>,
        entries: Entries,
    ) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        let mut from = "-".to_owned();
        while !presence.complete() {
            let chunk: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                .arg(stream)
                .arg(&from)
                .arg("+")
                .arg("COUNT")
                .arg(SCAN_CHUNK)
                .query_async(&mut conn)
                .await?;
            let read = chunk.ids.len();
            for mut entry in chunk.ids {
                if let Some(Value::BulkString(bytes)) = entry.map.remove(FIELD) {
                    presence.entry(entries, &bytes);
                }
                from = format!("({}", entry.id);
            }
            if read < SCAN_CHUNK {
                break;
            }
        }
        Ok(())
    }
}
