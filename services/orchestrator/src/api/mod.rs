//! The public gRPC API. Handlers validate, call the store and queue, and map errors once, through
//! [`crate::error::ApiError`].

mod admin;
pub(crate) mod auth;
mod info;
mod runs;
mod text;
mod workflows;

use std::{sync::Arc, time::Instant};

use baton_queue::Queue;
use baton_store::Store;

use crate::{OrchestratorConfig, error::ApiError};

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
    /// Checks credentials; forgets a key here the moment it is created or revoked.
    pub(crate) auth: Arc<baton_auth::Authenticator>,
    /// Per-tenant StartRun rate and WatchRun streams.
    pub(crate) quotas: baton_auth::TenantQuotas,
    pub(crate) metrics: Arc<baton_metrics::Metrics>,
    /// Workflows looked up by exact version, by tenant and `owner/name@version`; a registered
    /// version never changes.
    pub(crate) versions:
        std::sync::Mutex<std::collections::HashMap<(String, String), baton_store::StoredWorkflow>>,
}

/// Most workflow versions kept in memory.
const VERSION_CACHE_LIMIT: usize = 10_000;

impl Api {
    /// A workflow `tenant` registered; exact versions come from memory after the first look-up.
    pub(crate) async fn find_workflow(
        &self,
        tenant: &str,
        r: &baton_workflow::WorkflowRef,
    ) -> Result<Option<baton_store::StoredWorkflow>, crate::error::ApiError> {
        let key = (tenant.to_owned(), r.to_string());
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
            .get_workflow(tenant, &r.owner, &r.name, r.version)
            .await?;
        if let Some(w) = &found {
            let mut cache = self.versions.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= VERSION_CACHE_LIMIT {
                cache.clear();
            }
            cache.insert((w.tenant.clone(), w.workflow_ref()), w.clone());
        }
        Ok(found)
    }
}

/// The tenant of calls that name none while auth is disabled.
pub(crate) const DEFAULT_TENANT: &str = "default";

/// The caller, as the auth layer established it. A request that did not pass the layer has no
/// principal and is refused (closed by default).
pub(crate) fn principal<T>(
    request: &tonic::Request<T>,
) -> Result<baton_auth::Principal, tonic::Status> {
    request
        .extensions()
        .get::<baton_auth::Principal>()
        .cloned()
        .ok_or_else(|| tonic::Status::unauthenticated("missing credentials"))
}

/// The tenant a call acts in: the credential's (a request may only repeat it), or with auth
/// disabled the one the request names (`default` when empty).
pub(crate) fn tenant(principal: &baton_auth::Principal, text: &str) -> Result<String, ApiError> {
    text::check_text("tenant", text)?;
    let t = text.trim();
    if !t.is_empty() && !baton_auth::valid_tenant(t) {
        return Err(ApiError::InvalidArgument(
            "tenant: must be 1 to 100 letters, digits, `-`, `_` or `.`".into(),
        ));
    }
    Ok(principal.tenant_for(t, DEFAULT_TENANT)?.to_owned())
}

/// Page sizes: 0 means the default; negative is an error.
pub(crate) fn page_size(size: i32) -> Result<u32, crate::error::ApiError> {
    u32::try_from(size).map_err(|_| {
        crate::error::ApiError::InvalidArgument("page_size: must not be negative".into())
    })
}
