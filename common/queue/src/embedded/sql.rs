//! The statements the roles share. Batches are inserted in multi-row statements of a few fixed
//! sizes and id lists are bound as one JSON array, so every statement text repeats and is prepared
//! once per connection.

use prost::Message;
use sqlx::{AssertSqlSafe, QueryBuilder, Sqlite, SqliteConnection, SqliteExecutor};

use crate::{Delivery, StreamName};

/// Rows per multi-row insert: a batch is split greedily into these sizes.
const INSERT_SIZES: [usize; 4] = [64, 16, 4, 1];

/// The append-only logs other than the streams.
#[derive(Debug, Clone, Copy)]
pub(super) enum Log {
    Events,
    Cancels,
}

impl Log {
    fn table(self) -> &'static str {
        match self {
            Self::Events => "queue_events",
            Self::Cancels => "queue_cancels",
        }
    }
}

/// An entry as a take or reclaim returns it: id, payload, deliveries.
pub(super) type EntryRow = (i64, Vec<u8>, i64);

/// Splits `rows` into slices of [`INSERT_SIZES`], largest first.
fn batches<T>(mut rows: &[T]) -> Vec<&[T]> {
    let mut out = Vec::new();
    for size in INSERT_SIZES {
        while rows.len() >= size {
            let (head, rest) = rows.split_at(size);
            out.push(head);
            rows = rest;
        }
    }
    out
}

/// Appends `(stream, payload)` entries, in order.
pub(super) async fn append(
    conn: &mut SqliteConnection,
    entries: &[(String, Vec<u8>)],
) -> Result<(), sqlx::Error> {
    for batch in batches(entries) {
        let mut insert =
            QueryBuilder::<Sqlite>::new("INSERT INTO queue_entries (stream, payload) ");
        insert.push_values(batch, |mut row, (stream, payload)| {
            row.push_bind(stream.as_str()).push_bind(payload.as_slice());
        });
        insert.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Appends payloads to `log`, in order, and trims it to its newest `keep`.
pub(super) async fn append_log(
    conn: &mut SqliteConnection,
    log: Log,
    payloads: &[Vec<u8>],
    keep: u64,
) -> Result<(), sqlx::Error> {
    let table = log.table();
    for batch in batches(payloads) {
        let mut insert = QueryBuilder::<Sqlite>::new(format!("INSERT INTO {table} (payload) "));
        insert.push_values(batch, |mut row, payload| {
            row.push_bind(payload.as_slice());
        });
        insert.build().execute(&mut *conn).await?;
    }
    // Ids of a log are consecutive (AUTOINCREMENT, rolled back with a failed transaction).
    sqlx::query(AssertSqlSafe(format!(
        "DELETE FROM {table} WHERE id <= (SELECT MAX(id) FROM {table}) - ?1"
    )))
    .bind(super::sql_int(keep.max(1)))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The id of the newest entry `log` ever held (0 for none): reading after it gives only newer.
pub(super) async fn last_log_id<'e>(
    db: impl SqliteExecutor<'e>,
    log: Log,
) -> Result<i64, sqlx::Error> {
    let table = log.table();
    sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT COALESCE((SELECT MAX(id) FROM {table}), \
         (SELECT seq FROM sqlite_sequence WHERE name = '{table}'), 0)"
    )))
    .fetch_one(db)
    .await
}

/// Entries of `log` after `after`, oldest first, at most `max`.
pub(super) async fn read_log<'e>(
    db: impl SqliteExecutor<'e>,
    log: Log,
    after: i64,
    max: usize,
) -> Result<Vec<(i64, Vec<u8>)>, sqlx::Error> {
    let table = log.table();
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT id, payload FROM {table} WHERE id > ?1 ORDER BY id LIMIT ?2"
    )))
    .bind(after)
    .bind(super::sql_int(max))
    .fetch_all(db)
    .await
}

/// Trims the dead letters to the newest `keep`.
pub(super) async fn trim_dead(conn: &mut SqliteConnection, keep: u64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM queue_entries WHERE stream = ?1 AND delivered_to IS NULL AND id < ( \
             SELECT id FROM queue_entries WHERE stream = ?1 AND delivered_to IS NULL \
             ORDER BY id DESC LIMIT 1 OFFSET ?2)",
    )
    .bind(StreamName::Dead.to_string())
    .bind(super::sql_int(keep.max(1)) - 1)
    .execute(conn)
    .await?;
    Ok(())
}

/// An id list as the one JSON array the statements read with `json_each`.
pub(super) fn id_list(ids: &[i64]) -> String {
    let mut json = String::with_capacity(ids.len() * 8 + 2);
    json.push('[');
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&id.to_string());
    }
    json.push(']');
    json
}

/// Acknowledges entries of `stream`: they are deleted.
pub(super) async fn ack<'e>(
    db: impl SqliteExecutor<'e>,
    stream: &str,
    ids: &[i64],
) -> Result<(), sqlx::Error> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "DELETE FROM queue_entries WHERE stream = ?1 AND id IN (SELECT value FROM json_each(?2))",
    )
    .bind(stream)
    .bind(id_list(ids))
    .execute(db)
    .await?;
    Ok(())
}

/// Whether `stream` has an entry no one took yet: a cheap look before taking the write lock.
pub(super) async fn has_waiting<'e>(
    db: impl SqliteExecutor<'e>,
    stream: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM queue_entries WHERE stream = ?1 AND delivered_to IS NULL)",
    )
    .bind(stream)
    .fetch_one(db)
    .await
}

/// Delivers up to `max` entries of `stream` no one took yet to `consumer`, oldest first.
pub(super) async fn take<'e>(
    db: impl SqliteExecutor<'e>,
    stream: &str,
    consumer: &str,
    now_us: i64,
    max: usize,
) -> Result<Vec<EntryRow>, sqlx::Error> {
    let mut rows: Vec<EntryRow> = sqlx::query_as(
        "UPDATE queue_entries \
         SET delivered_to = ?1, delivered_at_us = ?2, deliveries = deliveries + 1 \
         WHERE id IN (SELECT id FROM queue_entries \
                      WHERE stream = ?3 AND delivered_to IS NULL ORDER BY id LIMIT ?4) \
         RETURNING id, payload, deliveries",
    )
    .bind(consumer)
    .bind(now_us)
    .bind(stream)
    .bind(super::sql_int(max))
    .fetch_all(db)
    .await?;
    // RETURNING gives rows in no set order.
    rows.sort_unstable_by_key(|row| row.0);
    Ok(rows)
}

/// Delivers again to `consumer` up to `max` taken entries of `stream` whose last delivery or
/// touch was at or before `idle_since_us`, oldest first.
pub(super) async fn reclaim<'e>(
    db: impl SqliteExecutor<'e>,
    stream: &str,
    consumer: &str,
    now_us: i64,
    idle_since_us: i64,
    max: usize,
) -> Result<Vec<EntryRow>, sqlx::Error> {
    let mut rows: Vec<EntryRow> = sqlx::query_as(
        "UPDATE queue_entries \
         SET delivered_to = ?1, delivered_at_us = ?2, deliveries = deliveries + 1 \
         WHERE id IN (SELECT id FROM queue_entries \
                      WHERE stream = ?3 AND delivered_to IS NOT NULL AND delivered_at_us <= ?4 \
                      ORDER BY id LIMIT ?5) \
         RETURNING id, payload, deliveries",
    )
    .bind(consumer)
    .bind(now_us)
    .bind(stream)
    .bind(idle_since_us)
    .bind(super::sql_int(max))
    .fetch_all(db)
    .await?;
    rows.sort_unstable_by_key(|row| row.0);
    Ok(rows)
}

/// A taken entry as the roles hand it out.
pub(super) fn delivery<T: Message + Default>((id, payload, deliveries): EntryRow) -> Delivery<T> {
    let message = T::decode(payload.as_slice()).map_err(|e| format!("undecodable message: {e}"));
    Delivery {
        id: id.to_string(),
        message,
        payload,
        deliveries: u32::try_from(deliveries).unwrap_or(u32::MAX),
    }
}

/// Sets `(due_ms, payload)` timers; a payload already set is due at its new time instead.
pub(super) async fn set_timers(
    conn: &mut SqliteConnection,
    timers: &[(i64, Vec<u8>)],
) -> Result<(), sqlx::Error> {
    for batch in batches(timers) {
        let mut insert = QueryBuilder::<Sqlite>::new("INSERT INTO queue_timers (due_ms, payload) ");
        insert.push_values(batch, |mut row, (due_ms, payload)| {
            row.push_bind(*due_ms).push_bind(payload.as_slice());
        });
        insert.push(" ON CONFLICT (payload) DO UPDATE SET due_ms = excluded.due_ms");
        insert.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Moves up to `max` timers due at `now_ms`, earliest first, to the end of `inbox`; returns how
/// many. Run in a write transaction, so both statements see the same due timers.
pub(super) async fn fire_timers(
    conn: &mut SqliteConnection,
    inbox: &str,
    now_ms: i64,
    max: usize,
) -> Result<usize, sqlx::Error> {
    let max = super::sql_int(max);
    let moved = sqlx::query(
        "INSERT INTO queue_entries (stream, payload) \
         SELECT ?1, payload FROM queue_timers WHERE due_ms <= ?2 ORDER BY due_ms, id LIMIT ?3",
    )
    .bind(inbox)
    .bind(now_ms)
    .bind(max)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    sqlx::query(
        "DELETE FROM queue_timers WHERE id IN ( \
             SELECT id FROM queue_timers WHERE due_ms <= ?1 ORDER BY due_ms, id LIMIT ?2)",
    )
    .bind(now_ms)
    .bind(max)
    .execute(&mut *conn)
    .await?;
    Ok(usize::try_from(moved).unwrap_or(usize::MAX))
}

/// Removes the timers whose payloads are `payloads`, unfired; a payload not set is skipped.
pub(super) async fn drop_timers(
    conn: &mut SqliteConnection,
    payloads: &[Vec<u8>],
) -> Result<(), sqlx::Error> {
    for payload in payloads {
        sqlx::query("DELETE FROM queue_timers WHERE payload = ?1")
            .bind(payload.as_slice())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// When the earliest timer is due, if any is set.
pub(super) async fn next_timer<'e>(
    db: impl SqliteExecutor<'e>,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT MIN(due_ms) FROM queue_timers")
        .fetch_one(db)
        .await
}
