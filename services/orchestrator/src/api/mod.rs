//! The public gRPC API. Handlers validate, call the store and queue, and map errors once, through
//! [`crate::error::ApiError`].

mod admin;
mod info;
mod runs;
mod text;
mod workflows;

use std::{sync::Arc, time::Instant};

use baton_queue::Queue;
use baton_store::Store;

use crate::OrchestratorConfig;

/// State shared by every handler.
pub struct Api {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) queue: Arc<dyn Queue>,
    pub(crate) config: OrchestratorConfig,
    /// Run event streams for `WatchRun`: replay, then live.
    pub(crate) events: baton_events::RunEvents,
    pub(crate) started: Instant,
    /// Records StartRun calls in batches.
    pub(crate) starter: crate::starter::RunStarter,
    /// Workflows looked up by exact version; a registered version never changes.
    pub(crate) versions:
        std::sync::Mutex<std::collections::HashMap<String, baton_store::StoredWorkflow>>,
}

/// Most workflow versions kept in memory.
const VERSION_CACHE_LIMIT: usize = 10_000;

impl Api {
    /// A registered workflow; exact versions come from memory after the first look-up.
    pub(crate) async fn find_workflow(
        &self,
        r: &baton_workflow::WorkflowRef,
    ) -> Result<Option<baton_store::StoredWorkflow>, crate::error::ApiError> {
        let key = r.to_string();
        if r.version.is_some()
            && let Some(w) = self
                .versions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
        {
            return Ok(Some(w.clone()));
        }
        let found = self
            .store
            .get_workflow(&r.owner, &r.name, r.version)
            .await?;
        if let Some(w) = &found {
            let mut cache = self.versions.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= VERSION_CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(w.workflow_ref(), w.clone());
        }
        Ok(found)
    }
}

/// Page sizes: 0 means the default; negative is an error.
pub(crate) fn page_size(size: i32) -> Result<u32, crate::error::ApiError> {
    u32::try_from(size).map_err(|_| {
        crate::error::ApiError::InvalidArgument("page_size: must not be negative".into())
    })
}
