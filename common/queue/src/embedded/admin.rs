//! What operators and health checks read from the embedded queue, and the dead letters they
//! page through and replay.

use std::time::Duration;

use async_trait::async_trait;
use baton_proto::v1;
use prost::Message;

use super::{SqliteQueue, failed, sql_int};
use crate::{QueueAdmin, QueueError, Replay, StreamName, StreamStats, WorkerHeartbeat};

/// A heartbeat row: id, worker id, kind, pid, hostname, started, last beat.
type HeartbeatRow = (String, String, String, i64, String, i64, i64);

/// A dead letter's id as this queue hands it out (its entry id), parsed back; other text names
/// no letter.
fn letter_id(id: &str) -> Option<i64> {
    id.parse().ok().filter(|id| *id > 0)
}

/// A dead-letter row decoded, or a stand-in that says why it could not be and carries its bytes.
fn listed(id: i64, payload: Vec<u8>) -> (String, v1::DeadLetter) {
    let letter = v1::DeadLetter::decode(payload.as_slice()).unwrap_or_else(|e| v1::DeadLetter {
        reason: format!("the dead letter cannot be read: {e}"),
        payload,
        ..Default::default()
    });
    (id.to_string(), letter)
}

#[async_trait]
impl QueueAdmin for SqliteQueue {
    async fn stats(&self, kinds: &[String]) -> Result<Vec<StreamStats>, QueueError> {
        let mut names = vec![StreamName::Runner];
        names.extend(kinds.iter().map(|k| StreamName::jobs(k.as_str())));
        names.push(StreamName::Dead);
        let step = "counting stream entries";
        // One read transaction, so every stream is counted at the same moment.
        let mut tx = self.pool.begin().await.map_err(failed(step))?;
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let name = name.to_string();
            let (waiting, pending): (i64, i64) = sqlx::query_as(
                "SELECT \
                 (SELECT COUNT(*) FROM queue_entries WHERE stream = ?1 AND delivered_to IS NULL), \
                 (SELECT COUNT(*) FROM queue_entries WHERE stream = ?1 AND delivered_to IS NOT NULL)",
            )
            .bind(&name)
            .fetch_one(&mut *tx)
            .await
            .map_err(failed(step))?;
            let count = |n: i64| u64::try_from(n).unwrap_or(0);
            out.push(StreamStats {
                name,
                length: count(waiting) + count(pending),
                pending: count(pending),
            });
        }
        tx.commit().await.map_err(failed(step))?;
        Ok(out)
    }

    async fn dead_letters(&self, max: usize) -> Result<Vec<v1::DeadLetter>, QueueError> {
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT id, payload FROM queue_entries \
             WHERE stream = ?1 AND delivered_to IS NULL ORDER BY id LIMIT ?2",
        )
        .bind(StreamName::Dead.to_string())
        .bind(sql_int(max))
        .fetch_all(&self.pool)
        .await
        .map_err(failed("reading dead letters"))?;
        Ok(rows
            .into_iter()
            .filter_map(
                |(id, payload)| match v1::DeadLetter::decode(payload.as_slice()) {
                    Ok(letter) => Some(letter),
                    Err(e) => {
                        tracing::warn!(id, "skipping an undecodable dead letter: {e}");
                        None
                    }
                },
            )
            .collect())
    }

    async fn list_dead_letters(
        &self,
        after: Option<&str>,
        max: usize,
    ) -> Result<Vec<(String, v1::DeadLetter)>, QueueError> {
        let after = match after {
            None => 0,
            Some(id) => match letter_id(id) {
                Some(id) => id,
                None => return Ok(Vec::new()),
            },
        };
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT id, payload FROM queue_entries \
             WHERE stream = ?1 AND delivered_to IS NULL AND id > ?2 ORDER BY id LIMIT ?3",
        )
        .bind(StreamName::Dead.to_string())
        .bind(after)
        .bind(sql_int(max))
        .fetch_all(&self.pool)
        .await
        .map_err(failed("listing dead letters"))?;
        Ok(rows
            .into_iter()
            .map(|(id, payload)| listed(id, payload))
            .collect())
    }

    async fn get_dead_letter(&self, id: &str) -> Result<Option<v1::DeadLetter>, QueueError> {
        let Some(id) = letter_id(id) else {
            return Ok(None);
        };
        let payload: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT payload FROM queue_entries \
             WHERE id = ?1 AND stream = ?2 AND delivered_to IS NULL",
        )
        .bind(id)
        .bind(StreamName::Dead.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(failed("reading a dead letter"))?;
        Ok(payload.map(|payload| listed(id, payload).1))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(dead_letter = %id))]
    async fn replay_dead_letter(&self, id: &str) -> Result<Replay, QueueError> {
        let Some(id) = letter_id(id) else {
            return Ok(Replay::NotFound);
        };
        let step = "replaying a dead letter";
        // The write lock from the start: of two replays of one letter, the second finds none.
        let mut tx = self.write(step).await?;
        let payload: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT payload FROM queue_entries \
             WHERE id = ?1 AND stream = ?2 AND delivered_to IS NULL",
        )
        .bind(id)
        .bind(StreamName::Dead.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(failed(step))?;
        let Some(payload) = payload else {
            return Ok(Replay::NotFound);
        };
        let letter = listed(id, payload).1;
        let stream = match StreamName::parse(&letter.stream) {
            Some(stream @ (StreamName::Runner | StreamName::Jobs(_))) => stream,
            _ => {
                return Ok(Replay::Unreplayable {
                    stream: letter.stream,
                });
            }
        };
        let name = stream.to_string();
        let entry: i64 = sqlx::query_scalar(
            "INSERT INTO queue_entries (stream, payload) VALUES (?1, ?2) RETURNING id",
        )
        .bind(&name)
        .bind(letter.payload.as_slice())
        .fetch_one(&mut *tx)
        .await
        .map_err(failed(step))?;
        sqlx::query("DELETE FROM queue_entries WHERE id = ?1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(failed(step))?;
        tx.commit().await.map_err(failed(step))?;
        self.wakers.wake_stream(&name);
        Ok(Replay::Replayed {
            stream,
            entry_id: entry.to_string(),
        })
    }

    /// Nothing to remove: the embedded queue keeps no consumers, only which consumer each
    /// pending entry was last delivered to, and an entry whose consumer is gone is reclaimed
    /// after its visibility timeout like any other.
    async fn remove_idle_consumers(&self, _min_idle: Duration) -> Result<Vec<String>, QueueError> {
        Ok(Vec::new())
    }

    async fn live_workers(
        &self,
        now_ms: i64,
        max_age_ms: i64,
    ) -> Result<Vec<WorkerHeartbeat>, QueueError> {
        let step = "reading worker heartbeats";
        let mut tx = self.write(step).await?;
        sqlx::query("DELETE FROM queue_workers WHERE ?1 - last_heartbeat_ms > ?2")
            .bind(now_ms)
            .bind(max_age_ms)
            .execute(&mut *tx)
            .await
            .map_err(failed(step))?;
        let rows: Vec<HeartbeatRow> = sqlx::query_as(
            "SELECT id, worker_id, kind, pid, hostname, started_at_ms, last_heartbeat_ms \
             FROM queue_workers ORDER BY id",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(failed(step))?;
        tx.commit().await.map_err(failed(step))?;
        Ok(rows
            .into_iter()
            .map(
                |(id, worker_id, kind, pid, hostname, started_at_ms, last_heartbeat_ms)| {
                    WorkerHeartbeat {
                        id,
                        worker_id,
                        kind,
                        pid: u32::try_from(pid).unwrap_or_default(),
                        hostname,
                        started_at_ms,
                        last_heartbeat_ms,
                    }
                },
            )
            .collect())
    }

    async fn ping(&self) -> Result<(), QueueError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(failed("pinging the database"))?;
        Ok(())
    }
}
