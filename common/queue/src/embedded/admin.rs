//! What operators and health checks read from the embedded queue.

use async_trait::async_trait;
use baton_proto::v1;
use prost::Message;

use super::{SqliteQueue, failed, sql_int};
use crate::{QueueAdmin, QueueError, StreamName, StreamStats, WorkerHeartbeat};

/// A heartbeat row: id, worker id, kind, pid, hostname, started, last beat.
type HeartbeatRow = (String, String, String, i64, String, i64, i64);

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
