//! Baton's work queues: the runner inbox, one job stream per step kind, timers, the run event log,
//! cancel notices and dead letters. Each side of the system sees only the role trait it needs
//! ([`RunnerInbox`], [`JobStream`], [`Timers`], [`EventLog`], [`CancelNotices`], [`QueueAdmin`]),
//! so a worker cannot touch the runner's inbox by accident and every backend (Redis Streams, or
//! the embedded one) passes one conformance suite per role.

mod embedded;
mod names;
mod presence;
mod redis;

use std::time::Duration;

use async_trait::async_trait;
use baton_proto::v1;

pub use embedded::{SqliteQueue, SqliteQueueConfig};
pub use names::StreamName;
pub use presence::JobKey;
pub use redis::{RedisKeys, RedisQueue, RedisQueueConfig};

/// A message taken from a stream, to acknowledge once handled.
#[derive(Debug, Clone)]
pub struct Delivery<T> {
    /// The entry's id in its stream: opaque, only handed back to the queue.
    pub id: String,
    /// The decoded message, or why it could not be decoded.
    pub message: Result<T, String>,
    /// The raw payload, for the dead-letter stream.
    pub payload: Vec<u8>,
    /// How many times the entry was delivered, this time included.
    pub deliveries: u32,
}

/// A position in the event log: opaque, only handed back to [`EventLog::read_events`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct EventCursor(String);

impl EventCursor {
    /// Before the oldest event the log still holds.
    pub fn start() -> Self {
        Self(String::new())
    }

    /// Whether this is [`EventCursor::start`].
    pub fn is_start(&self) -> bool {
        self.0.is_empty()
    }

    /// For backends: wraps a backend's own position.
    pub fn from_backend(position: impl Into<String>) -> Self {
        Self(position.into())
    }

    /// For backends: the position given to [`EventCursor::from_backend`] (empty for the start).
    pub fn as_backend(&self) -> &str {
        &self.0
    }
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
    /// Timers to remove unfired, exactly as [`RunnerInbox::dispatch`] set them: the deadline
    /// wake-ups of runs that ended in the batch, which would only wake a finished run.
    pub drop_timers: Vec<TimerEntry>,
}

/// Dead letters a backend keeps unless configured otherwise; beyond it the oldest go first, so
/// a flood of poison cannot fill the queue's memory or file.
pub const DEFAULT_DEAD_LETTERS_KEPT: u64 = 10_000;

/// What [`QueueAdmin::replay_dead_letter`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// The letter's payload was appended to `stream` as entry `entry_id` and the letter
    /// removed, in one step.
    Replayed {
        stream: StreamName,
        entry_id: String,
    },
    /// No dead letter has that id: it never had one, or it was replayed or trimmed since.
    NotFound,
    /// The letter names no stream work can go back to (`stream`, as the letter has it); it is
    /// left where it is.
    Unreplayable { stream: String },
}

/// Length and pending count of one stream, for operators.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct StreamStats {
    /// The stream's name: `runner`, `jobs:<kind>`, `dead` (see [`StreamName`]).
    pub name: String,
    pub length: u64,
    /// Delivered but not acknowledged.
    pub pending: u64,
}

/// Why a queue operation failed. The backend's own error text is kept for logs; the variants say
/// what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue could not be reached or refused the operation; retrying later may succeed.
    #[error("the queue is unavailable: {0}")]
    Unavailable(String),
    /// The queue holds something it cannot read back.
    #[error("the queue holds corrupt data: {0}")]
    Corrupt(String),
}

/// A stream of messages that is boxed, so the traits do not leak a stream crate's types.
pub type BoxStream<T> = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = T> + Send>>;

/// Every blocking read (`read_runner`, `read_jobs`, `read_events`) returns as soon as something
/// arrives, or empty once `block` has passed; `block` must be more than zero (backends differ on
/// what zero means, and no caller needs it).
///
/// The runner's side: its inbox (run starts, cancels, job reports, wake-ups), read by every runner
/// replica in one consumer group, and what a batch sends out around its commit.
#[async_trait]
pub trait RunnerInbox: Send + Sync + 'static {
    /// Appends messages to the inbox.
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
    /// Moves an inbox entry (`letter.entry_id`) to the dead-letter stream and acknowledges it.
    async fn dead_letter_runner(&self, letter: v1::DeadLetter) -> Result<(), QueueError>;
    /// Per job of `kind` in `jobs`, whether the queue still holds it: on its stream (waiting, or
    /// taken by a worker and not acknowledged) or as a report about it in the runner inbox. Reads
    /// the stream and the inbox through, so it is for the reconciler's rare questions, not the
    /// hot path.
    async fn jobs_present(&self, kind: &str, jobs: &[JobKey]) -> Result<Vec<bool>, QueueError>;
}

/// A worker's side: the job stream of each kind it serves, read in one consumer group per kind.
#[async_trait]
pub trait JobStream: Send + Sync + 'static {
    /// Makes the job streams of `kinds` ready, so jobs enqueued before the first read are kept
    /// for the kind's workers.
    async fn join_kinds(&self, kinds: &[String]) -> Result<(), QueueError>;
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
    /// it works on them. Not a delivery. Only jobs `consumer` still holds are touched: one
    /// another worker reclaimed meanwhile stays with it. Returns how many were touched.
    async fn touch_jobs(
        &self,
        kind: &str,
        consumer: &str,
        ids: &[String],
    ) -> Result<usize, QueueError>;
    /// Sends workers' reports to the runner inbox and acknowledges the jobs they finished, in one
    /// step, so a job is acknowledged only once its result is on the inbox.
    async fn report(
        &self,
        kind: &str,
        messages: &[v1::RunnerMessage],
        ack: &[String],
    ) -> Result<(), QueueError>;
    /// Moves a job (`letter.entry_id` on `kind`'s stream) to the dead-letter stream and
    /// acknowledges it.
    async fn dead_letter_job(&self, kind: &str, letter: v1::DeadLetter) -> Result<(), QueueError>;
    /// Records that a worker is alive (readers drop stale entries).
    async fn worker_heartbeat(&self, heartbeat: &WorkerHeartbeat) -> Result<(), QueueError>;
}

/// Delayed wake-ups (retries, deadlines), set by [`RunnerInbox::dispatch`].
#[async_trait]
pub trait Timers: Send + Sync + 'static {
    /// Moves timers due at `now_ms` into the runner inbox, each exactly once.
    async fn fire_due_timers(&self, now_ms: i64, max: usize) -> Result<FiredTimers, QueueError>;
}

/// Every run event, in the order batches committed, for live watchers. Published by
/// [`RunnerInbox::complete_batch`]; capped, so a reader that falls far behind replays the store.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Events after `after`, oldest first, at most `max`, waiting up to `block` for the first.
    /// Each comes with the cursor to read on from.
    async fn read_events(
        &self,
        after: &EventCursor,
        max: usize,
        block: Duration,
    ) -> Result<Vec<(EventCursor, v1::RunEvent)>, QueueError>;
    /// The cursor after the newest event: reading from it returns only events published later.
    async fn tail(&self) -> Result<EventCursor, QueueError>;
}

/// Tells workers to stop a run's jobs.
#[async_trait]
pub trait CancelNotices: Send + Sync + 'static {
    async fn publish_cancel(&self, notice: &v1::CancelNotice) -> Result<(), QueueError>;
    /// Cancel notices as they are published from now on.
    async fn subscribe_cancels(&self) -> Result<BoxStream<v1::CancelNotice>, QueueError>;
}

/// What operators and health checks read.
#[async_trait]
pub trait QueueAdmin: Send + Sync + 'static {
    /// Length and pending count of the inbox, each job stream of `kinds` and the dead letters.
    async fn stats(&self, kinds: &[String]) -> Result<Vec<StreamStats>, QueueError>;
    /// Entries of the dead-letter stream, oldest first.
    async fn dead_letters(&self, max: usize) -> Result<Vec<v1::DeadLetter>, QueueError>;
    /// Up to `max` dead letters after the one with id `after` (from the oldest when `None`),
    /// oldest first, each with its id in the dead-letter stream: the id to page on, show and
    /// replay with. An id this queue never gave comes before nothing: the page is empty. A
    /// letter that cannot be decoded is listed with its raw bytes as payload, no stream, and why.
    async fn list_dead_letters(
        &self,
        after: Option<&str>,
        max: usize,
    ) -> Result<Vec<(String, v1::DeadLetter)>, QueueError>;
    /// The dead letter with id `id`, if the stream still holds it.
    async fn get_dead_letter(&self, id: &str) -> Result<Option<v1::DeadLetter>, QueueError>;
    /// Appends the letter's payload to the stream it came from (`letter.stream`: `runner` or
    /// `jobs:<kind>`) as a new entry, delivered afresh, and removes the letter, atomically: of
    /// two replays of one letter, one sends it and the other finds nothing.
    async fn replay_dead_letter(&self, id: &str) -> Result<Replay, QueueError>;
    /// Removes consumers idle for longer than `min_idle` that hold no pending entries (those of
    /// replicas that are gone) from the runner inbox's group and every job stream's group;
    /// returns them as `<stream>/<consumer>`. A consumer with pending entries is kept, since
    /// removing it would drop them; they are reclaimed first.
    async fn remove_idle_consumers(&self, min_idle: Duration) -> Result<Vec<String>, QueueError>;
    /// Workers whose last heartbeat is at most `max_age_ms` old; older entries are removed.
    async fn live_workers(
        &self,
        now_ms: i64,
        max_age_ms: i64,
    ) -> Result<Vec<WorkerHeartbeat>, QueueError>;
    /// Whether the queue answers.
    async fn ping(&self) -> Result<(), QueueError>;
}

/// What a runner replica needs: its inbox and the timers.
pub trait RunnerQueue: RunnerInbox + Timers {}

impl<T> RunnerQueue for T where T: RunnerInbox + Timers {}

/// What a worker process needs: its job streams and the cancel notices.
pub trait WorkerQueue: JobStream + CancelNotices {}

impl<T> WorkerQueue for T where T: JobStream + CancelNotices {}

/// Every role at once: what a backend implements and what a process that hosts several services
/// holds. Services narrow it (`Arc<dyn Queue>` upcasts to any role) to the roles they use.
pub trait Queue: RunnerQueue + WorkerQueue + EventLog + QueueAdmin {}

impl<T> Queue for T where T: RunnerQueue + WorkerQueue + EventLog + QueueAdmin {}
