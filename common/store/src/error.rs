//! Store errors in Baton's words, coarse enough for the gRPC edge to map to a status. No variant
//! names a backend: each backend translates its driver's errors at its own edge.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or gave up for a reason that may pass: a refused or
    /// lost connection, no free connection in time, a lock not granted within the busy timeout,
    /// a deadlock or serialization victim, a full disk. The same call may succeed later.
    #[error("{0}")]
    Unavailable(String),
    /// The write collides with what is stored: an idempotency key taken by a run of another
    /// workflow, or a key that must be unique already in use.
    #[error("{0}")]
    Conflict(String),
    /// The database refused a value and will refuse it again: a check, not-null or foreign-key
    /// constraint, a value out of range or of the wrong type, a statement it does not accept.
    #[error("the database refused the write: {0}")]
    Rejected(String),
    /// What is stored cannot be read back as Baton's model: an unknown status, a column of the
    /// wrong type, JSON that does not parse, a damaged database file.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A page token this store did not issue.
    #[error("invalid page token")]
    BadPageToken,
    /// The schema could not be brought up to date (a migration failed, or the database holds a
    /// migration this build does not know, or one that changed since it was applied).
    #[error("migration failed: {0}")]
    Migrate(String),
}

impl StoreError {
    /// An API key id that another key already has.
    pub(crate) fn api_key_taken(id: &str) -> Self {
        Self::Conflict(format!("api key id `{id}` is already in use"))
    }
}
