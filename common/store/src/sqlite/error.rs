//! What SQLite's result codes mean to Baton, by primary code (the low byte of the extended
//! code sqlx reports).

use sqlx::error::DatabaseError;

use crate::{
    StoreError,
    db_error::{by_kind, described, from_sqlx},
};

pub(super) fn sqlite_error(e: sqlx::Error) -> StoreError {
    from_sqlx(e, database)
}

const BUSY: i64 = 5;
const LOCKED: i64 = 6;
const NOMEM: i64 = 7;
const READONLY: i64 = 8;
const INTERRUPT: i64 = 9;
const IOERR: i64 = 10;
const CORRUPT: i64 = 11;
const FULL: i64 = 13;
const CANTOPEN: i64 = 14;
const PROTOCOL: i64 = 15;
const NOTADB: i64 = 26;

fn database(db: &dyn DatabaseError) -> StoreError {
    if let Some(e) = by_kind(db) {
        return e;
    }
    let code = db
        .code()
        .and_then(|c| c.parse::<i64>().ok())
        .map_or(0, |c| c & 0xff);
    let message = described(db);
    match code {
        // Another connection held the lock past the busy timeout, memory or disk ran out, the
        // file cannot be opened or written: all may pass.
        BUSY | LOCKED | NOMEM | READONLY | INTERRUPT | IOERR | FULL | CANTOPEN | PROTOCOL => {
            StoreError::Unavailable(message)
        }
        CORRUPT | NOTADB => StoreError::Corrupt(message),
        _ => StoreError::Rejected(message),
    }
}
