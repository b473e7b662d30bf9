//! The queue roles on Redis Streams. Work streams are trimmed as entries are acknowledged (XACK then
//! XDEL), so a stream's length is its backlog; the events and dead-letter streams are capped
//! instead.

use std::{collections::HashMap, time::Duration};

use async_trait::async_trait;
use baton_proto::v1;
use prost::Message;
use redis::{
    AsyncConnectionConfig, Client, RedisError, Script, Value,
    aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection},
    streams::{StreamClaimReply, StreamId, StreamPendingCountReply, StreamReadReply},
};
use tokio::sync::Mutex;
use tokio_stream::StreamExt;

mod consumers;
mod dead_letters;
mod keys;
mod presence;

pub use keys::RedisKeys;
use keys::{RUNNER_GROUP, WORKER_GROUP};

use crate::{
    BatchOutcome, BoxStream, CancelNotices, DEFAULT_DEAD_LETTERS_KEPT, Delivery, EventCursor,
    EventLog, FiredTimers, JobStream, QueueAdmin, QueueError, Replay, RunnerInbox, StreamName,
    StreamStats, TimerEntry, Timers, WorkerHeartbeat,
};

impl From<RedisError> for QueueError {
    fn from(e: RedisError) -> Self {
        QueueError::Unavailable(format!("redis: {e}"))
    }
}

/// The stream entry field holding a message's protobuf bytes.
const FIELD: &str = "d";

/// Moves due timers into the runner inbox in one atomic step, so a timer is never lost between
/// leaving the set and reaching the inbox, and never fires twice.
const FIRE_TIMERS: &str = r#"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, member in ipairs(due) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('XADD', KEYS[2], '*', 'd', member)
end
local next = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if next[2] then
  return {#due, next[2]}
end
return {#due, -1}
"#;

/// Resets the idle time of the entries (ARGV[3..]) that `consumer` (ARGV[2]) still owns in the
/// group (ARGV[1]), atomically: an entry another consumer reclaimed meanwhile stays with it, so a
/// worker that was paused past the visibility timeout cannot take its job back by touching it.
const TOUCH_OWNED: &str = r#"
local touched = 0
for i = 3, #ARGV do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if pending[1] and pending[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    touched = touched + 1
  end
end
return touched
"#;

#[derive(Clone, Debug)]
pub struct RedisQueueConfig {
    pub url: String,
    /// Key prefix; see [`RedisKeys`].
    pub prefix: String,
    /// Approximate cap on the events stream.
    pub events_max_len: usize,
    /// Approximate cap on the dead-letter stream (default [`DEFAULT_DEAD_LETTERS_KEPT`], as the
    /// embedded queue keeps): each append trims the oldest whole nodes beyond it.
    pub dead_letters_max_len: u64,
}

impl RedisQueueConfig {
    pub fn new(url: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: prefix.into(),
            events_max_len: 100_000,
            dead_letters_max_len: DEFAULT_DEAD_LETTERS_KEPT,
        }
    }
}

/// Redis Streams queue. Cheap to clone? No: share it in an `Arc`.
pub struct RedisQueue {
    client: Client,
    conn: ConnectionManager,
    /// Connections for blocking reads, which would stall every other command on a shared
    /// multiplexed connection.
    blocking: Mutex<Vec<MultiplexedConnection>>,
    keys: RedisKeys,
    config: RedisQueueConfig,
    fire_timers: Script,
    touch_owned: Script,
    replay_letter: Script,
    remove_idle: Script,
}

impl RedisQueue {
    pub async fn connect(config: RedisQueueConfig) -> Result<Self, QueueError> {
        let client = Client::open(config.url.as_str())?;
        let manager_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(3);
        let conn = ConnectionManager::new_with_config(client.clone(), manager_config).await?;
        Ok(Self {
            client,
            conn,
            blocking: Mutex::new(Vec::new()),
            keys: RedisKeys::new(config.prefix.clone()),
            config,
            fire_timers: Script::new(FIRE_TIMERS),
            touch_owned: Script::new(TOUCH_OWNED),
            replay_letter: dead_letters::replay_script(),
            remove_idle: consumers::remove_idle_script(),
        })
    }

    pub fn keys(&self) -> &RedisKeys {
        &self.keys
    }

    async fn blocking_conn(&self) -> Result<MultiplexedConnection, RedisError> {
        if let Some(conn) = self.blocking.lock().await.pop() {
            return Ok(conn);
        }
        let config = AsyncConnectionConfig::new()
            .set_response_timeout(None)
            .set_connection_timeout(Some(Duration::from_secs(5)));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    /// Runs a blocking command on a pooled connection, returning the connection only on success
    /// (a failed one may be broken).
    async fn blocking_query<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, RedisError> {
        let mut conn = self.blocking_conn().await?;
        let value: T = cmd.query_async(&mut conn).await?;
        self.blocking.lock().await.push(conn);
        Ok(value)
    }

    async fn read_group<T: Message + Default>(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        max: usize,
        block: Duration,
    ) -> Result<Vec<Delivery<T>>, QueueError> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(group)
            .arg(consumer)
            .arg("COUNT")
            .arg(max)
            .arg("BLOCK")
            .arg(block.as_millis() as u64)
            .arg("STREAMS")
            .arg(stream)
            .arg(">");
        let reply: Option<StreamReadReply> = match self.blocking_query(&cmd).await {
            Err(e) if is_nogroup(&e) => {
                self.create_group(stream, group).await?;
                self.blocking_query(&cmd).await?
            }
            other => other?,
        };
        Ok(reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .map(|entry| decode(entry, 1))
            .collect())
    }

    async fn create_group(&self, stream: &str, group: &str) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        let created: Result<(), RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(stream)
            .arg(group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Err(e) if e.code() != Some("BUSYGROUP") => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn reclaim<T: Message + Default>(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        max: usize,
    ) -> Result<Vec<Delivery<T>>, QueueError> {
        let mut conn = self.conn.clone();
        let idle_ms = min_idle.as_millis() as u64;
        let pending: Result<StreamPendingCountReply, RedisError> = redis::cmd("XPENDING")
            .arg(stream)
            .arg(group)
            .arg("IDLE")
            .arg(idle_ms)
            .arg("-")
            .arg("+")
            .arg(max)
            .query_async(&mut conn)
            .await;
        let pending = match pending {
            Err(e) if is_nogroup(&e) => return Ok(Vec::new()),
            other => other?,
        };
        if pending.ids.is_empty() {
            return Ok(Vec::new());
        }
        let counts: HashMap<String, usize> = pending
            .ids
            .iter()
            .map(|p| (p.id.clone(), p.times_delivered))
            .collect();
        let mut cmd = redis::cmd("XCLAIM");
        cmd.arg(stream).arg(group).arg(consumer).arg(idle_ms);
        for p in &pending.ids {
            cmd.arg(&p.id);
        }
        // Redis 7 leaves out entries deleted meanwhile (and drops them from the pending list).
        let claimed: StreamClaimReply = cmd.query_async(&mut conn).await?;
        Ok(claimed
            .ids
            .into_iter()
            .map(|entry| {
                let deliveries = counts.get(&entry.id).copied().unwrap_or(1) + 1;
                decode(entry, deliveries as u32)
            })
            .collect())
    }

    /// Moves `letter.entry_id` of `stream` to the dead-letter stream and acknowledges it, in one
    /// atomic step.
    async fn dead_letter(
        &self,
        stream: &str,
        group: &str,
        letter: v1::DeadLetter,
    ) -> Result<(), QueueError> {
        let id = letter.entry_id.clone();
        let mut pipe = redis::pipe();
        pipe.atomic();
        self.xadd_dead(&mut pipe, &letter);
        ack_and_delete(&mut pipe, stream, group, &[id]);
        pipe.query_async::<()>(&mut self.conn.clone()).await?;
        Ok(())
    }
}

impl RedisQueue {
    /// Appends a dead letter, trimming the stream to about its cap.
    fn xadd_dead(&self, pipe: &mut redis::Pipeline, letter: &v1::DeadLetter) {
        pipe.cmd("XADD")
            .arg(self.keys.dead())
            .arg("MAXLEN")
            .arg("~")
            .arg(self.config.dead_letters_max_len.max(1))
            .arg("*")
            .arg(FIELD)
            .arg(letter.encode_to_vec())
            .ignore();
    }
}

/// A timer's member in the timers sorted set: the inbox message it turns into.
fn timer_member(timer: &TimerEntry) -> Vec<u8> {
    v1::RunnerMessage {
        message: Some(v1::runner_message::Message::WakeRun(timer.wake.clone())),
    }
    .encode_to_vec()
}

fn is_nogroup(e: &RedisError) -> bool {
    e.code() == Some("NOGROUP")
}

fn decode<T: Message + Default>(mut entry: StreamId, deliveries: u32) -> Delivery<T> {
    let (payload, message) = match entry.map.remove(FIELD) {
        Some(Value::BulkString(bytes)) => {
            let message =
                T::decode(bytes.as_slice()).map_err(|e| format!("undecodable message: {e}"));
            (bytes, message)
        }
        Some(_) => (Vec::new(), Err(format!("the `{FIELD}` field is not bytes"))),
        None => (Vec::new(), Err(format!("entry has no `{FIELD}` field"))),
    };
    Delivery {
        id: entry.id,
        message,
        payload,
        deliveries,
    }
}

fn xadd(pipe: &mut redis::Pipeline, stream: &str, payload: Vec<u8>) {
    pipe.cmd("XADD")
        .arg(stream)
        .arg("*")
        .arg(FIELD)
        .arg(payload)
        .ignore();
}

fn ack_and_delete(pipe: &mut redis::Pipeline, stream: &str, group: &str, ids: &[String]) {
    if ids.is_empty() {
        return;
    }
    pipe.cmd("XACK").arg(stream).arg(group).arg(ids).ignore();
    pipe.cmd("XDEL").arg(stream).arg(ids).ignore();
}

#[async_trait]
impl RunnerInbox for RedisQueue {
    async fn send_to_runner(&self, messages: &[v1::RunnerMessage]) -> Result<(), QueueError> {
        if messages.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        let inbox = self.keys.runner();
        for m in messages {
            xadd(&mut pipe, &inbox, m.encode_to_vec());
        }
        pipe.query_async::<()>(&mut self.conn.clone()).await?;
        Ok(())
    }

    async fn read_runner(
        &self,
        consumer: &str,
        max: usize,
        block: Duration,
    ) -> Result<Vec<Delivery<v1::RunnerMessage>>, QueueError> {
        self.read_group(&self.keys.runner(), RUNNER_GROUP, consumer, max, block)
            .await
    }

    async fn reclaim_runner(
        &self,
        consumer: &str,
        min_idle: Duration,
        max: usize,
    ) -> Result<Vec<Delivery<v1::RunnerMessage>>, QueueError> {
        self.reclaim(&self.keys.runner(), RUNNER_GROUP, consumer, min_idle, max)
            .await
    }

    async fn dispatch(&self, jobs: &[v1::Job], timers: &[TimerEntry]) -> Result<(), QueueError> {
        if jobs.is_empty() && timers.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for job in jobs {
            xadd(&mut pipe, &self.keys.jobs(&job.kind), job.encode_to_vec());
        }
        let timer_key = self.keys.timers();
        for t in timers {
            pipe.cmd("ZADD")
                .arg(&timer_key)
                .arg(t.due_ms)
                .arg(timer_member(t))
                .ignore();
        }
        pipe.query_async::<()>(&mut self.conn.clone()).await?;
        Ok(())
    }

    async fn complete_batch(&self, outcome: BatchOutcome) -> Result<(), QueueError> {
        let mut pipe = redis::pipe();
        let events = self.keys.events();
        for e in &outcome.events {
            pipe.cmd("XADD")
                .arg(&events)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.config.events_max_len)
                .arg("*")
                .arg(FIELD)
                .arg(e.encode_to_vec())
                .ignore();
        }
        let channel = self.keys.cancel_channel();
        for c in &outcome.cancels {
            pipe.cmd("PUBLISH")
                .arg(&channel)
                .arg(c.encode_to_vec())
                .ignore();
        }
        for d in &outcome.dead_letters {
            self.xadd_dead(&mut pipe, d);
        }
        if !outcome.drop_timers.is_empty() {
            let members: Vec<Vec<u8>> = outcome.drop_timers.iter().map(timer_member).collect();
            pipe.cmd("ZREM")
                .arg(self.keys.timers())
                .arg(members)
                .ignore();
        }
        ack_and_delete(&mut pipe, &self.keys.runner(), RUNNER_GROUP, &outcome.ack);
        pipe.query_async::<()>(&mut self.conn.clone()).await?;
        Ok(())
    }

    async fn dead_letter_runner(&self, letter: v1::DeadLetter) -> Result<(), QueueError> {
        self.dead_letter(&self.keys.runner(), RUNNER_GROUP, letter)
            .await
    }

    async fn jobs_present(
        &self,
        kind: &str,
        jobs: &[crate::JobKey],
    ) -> Result<Vec<bool>, QueueError> {
        self.find_jobs(kind, jobs).await
    }
}

#[async_trait]
impl JobStream for RedisQueue {
    async fn join_kinds(&self, kinds: &[String]) -> Result<(), QueueError> {
        for kind in kinds {
            self.create_group(&self.keys.jobs(kind), WORKER_GROUP)
                .await?;
        }
        Ok(())
    }

    async fn read_jobs(
        &self,
        kind: &str,
        consumer: &str,
        max: usize,
        block: Duration,
    ) -> Result<Vec<Delivery<v1::Job>>, QueueError> {
        self.read_group(&self.keys.jobs(kind), WORKER_GROUP, consumer, max, block)
            .await
    }

    async fn reclaim_jobs(
        &self,
        kind: &str,
        consumer: &str,
        min_idle: Duration,
        max: usize,
    ) -> Result<Vec<Delivery<v1::Job>>, QueueError> {
        self.reclaim(&self.keys.jobs(kind), WORKER_GROUP, consumer, min_idle, max)
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
        let touched: usize = self
            .touch_owned
            .key(self.keys.jobs(kind))
            .arg(WORKER_GROUP)
            .arg(consumer)
            .arg(ids)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(touched)
    }

    async fn report(
        &self,
        kind: &str,
        messages: &[v1::RunnerMessage],
        ack: &[String],
    ) -> Result<(), QueueError> {
        if messages.is_empty() && ack.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        let inbox = self.keys.runner();
        for m in messages {
            xadd(&mut pipe, &inbox, m.encode_to_vec());
        }
        ack_and_delete(&mut pipe, &self.keys.jobs(kind), WORKER_GROUP, ack);
        pipe.query_async::<()>(&mut self.conn.clone()).await?;
        Ok(())
    }

    async fn dead_letter_job(&self, kind: &str, letter: v1::DeadLetter) -> Result<(), QueueError> {
        self.dead_letter(&self.keys.jobs(kind), WORKER_GROUP, letter)
            .await
    }

    async fn worker_heartbeat(&self, heartbeat: &WorkerHeartbeat) -> Result<(), QueueError> {
        let json = serde_json::to_string(heartbeat).unwrap_or_default();
        redis::cmd("HSET")
            .arg(self.keys.workers())
            .arg(&heartbeat.id)
            .arg(json)
            .query_async::<()>(&mut self.conn.clone())
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Timers for RedisQueue {
    async fn fire_due_timers(&self, now_ms: i64, max: usize) -> Result<FiredTimers, QueueError> {
        let (moved, next): (usize, String) = self
            .fire_timers
            .key(self.keys.timers())
            .key(self.keys.runner())
            .arg(now_ms)
            .arg(max)
            .invoke_async(&mut self.conn.clone())
            .await?;
        let next_due_ms = next
            .parse::<f64>()
            .ok()
            .filter(|n| *n >= 0.0)
            .map(|n| n as i64);
        Ok(FiredTimers { moved, next_due_ms })
    }
}

#[async_trait]
impl EventLog for RedisQueue {
    async fn read_events(
        &self,
        after: &EventCursor,
        max: usize,
        block: Duration,
    ) -> Result<Vec<(EventCursor, v1::RunEvent)>, QueueError> {
        let mut after = match after.as_backend() {
            "" => "0-0".to_owned(),
            id => id.to_owned(),
        };
        let deadline = tokio::time::Instant::now() + block;
        loop {
            // BLOCK 0 would wait forever.
            let wait = deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .max(Duration::from_millis(1));
            let mut cmd = redis::cmd("XREAD");
            cmd.arg("COUNT")
                .arg(max)
                .arg("BLOCK")
                .arg(wait.as_millis() as u64)
                .arg("STREAMS")
                .arg(self.keys.events())
                .arg(&after);
            let reply: Option<StreamReadReply> = self.blocking_query(&cmd).await?;
            let mut events = Vec::new();
            let mut read = 0;
            for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
                read += 1;
                let d: Delivery<v1::RunEvent> = decode(entry, 1);
                after.clone_from(&d.id);
                match d.message {
                    Ok(event) => events.push((EventCursor::from_backend(d.id), event)),
                    // Watchers replay the store, the truth, for whatever this entry said.
                    Err(e) => {
                        tracing::warn!(entry = %d.id, error = %e, "skipping an undecodable run event")
                    }
                }
            }
            // Only undecodable entries: read on past them rather than hand back nothing and be
            // asked for them again.
            if !events.is_empty() || read == 0 || tokio::time::Instant::now() >= deadline {
                return Ok(events);
            }
        }
    }

    async fn tail(&self) -> Result<EventCursor, QueueError> {
        let newest: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(self.keys.events())
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(EventCursor::from_backend(
            newest
                .ids
                .into_iter()
                .next()
                .map_or_else(|| "0-0".to_owned(), |e| e.id),
        ))
    }
}

#[async_trait]
impl CancelNotices for RedisQueue {
    async fn publish_cancel(&self, notice: &v1::CancelNotice) -> Result<(), QueueError> {
        redis::cmd("PUBLISH")
            .arg(self.keys.cancel_channel())
            .arg(notice.encode_to_vec())
            .query_async::<()>(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    async fn subscribe_cancels(&self) -> Result<BoxStream<v1::CancelNotice>, QueueError> {
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(self.keys.cancel_channel()).await?;
        let stream = pubsub.into_on_message().filter_map(|msg| {
            let payload: Vec<u8> = msg.get_payload().ok()?;
            v1::CancelNotice::decode(payload.as_slice()).ok()
        });
        Ok(Box::pin(stream))
    }
}

#[async_trait]
impl QueueAdmin for RedisQueue {
    async fn stats(&self, kinds: &[String]) -> Result<Vec<StreamStats>, QueueError> {
        let mut streams = vec![(StreamName::Runner, Some(RUNNER_GROUP))];
        streams.extend(
            kinds
                .iter()
                .map(|k| (StreamName::jobs(k.as_str()), Some(WORKER_GROUP))),
        );
        streams.push((StreamName::Dead, None));
        let mut conn = self.conn.clone();
        let mut out = Vec::with_capacity(streams.len());
        for (name, group) in streams {
            let stream = self.keys.stream(&name);
            let length: u64 = redis::cmd("XLEN")
                .arg(&stream)
                .query_async(&mut conn)
                .await?;
            let pending = match group {
                Some(group) => {
                    let summary: Result<Value, RedisError> = redis::cmd("XPENDING")
                        .arg(&stream)
                        .arg(group)
                        .query_async(&mut conn)
                        .await;
                    match summary {
                        Ok(Value::Array(items)) => match items.first() {
                            Some(Value::Int(n)) => *n as u64,
                            _ => 0,
                        },
                        _ => 0,
                    }
                }
                None => 0,
            };
            out.push(StreamStats {
                name: name.to_string(),
                length,
                pending,
            });
        }
        Ok(out)
    }

    async fn dead_letters(&self, max: usize) -> Result<Vec<v1::DeadLetter>, QueueError> {
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(self.keys.dead())
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(max)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(reply
            .ids
            .into_iter()
            .filter_map(|e| decode::<v1::DeadLetter>(e, 1).message.ok())
            .collect())
    }

    async fn list_dead_letters(
        &self,
        after: Option<&str>,
        max: usize,
    ) -> Result<Vec<(String, v1::DeadLetter)>, QueueError> {
        self.list_dead(after, max).await
    }

    async fn get_dead_letter(&self, id: &str) -> Result<Option<v1::DeadLetter>, QueueError> {
        self.get_dead(id).await
    }

    async fn replay_dead_letter(&self, id: &str) -> Result<Replay, QueueError> {
        self.replay_dead(id).await
    }

    async fn remove_idle_consumers(&self, min_idle: Duration) -> Result<Vec<String>, QueueError> {
        self.remove_idle(min_idle).await
    }

    async fn live_workers(
        &self,
        now_ms: i64,
        max_age_ms: i64,
    ) -> Result<Vec<WorkerHeartbeat>, QueueError> {
        let mut conn = self.conn.clone();
        let all: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys.workers())
            .query_async(&mut conn)
            .await?;
        let mut live = Vec::new();
        let mut stale = Vec::new();
        for (id, json) in all {
            match serde_json::from_str::<WorkerHeartbeat>(&json) {
                Ok(hb) if now_ms - hb.last_heartbeat_ms <= max_age_ms => live.push(hb),
                _ => stale.push(id),
            }
        }
        if !stale.is_empty() {
            redis::cmd("HDEL")
                .arg(self.keys.workers())
                .arg(&stale)
                .query_async::<()>(&mut conn)
                .await?;
        }
        live.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(live)
    }

    async fn ping(&self) -> Result<(), QueueError> {
        redis::cmd("PING")
            .query_async::<()>(&mut self.conn.clone())
            .await?;
        Ok(())
    }
}
