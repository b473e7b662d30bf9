//! A worker's side on SQLite: the job stream of each kind, reports to the runner and heartbeats.

use std::time::Duration;

use async_trait::async_trait;
use baton_proto::v1;
use prost::Message;

use super::{SqliteQueue, entry_ids, failed, now_us, sql};
use crate::{Delivery, JobStream, QueueError, StreamName, WorkerHeartbeat};

#[async_trait]
impl JobStream for SqliteQueue {
    /// Nothing to prepare: a stream's entries are kept from the first, whoever reads them.
    async fn join_kinds(&self, _kinds: &[String]) -> Result<(), QueueError> {
        Ok(())
    }

    async fn read_jobs(
        &self,
        kind: &str,
        consumer: &str,
        max: usize,
        block: Duration,
    ) -> Result<Vec<Delivery<v1::Job>>, QueueError> {
        self.read_stream(&StreamName::jobs(kind), consumer, max, block)
            .await
    }

    async fn reclaim_jobs(
        &self,
        kind: &str,
        consumer: &str,
        min_idle: Duration,
        max: usize,
    ) -> Result<Vec<Delivery<v1::Job>>, QueueError> {
        self.reclaim_stream(&StreamName::jobs(kind), consumer, min_idle, max)
            .await
    }

    async fn touch_jobs(
        &self,
        kind: &str,
        consumer: &str,
        ids: &[String],
    ) -> Result<usize, QueueError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let ids = entry_ids(ids)?;
        let touched = sqlx::query(
            "UPDATE queue_entries SET delivered_at_us = ?1 \
             WHERE stream = ?2 AND delivered_to = ?3 AND id IN (SELECT value FROM json_each(?4))",
        )
        .bind(now_us())
        .bind(StreamName::jobs(kind).to_string())
        .bind(consumer)
        .bind(sql::id_list(&ids))
        .execute(&self.pool)
        .await
        .map_err(failed("touching running jobs"))?;
        Ok(touched.rows_affected() as usize)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(kind, messages = messages.len(), ack = ack.len()))]
    async fn report(
        &self,
        kind: &str,
        messages: &[v1::RunnerMessage],
        ack: &[String],
    ) -> Result<(), QueueError> {
        if messages.is_empty() && ack.is_empty() {
            return Ok(());
        }
        let ack = entry_ids(ack)?;
        let inbox = StreamName::Runner.to_string();
        let entries: Vec<_> = messages
            .iter()
            .map(|m| (inbox.clone(), m.encode_to_vec()))
            .collect();
        let step = "reporting jobs to the runner";
        let mut tx = self.write(step).await?;
        sql::append(&mut tx, &entries).await.map_err(failed(step))?;
        sql::ack(&mut *tx, &StreamName::jobs(kind).to_string(), &ack)
            .await
            .map_err(failed(step))?;
        tx.commit().await.map_err(failed(step))?;
        if !entries.is_empty() {
            self.wakers.wake_stream(&inbox);
        }
        Ok(())
    }

    async fn dead_letter_job(&self, kind: &str, letter: v1::DeadLetter) -> Result<(), QueueError> {
        self.dead_letter(&StreamName::jobs(kind), letter).await
    }

    async fn worker_heartbeat(&self, heartbeat: &WorkerHeartbeat) -> Result<(), QueueError> {
        sqlx::query(
            "INSERT INTO queue_workers \
                 (id, worker_id, kind, pid, hostname, started_at_ms, last_heartbeat_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
             ON CONFLICT (id) DO UPDATE SET worker_id = excluded.worker_id, \
                 kind = excluded.kind, pid = excluded.pid, hostname = excluded.hostname, \
                 started_at_ms = excluded.started_at_ms, \
                 last_heartbeat_ms = excluded.last_heartbeat_ms",
        )
        .bind(&heartbeat.id)
        .bind(&heartbeat.worker_id)
        .bind(&heartbeat.kind)
        .bind(i64::from(heartbeat.pid))
        .bind(&heartbeat.hostname)
        .bind(heartbeat.started_at_ms)
        .bind(heartbeat.last_heartbeat_ms)
        .execute(&self.pool)
        .await
        .map_err(failed("recording a worker heartbeat"))?;
        Ok(())
    }
}
