//! Whether jobs are still on a stream of the file or reported in its inbox: a scan of both, a
//! chunk at a time, that stops once every job asked about was seen.

use super::{SqliteQueue, failed};
use crate::{
    JobKey, QueueError, StreamName,
    presence::{Entries, Presence},
};

/// Entries read per query while scanning a stream.
const SCAN_CHUNK: i64 = 1_000;

impl SqliteQueue {
    pub(super) async fn find_jobs(
        &self,
        kind: &str,
        jobs: &[JobKey],
    ) -> Result<Vec<bool>, QueueError> {
        let mut presence = Presence::new(jobs);
        if !jobs.is_empty() {
            self.scan_stream(&StreamName::jobs(kind), &mut presence, Entries::Jobs)
                .await?;
            self.scan_stream(&StreamName::Runner, &mut presence, Entries::Inbox)
                .await?;
        }
        Ok(presence.into_found(jobs))
    }

    async fn scan_stream(
        &self,
        stream: &StreamName,
        presence: &mut Presence<'_>,
        entries: Entries,
    ) -> Result<(), QueueError> {
        let stream = stream.to_string();
        let mut after = 0_i64;
        while !presence.complete() {
            let chunk: Vec<(i64, Vec<u8>)> = sqlx::query_as(
                "SELECT id, payload FROM queue_entries WHERE stream = ?1 AND id > ?2 \
                 ORDER BY id LIMIT ?3",
            )
            .bind(&stream)
            .bind(after)
            .bind(SCAN_CHUNK)
            .fetch_all(&self.pool)
            .await
            .map_err(failed("looking for jobs"))?;
            let read = chunk.len();
            for (id, payload) in chunk {
                presence.entry(entries, &payload);
                after = id;
            }
            if (read as i64) < SCAN_CHUNK {
                break;
            }
        }
        Ok(())
    }
}
