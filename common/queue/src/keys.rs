//! Redis key names, all under one prefix so several deployments (or parallel tests) can share one
//! Redis without seeing each other.

/// The names of Baton's streams, sets and channels under a prefix.
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

/// The consumer group every runner replica joins on the inbox.
pub const RUNNER_GROUP: &str = "runners";
/// The consumer group every worker of a kind joins on its job stream.
pub const WORKER_GROUP: &str = "workers";

impl Keys {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The runner inbox: run starts, job reports, wake-ups.
    pub fn runner(&self) -> String {
        format!("{}:runner", self.prefix)
    }

    /// The job stream of a step kind.
    pub fn jobs(&self, kind: &str) -> String {
        format!("{}:jobs:{kind}", self.prefix)
    }

    /// Every run event, for live watchers.
    pub fn events(&self) -> String {
        format!("{}:events", self.prefix)
    }

    /// Messages that could not be processed.
    pub fn dead(&self) -> String {
        format!("{}:dead", self.prefix)
    }

    /// Pending wake-ups, scored by due time in Unix milliseconds.
    pub fn timers(&self) -> String {
        format!("{}:timers", self.prefix)
    }

    /// Hash of worker heartbeats.
    pub fn workers(&self) -> String {
        format!("{}:workers", self.prefix)
    }

    /// Pub/sub channel for cancel notices.
    pub fn cancel_channel(&self) -> String {
        format!("{}:cancel", self.prefix)
    }
}
