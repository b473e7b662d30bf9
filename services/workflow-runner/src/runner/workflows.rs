//! Compiled definitions by tenant and `owner/name@version`, so a batch compiles each workflow
//! once per replica rather than once per message.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use baton_store::{Store, StoreError};
use baton_workflow::{CompiledWorkflow, WorkflowRef, compile_registered};

/// Most definitions kept compiled.
const WORKFLOW_CACHE_LIMIT: usize = 10_000;

/// What a run's workflow reference led to.
#[derive(Clone)]
pub(super) enum LoadedWorkflow {
    Ready(Arc<CompiledWorkflow>),
    /// The reference names nothing that can run (unparsable, not registered, not compilable);
    /// the run fails with this reason.
    Unusable(String),
}

/// Registered versions never change, so entries never go stale.
#[derive(Default)]
pub(super) struct WorkflowCache {
    /// By tenant and `owner/name@version`: each tenant has its own namespace.
    compiled: Mutex<HashMap<(String, String), Arc<CompiledWorkflow>>>,
}

impl WorkflowCache {
    /// The compiled workflow `workflow_ref` names in `tenant`'s namespace (a run's own tenant).
    /// A store that cannot answer is an error, so the batch is retried rather than its runs
    /// failed.
    pub(super) async fn get(
        &self,
        store: &dyn Store,
        tenant: &str,
        workflow_ref: &str,
    ) -> Result<LoadedWorkflow, StoreError> {
        let key = (tenant.to_owned(), workflow_ref.to_owned());
        if let Some(wf) = self
            .compiled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(LoadedWorkflow::Ready(wf.clone()));
        }
        let r: WorkflowRef = match workflow_ref.parse() {
            Ok(r) => r,
            Err(reason) => return Ok(LoadedWorkflow::Unusable(reason)),
        };
        let Some(stored) = store
            .get_workflow(tenant, &r.owner, &r.name, r.version)
            .await?
        else {
            return Ok(LoadedWorkflow::Unusable(format!(
                "workflow {workflow_ref} is not registered"
            )));
        };
        let compiled = match serde_json::from_value(stored.definition) {
            Ok(definition) => compile_registered(definition).map_err(|e| e.to_string()),
            Err(e) => Err(format!("workflow {workflow_ref}: stored definition: {e}")),
        };
        let compiled = match compiled {
            Ok(compiled) => Arc::new(compiled),
            Err(reason) => return Ok(LoadedWorkflow::Unusable(reason)),
        };
        let mut cache = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= WORKFLOW_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(key, compiled.clone());
        Ok(LoadedWorkflow::Ready(compiled))
    }
}
