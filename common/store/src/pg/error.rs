//! What Postgres's errors mean to Baton, by SQLSTATE class.

use sqlx::error::DatabaseError;

use crate::{
    StoreError,
    db_error::{by_kind, described, from_sqlx},
};

pub(super) fn pg_error(e: sqlx::Error) -> StoreError {
    from_sqlx(e, database)
}

fn database(db: &dyn DatabaseError) -> StoreError {
    if let Some(e) = by_kind(db) {
        return e;
    }
    let code = db.code().unwrap_or_default();
    let message = described(db);
    match code.get(..2).unwrap_or_default() {
        // Connection exceptions, bad credentials, a missing database, transaction rollbacks
        // (serialization failures, deadlocks), insufficient resources, operator intervention
        // (shutdown, cancel) and system errors: all may pass.
        "08" | "28" | "3D" | "40" | "53" | "57" | "58" => StoreError::Unavailable(message),
        // A lock not granted (NOWAIT or lock_timeout).
        "55" if code == "55P03" => StoreError::Unavailable(message),
        // Internal errors, among them damaged data and indexes.
        "XX" => StoreError::Corrupt(message),
        _ => StoreError::Rejected(message),
    }
}
