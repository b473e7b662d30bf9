//! Baton's work queues. Jobs, results, commands and run events travel as protobuf messages on
//! Redis Streams with consumer groups; every service reaches them through the [`JobQueue`] trait so
//! an in-process queue can stand in for one-process dev mode.

mod keys;
mod redis_queue;

use std::time::Duration;

use async_trait::async_trait;
use baton_proto::v1;

pub use keys::Keys;
pub use redis_queue::{RedisQueue, RedisQueueConfig};

/// A message taken from a stream, to acknowledge once handled.
#[derive(Debug, Clone)]
pub struct Delivery<T> {
    /// The stream entry id.
    pub id: String,
    /// The decoded message, or why it could not be decoded.
    pub message: Result<T, String>,
    /// The raw payload, for the dead-letter stream.
    pub payload: Vec<u8>,
    /// How many times the entry was delivered, when known.
    pub deliveries: u32,
}

/// A wake-up to deliver to the runner inbox at `due_ms` (Unix milliseconds).
#[derive(Debug, Clone, PartialEq)]
pub struct TimerEntry {
    pub due_ms: i64,
    pub wake: v1::WakeRunCommand,
}

/// A worker's periodic sign of life.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WorkerHeartbeat {
    /// `<worker id>:<kind>`.
    pub id: String,
    pub worker_id: String,
    pub kind: String,
    pub pid: u32,
    pub hostname: String,
    /// Unix milliseconds.
    pub started_at_ms: i64,
    pub last_heartbeat_ms: i64,
}

/// What firing timers did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FiredTimers {
    /// Timers moved to the inbox.
    pub moved: usize,
    /// When the earliest remaining timer is due (Unix ms), if any.
    pub next_due_ms: Option<i64>,
}

/// What a runner batch sends once its transaction committed.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    pub events: Vec<v1::RunEvent>,
    pub cancels: Vec<v1::CancelNotice>,
    pub dead_letters: Vec<v1::DeadLetter>,
    /// Runner inbox entries to acknowledge.
    pub ack: Vec<String>,
}

/// Lengths of the queues, for operators.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct StreamStats {
    /// The Redis key.
    pub stream: String,
    /// The stream's name without the key prefix: `runner`, `jobs:<kind>`, `dead`.
    pub name: String,
    pub length: u64,
    /// Delivered but not acknowledged.
    pub pending: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("redis error: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Every queue operation Baton's services use.
#[async_trait]
pub trait JobQueue: Send + Sync + 'static {
    /// Creates the consumer groups of the runner inbox and of each kind's job stream.
    async fn ensure_groups(&self, kinds: &[String]) -> Result<(), QueueError>;

    /// Appends messages to the runner inbox.
    async fn send_to_runner(&self, messages: &[v1::RunnerMessage]) -> Result<(), QueueError>;
    /// Takes up to `max` inbox messages for `consumer`, waiting up to `block` for the first.
    async fn read_runner(
        &self,
        consumer: &str,
        max: usize,
        block: Duration,
    ) -> Result<Vec<Delivery<v1::RunnerMessage>>, QueueError>;
    /// Takes over inbox messages another runner took and left unacknowledged for `min_idle`.
    async fn reclaim_runner(
        &self,
        consumer: &str,
        min_idle: Duration,
        max: usize,
    ) -> Result<Vec<Delivery<v1::RunnerMessage>>, QueueError>;
    /// Enqueues jobs on their kinds' streams and sets timers, in one round trip.
    async fn dispatch(&self, jobs: &[v1::Job], timers: &[TimerEntry]) -> Result<(), QueueError>;
    /// Publishes a committed batch's events, cancel notices and dead letters, and acknowledges its
    /// inbox entries, in one round trip.
    async fn complete_batch(&self, outcome: BatchOutcome) -> Result<(), QueueError>;
    /// Moves due timers into the runner inbox atomically.
    async fn fire_due_timers(&self, now_ms: i64, max: usize) -> Result<FiredTimers, QueueError>;

    /// Takes up to `max` jobs of `kind` for `consumer`, waiting up to `block` for the first.
    async fn read_jobs(
        &self,
        kind: &str,
        consumer: &str,
        max: usize,
        block: Duration,
    ) -> Result<Vec<Delivery<v1::Job>>, QueueError>;
    /// Takes over jobs of `kind` left unacknowledged for `min_idle`, with their delivery counts.
    async fn reclaim_jobs(
        &self,
        kind: &str,
        consumer: &str,
        min_idle: Duration,
        max: usize,
    ) -> Result<Vec<Delivery<v1::Job>>, QueueError>;
    /// Resets the idle time of jobs a worker is still running, so they are not reclaimed while
    /// it works on them.
    async fn touch_jobs(
        &self,
        kind: &str,
        consumer: &str,
        ids: &[String],
    ) -> Result<(), QueueError>;
    /// Sends workers' reports to the runner and acknowledges the jobs they finished, in one round
    /// trip, so a job is acknowledged only once its result is on the inbox.
    async fn report(
        &self,
        kind: &str,
        messages: &[v1::RunnerMessage],
        ack: &[String],
    ) -> Result<(), QueueError>;
    /// Moves an entry of `stream` (a job kind, or the runner inbox when `None`) to the dead-letter
    /// stream and acknowledges it.
    async fn dead_letter(
        &self,
        kind: Option<&str>,
        letter: v1::DeadLetter,
    ) -> Result<(), QueueError>;

    /// Tells workers to stop a run's jobs.
    async fn publish_cancel(&self, notice: &v1::CancelNotice) -> Result<(), QueueError>;
    /// Cancel notices as they are published.
    async fn subscribe_cancels(
        &self,
    ) -> Result<futures_core_stream::BoxStream<v1::CancelNotice>, QueueError>;

    /// Run events after stream id `after` (`$` for only new ones), waiting up to `block`.
    async fn read_events(
        &self,
        after: &str,
        max: usize,
        block: Duration,
    ) -> Result<Vec<(String, v1::RunEvent)>, QueueError>;

    /// Length and pending count of the inbox, each job stream and the dead-letter stream.
    async fn stats(&self, kinds: &[String]) -> Result<Vec<StreamStats>, QueueError>;
    /// Entries of the dead-letter stream, oldest first.
    async fn dead_letters(&self, max: usize) -> Result<Vec<v1::DeadLetter>, QueueError>;
    /// Records that a worker is alive (kept in a hash; readers drop stale entries).
    async fn worker_heartbeat(&self, heartbeat: &WorkerHeartbeat) -> Result<(), QueueError>;
    /// Workers whose last heartbeat is at most `max_age_ms` old; older entries are removed.
    async fn live_workers(
        &self,
        now_ms: i64,
        max_age_ms: i64,
    ) -> Result<Vec<WorkerHeartbeat>, QueueError>;
    async fn ping(&self) -> Result<(), QueueError>;
}

/// A boxed stream type, kept here so the trait does not leak a stream crate's types.
pub mod futures_core_stream {
    use std::pin::Pin;

    pub type BoxStream<T> = Pin<Box<dyn tokio_stream::Stream<Item = T> + Send>>;
}
