//! Turns sqlx's errors into [`StoreError`]s. What the driver reports the same way for every
//! database is sorted here once; each backend says what its database's own error codes mean.

use sqlx::error::{DatabaseError, ErrorKind};

use crate::StoreError;

/// Sorts `e`, asking `database` about errors the database itself returned.
pub(crate) fn from_sqlx(
    e: sqlx::Error,
    database: fn(&dyn DatabaseError) -> StoreError,
) -> StoreError {
    use sqlx::Error as E;
    match e {
        E::Database(db) => database(db.as_ref()),
        E::RowNotFound
        | E::TypeNotFound { .. }
        | E::ColumnIndexOutOfBounds { .. }
        | E::ColumnNotFound(_)
        | E::ColumnDecode { .. }
        | E::Decode(_) => StoreError::Corrupt(e.to_string()),
        E::Encode(_) | E::InvalidArgument(_) | E::InvalidSavePointStatement => {
            StoreError::Rejected(e.to_string())
        }
        E::Migrate(m) => StoreError::Migrate(m.to_string()),
        // Configuration, I/O, TLS, protocol, pool and worker failures: the database was not
        // reached, or the connection to it broke.
        _ => StoreError::Unavailable(e.to_string()),
    }
}

/// What every database means by the constraint kinds sqlx recognises; `None` for the rest.
pub(crate) fn by_kind(db: &dyn DatabaseError) -> Option<StoreError> {
    match db.kind() {
        ErrorKind::UniqueViolation => Some(StoreError::Conflict(described(db))),
        ErrorKind::ForeignKeyViolation
        | ErrorKind::NotNullViolation
        | ErrorKind::CheckViolation
        | ErrorKind::ExclusionViolation => Some(StoreError::Rejected(described(db))),
        _ => None,
    }
}

/// The database's message with its error code, for logs and statuses.
pub(crate) fn described(db: &dyn DatabaseError) -> String {
    match db.code() {
        Some(code) => format!("{} (code {code})", db.message()),
        None => db.message().to_owned(),
    }
}

/// A column that could not be read, named.
pub(crate) fn column(name: &str, e: sqlx::Error) -> StoreError {
    StoreError::Corrupt(format!("column `{name}`: {e}"))
}

pub(crate) fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}
