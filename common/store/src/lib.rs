//! Baton's source of truth. Every service reaches it through the [`Store`] trait: [`PgStore`]
//! (Postgres) in production, [`SqliteStore`] (one SQLite file) for one-process dev mode, and one
//! conformance suite holds both to the same behaviour.
//!
//! [`Store`] is every role at once; a caller that needs only one sees only its trait
//! ([`KeyStore`] for API keys), and an `Arc<dyn Store>` upcasts to it.
//!
//! The trait speaks in the engine's types ([`RunState`]) and the store's own ([`RunDetail`],
//! [`WorkerHost`], ...), not in wire messages; callers convert to and from the proto at their edge.
//!
//! What both backends share lives once at the top of the crate: page tokens (`page`), the
//! stored JSON of usage and hosts (`codec`), the attempt history (`attempts`), what a batch
//! writes back (`changes`) and the step cache (`step_cache`). `pg/` and `sqlite/` hold only
//! their SQL, their row decoding and what their database's errors mean.

mod attempts;
mod changes;
mod codec;
mod columns;
mod db_error;
mod error;
mod model;
mod page;
mod pg;
mod retention;
mod sqlite;
mod step_cache;

use async_trait::async_trait;
use baton_engine::RunState;
use uuid::Uuid;

pub use error::StoreError;
pub use model::{
    ApiKeyRecord, MaintenanceReport, NewApiKey, NewRun, NewWorkflow, Page, PageRequest,
    PutWorkflowOutcome, RunDetail, RunFilter, StatusCounts, StepLease, StoredEvent, StoredWorkflow,
    TableUpkeep, WorkerHost,
};
pub use pg::{PgStore, maintenance::LOCK_KEY as PG_MAINTENANCE_LOCK};
pub use sqlite::SqliteStore;

/// One run of [`Store::create_runs`]: the run, and whether it was created now.
pub type CreatedRun = Result<(RunState, bool), StoreError>;

/// Runs locked for change in one transaction. Mutate them through [`RunBatch::runs`], do what
/// must happen before the change is durable (enqueue jobs), then [`RunBatch::commit`]. Dropping
/// the batch rolls everything back.
///
/// On Postgres the runs are row-locked and [`RunBatch::write`] writes inside the transaction. On
/// SQLite the runs are held in process only: `write` just prepares the rows, and `commit` writes
/// them in one short transaction that first checks no other process changed the runs since they
/// were read; if one did, it returns [`StoreError::Conflict`] naming the run and writes nothing.
/// The runner then leaves the batch's messages unacknowledged, and they are retried.
///
/// The invariant the backends' step caches rely on: **every change to a run's steps adds an
/// event, and so moves the run's `last_sequence`.** A handle keeps the steps of the runs it
/// committed, keyed by that sequence, and a later batch that locks the run at the same sequence
/// takes them instead of reading them; a commit by any other handle has moved the sequence and
/// the cached steps are not used. A change to steps that recorded no event would be lost to a
/// handle that cached the run before it. The engine upholds this (each step transition pushes
/// an event); callers must not change steps by hand.
#[async_trait]
pub trait RunBatch: Send {
    /// The locked runs with their steps, in id order. Unknown ids are left out.
    fn runs(&mut self) -> &mut [RunState];
    /// Writes what changed so far, inside the transaction (on SQLite: prepares the rows for the
    /// commit); optional before [`RunBatch::commit`], for callers that have other work to overlap
    /// with the write. Runs must not change after.
    async fn write(&mut self) -> Result<(), StoreError>;
    /// Writes what changed (unless [`RunBatch::write`] did) and commits; returns the runs as
    /// changed, with their new events. On SQLite, [`StoreError::Conflict`] when another process
    /// changed one of the runs while the batch held them.
    async fn commit(self: Box<Self>) -> Result<Vec<RunState>, StoreError>;
}

/// API keys: recorded once, looked up by their public id, revoked but never deleted.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// Records a new key. An id already in use (by any tenant) is [`StoreError::Conflict`]
    /// naming the id, and nothing is written.
    async fn create_api_key(&self, key: NewApiKey) -> Result<ApiKeyRecord, StoreError>;
    /// The key with this id, revoked or not.
    async fn find_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError>;
    /// Keys of `tenant` (`None`: of every tenant), newest first; revoked ones only when
    /// `include_revoked`.
    async fn list_api_keys(
        &self,
        tenant: Option<&str>,
        include_revoked: bool,
    ) -> Result<Vec<ApiKeyRecord>, StoreError>;
    /// Marks the key revoked at `at_micros`, unless it already is: then it is left as it is and
    /// keeps the time it was first revoked. `None` when no key has this id.
    async fn revoke_api_key(
        &self,
        id: &str,
        at_micros: i64,
    ) -> Result<Option<ApiKeyRecord>, StoreError>;
    /// Keys not revoked, of every tenant.
    async fn count_active_api_keys(&self) -> Result<u64, StoreError>;
}

#[async_trait]
pub trait Store: KeyStore + Send + Sync + 'static {
    /// Brings the backend's schema up to date; safe to call at every start.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Stores a definition version in `wf.tenant`'s namespace. Same digest: unchanged; other
    /// digest: a conflict. Tenants do not collide: the same `owner/name@version` in two tenants
    /// is two workflows.
    async fn put_workflow(&self, wf: NewWorkflow) -> Result<PutWorkflowOutcome, StoreError>;
    /// One version of `tenant`'s workflow, or the latest when `version` is `None`.
    async fn get_workflow(
        &self,
        tenant: &str,
        owner: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<StoredWorkflow>, StoreError>;
    /// `tenant`'s workflows (of one owner, when given), by owner, name, then newest version.
    async fn list_workflows(
        &self,
        tenant: &str,
        owner: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<StoredWorkflow>, StoreError>;

    /// Records queued runs and their first events, in order. A run whose idempotency key is
    /// already used in its tenant comes back as that run and `false` (or a conflict when that
    /// run is of another workflow). The outer error fails the whole batch.
    async fn create_runs(&self, runs: Vec<NewRun>) -> Result<Vec<CreatedRun>, StoreError>;
    /// The run alone, without its steps or attempts: what a caller needs to know it exists, its
    /// status and its labels.
    async fn find_run(&self, id: Uuid) -> Result<Option<RunState>, StoreError>;
    /// The run with its steps, attempt history and the workers that ran them.
    async fn get_run(&self, id: Uuid) -> Result<Option<RunDetail>, StoreError>;
    async fn list_runs(
        &self,
        filter: RunFilter,
        page: PageRequest,
    ) -> Result<Page<RunState>, StoreError>;
    /// Events with a sequence greater than `after`, in order, at most `limit`.
    async fn list_events(
        &self,
        run_id: Uuid,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// Locks the runs (in id order, so concurrent batches cannot deadlock) and loads them with
    /// their steps. Other batches over the same runs wait until this one commits or drops.
    async fn lock_runs(&self, ids: &[Uuid]) -> Result<Box<dyn RunBatch>, StoreError>;

    /// Running runs that need a wake-up a timer may have lost: a retry due or the deadline
    /// passed more than `grace_micros` before `now_micros`; at most `limit`.
    async fn overdue_runs(
        &self,
        now_micros: i64,
        grace_micros: i64,
        limit: i64,
    ) -> Result<Vec<Uuid>, StoreError>;

    /// Runs still queued that were created before `created_before_micros`, oldest first, at
    /// most `limit`: the ones admission starts next, or whose start message was lost.
    async fn queued_runs(
        &self,
        created_before_micros: i64,
        limit: i64,
    ) -> Result<Vec<Uuid>, StoreError>;

    /// How many runs are running now (started, not ended), for admission control.
    async fn running_runs(&self) -> Result<u64, StoreError>;

    /// Steps in flight whose lease ran out by the database's clock, soonest expired first, at
    /// most `limit`: their jobs may be lost. Only steps of running runs.
    async fn expired_leases(&self, limit: i64) -> Result<Vec<StepLease>, StoreError>;

    /// Extends by `ttl_micros` (from the database's clock) the leases that are still the steps'
    /// current ones; a lease that moved on (the step was dispatched again or ended) is left as it
    /// is. Returns how many were extended. Not a change of run state: no event, no step cache.
    async fn renew_leases(&self, leases: &[StepLease], ttl_micros: i64) -> Result<u64, StoreError>;

    /// Runs and steps counted by status, for operators' raw signal.
    async fn status_counts(&self) -> Result<StatusCounts, StoreError>;

    /// Deletes up to `limit` runs that ended (completed, failed, cancelled, timed out) before
    /// `ended_before_micros`, oldest first, with everything that belongs to them (steps,
    /// attempt history, events), in one short transaction; returns how many. A queued or running
    /// run is never deleted. For retention, called in small batches.
    async fn delete_finished_runs(
        &self,
        ended_before_micros: i64,
        limit: i64,
    ) -> Result<u64, StoreError>;

    /// Refreshes the planner's statistics and clears dead rows of Baton's tables where the
    /// database server does not (Postgres with `autovacuum` off, server-wide or for a table),
    /// by the thresholds the server's own autovacuum would use. Without it, plans made while
    /// the tables were empty are kept as they grow, and every batch slows with history. One
    /// replica at a time does the work; the others return [`MaintenanceReport::held_elsewhere`].
    /// SQLite plans from its schema alone and needs none.
    async fn maintain(&self) -> Result<MaintenanceReport, StoreError>;

    /// Records worker processes and their hosts (once per worker; later facts replace earlier).
    async fn record_workers(&self, hosts: &[WorkerHost]) -> Result<(), StoreError>;

    /// Whether the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
}
