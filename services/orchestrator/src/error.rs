//! The one place where errors become gRPC statuses. Clients get the code and what they can do;
//! the database's and the queue's own texts (addresses, SQL, values) go to the log only.

use baton_events::EventsError;
use baton_queue::QueueError;
use baton_store::StoreError;
use baton_workflow::DefinitionError;
use tonic::Status;

/// What a client reads when the database may come back.
pub(crate) const DATABASE_UNAVAILABLE: &str = "the database is unavailable; try again";
/// What a client reads when the queue may come back.
pub(crate) const QUEUE_UNAVAILABLE: &str = "the queue is unavailable; try again";
/// What a client reads when retrying will not help; the cause is in the log.
pub(crate) const INTERNAL: &str = "internal error (see the orchestrator's log)";

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
    #[error("{0}")]
    PermissionDenied(String),
    /// Over a per-tenant limit: RESOURCE_EXHAUSTED with a retry hint.
    #[error("{}", .0.message)]
    Limited(baton_auth::Limited),
    /// A failure the client cannot fix or wait out; already logged where it happened.
    #[error("{INTERNAL}")]
    Internal,
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

impl From<baton_auth::ForeignTenant> for ApiError {
    fn from(e: baton_auth::ForeignTenant) -> Self {
        ApiError::PermissionDenied(e.to_string())
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
            ApiError::PermissionDenied(m) => Status::permission_denied(m),
            ApiError::Limited(l) => l.into_status(),
            ApiError::Store(StoreError::Conflict(m)) => Status::already_exists(m),
            ApiError::Store(StoreError::BadPageToken) => {
                Status::invalid_argument("page_token: invalid page token")
            }
            ApiError::Internal => Status::internal(INTERNAL),
            ApiError::Store(e) => {
                tracing::error!(error = %e, "store error");
                store_status(&e)
            }
            ApiError::Queue(e) => {
                tracing::error!(error = %e, "queue error");
                match e {
                    QueueError::Unavailable(_) => Status::unavailable(QUEUE_UNAVAILABLE),
                    QueueError::Corrupt(_) => Status::internal(INTERNAL),
                }
            }
        }
    }
}

/// The answer for a store error that is not the client's doing (conflicts and page tokens are
/// mapped above): UNAVAILABLE when retrying may succeed, INTERNAL otherwise. Never the error's
/// own text.
fn store_status(e: &StoreError) -> Status {
    match e {
        StoreError::Unavailable(_) => Status::unavailable(DATABASE_UNAVAILABLE),
        StoreError::Conflict(_)
        | StoreError::BadPageToken
        | StoreError::Rejected(_)
        | StoreError::Corrupt(_)
        | StoreError::Migrate(_) => Status::internal(INTERNAL),
    }
}

/// The same answer as [`ApiError::Store`], for a store error shared by many callers (a batch that
/// failed as a whole); the caller logs it once.
pub(crate) fn shared_store_failure(e: &StoreError) -> ApiError {
    match e {
        StoreError::Unavailable(_) => ApiError::Unavailable(DATABASE_UNAVAILABLE.to_owned()),
        _ => ApiError::Internal,
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    const DETAIL: &str = "connection refused: tcp 10.0.0.1:5432 (user baton, database baton)";

    #[test]
    fn an_unavailable_database_answers_without_its_detail() {
        let status = Status::from(ApiError::Store(StoreError::Unavailable(DETAIL.into())));
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), DATABASE_UNAVAILABLE);
        for detail in ["10.0.0.1", "5432", "refused", "baton"] {
            assert!(!status.message().contains(detail), "{}", status.message());
        }
    }

    #[test]
    fn a_refused_or_unreadable_value_is_internal_without_its_detail() {
        for e in [
            StoreError::Rejected("unsupported Unicode escape sequence".into()),
            StoreError::Corrupt("run 1 has status `exploded`".into()),
            StoreError::Migrate("migration 7 changed".into()),
        ] {
            let status = Status::from(ApiError::Store(e));
            assert_eq!(status.code(), Code::Internal);
            assert_eq!(status.message(), INTERNAL);
        }
    }

    #[test]
    fn queue_errors_answer_without_their_detail() {
        let status = Status::from(ApiError::Queue(QueueError::Unavailable(
            "Connection refused (os error 111) redis://10.0.0.2:6379".into(),
        )));
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), QUEUE_UNAVAILABLE);
        let status = Status::from(ApiError::Queue(QueueError::Corrupt("entry 1-0".into())));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), INTERNAL);
    }

    #[test]
    fn client_mistakes_keep_their_codes() {
        let status = Status::from(ApiError::Store(StoreError::Conflict(
            "idempotency key k is taken".into(),
        )));
        assert_eq!(status.code(), Code::AlreadyExists);
        assert_eq!(status.message(), "idempotency key k is taken");
        let status = Status::from(ApiError::Store(StoreError::BadPageToken));
        assert_eq!(status.code(), Code::InvalidArgument);
    }

    #[test]
    fn a_shared_batch_failure_answers_like_a_single_one() {
        let shared = Status::from(shared_store_failure(&StoreError::Unavailable(
            DETAIL.into(),
        )));
        assert_eq!(shared.code(), Code::Unavailable);
        assert_eq!(shared.message(), DATABASE_UNAVAILABLE);
        let shared = Status::from(shared_store_failure(&StoreError::Rejected(DETAIL.into())));
        assert_eq!(shared.code(), Code::Internal);
        assert_eq!(shared.message(), INTERNAL);
    }
}
