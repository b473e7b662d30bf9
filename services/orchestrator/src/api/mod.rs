//! The public gRPC API. Handlers validate, call the store and queue, and map errors once, through
//! [`crate::error::ApiError`].

mod info;
mod runs;
mod workflows;

use std::{sync::Arc, time::Instant};

use baton_queue::JobQueue;
use baton_store::Store;

use crate::{OrchestratorConfig, events::EventHub};

/// State shared by every handler.
pub struct Api {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) queue: Arc<dyn JobQueue>,
    pub(crate) config: OrchestratorConfig,
    pub(crate) hub: EventHub,
    pub(crate) started: Instant,
    /// Ends long-lived streams when the server stops.
    pub(crate) shutdown: tokio_util::sync::CancellationToken,
}

/// Page sizes: 0 means the default; negative is an error.
pub(crate) fn page_size(size: i32) -> Result<u32, crate::error::ApiError> {
    u32::try_from(size).map_err(|_| {
        crate::error::ApiError::InvalidArgument("page_size: must not be negative".into())
    })
}
