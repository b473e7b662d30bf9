//! The one place where errors become gRPC statuses.

use baton_events::EventsError;
use baton_queue::QueueError;
use baton_store::StoreError;
use baton_workflow::DefinitionError;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Definition(#[from] DefinitionError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl From<EventsError> for ApiError {
    fn from(e: EventsError) -> Self {
        match e {
            EventsError::NotFound(id) => ApiError::NotFound(format!("run {id} does not exist")),
            EventsError::Store(e) => ApiError::Store(e),
            EventsError::ShuttingDown => ApiError::Unavailable(
                "the orchestrator is shutting down; watch again from the last sequence".into(),
            ),
        }
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::InvalidArgument(m) => Status::invalid_argument(m),
            ApiError::Definition(d) => Status::invalid_argument(d.to_string()),
            ApiError::NotFound(m) => Status::not_found(m),
            ApiError::AlreadyExists(m) => Status::already_exists(m),
            ApiError::FailedPrecondition(m) => Status::failed_precondition(m),
            ApiError::Unavailable(m) => Status::unavailable(m),
            ApiError::Store(StoreError::Conflict(m)) => Status::already_exists(m),
            ApiError::Store(StoreError::BadPageToken) => {
                Status::invalid_argument("page_token: invalid page token")
            }
            ApiError::Store(e) => {
                tracing::error!(error = %e, "store error");
                Status::unavailable(format!("the database is unavailable: {e}"))
            }
            ApiError::Queue(e) => {
                tracing::error!(error = %e, "queue error");
                Status::unavailable(format!("the queue is unavailable: {e}"))
            }
        }
    }
}
