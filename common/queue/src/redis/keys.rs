//! Redis key names, all under one prefix so several deployments (or parallel tests) can share one
//! Redis without seeing each other.

use crate::StreamName;

/// The names of Baton's Redis streams, sets and channels under a prefix.
#[derive(Clone, Debug)]
pub struct RedisKeys {
    prefix: String,
}

/// The consumer group every runner replica joins on the inbox.
pub(crate) const RUNNER_GROUP: &str = "runners";
/// The consumer group every worker of a kind joins on its job stream.
pub(crate) const WORKER_GROUP: &str = "workers";

impl RedisKeys {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key of a stream of work.
    pub fn stream(&self, name: &StreamName) -> String {
        format!("{}:{name}", self.prefix)
    }

    pub fn runner(&self) -> String {
        self.stream(&StreamName::Runner)
    }

    pub fn jobs(&self, kind: &str) -> String {
        self.stream(&StreamName::jobs(kind))
    }

    pub fn dead(&self) -> String {
        self.stream(&StreamName::Dead)
    }

    /// Every run event, for live watchers.
    pub fn events(&self) -> String {
        format!("{}:events", self.prefix)
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
