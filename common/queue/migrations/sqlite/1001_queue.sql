-- The embedded queue, in the same SQLite file as the embedded store (whose migrations are numbered
-- 1 to 999). Every statement is idempotent, so two processes opening a new file at once agree.

-- The runner inbox (`runner`), each kind's job stream (`jobs:<kind>`) and the dead letters (`dead`):
-- one row per entry until it is acknowledged, when it is deleted, so a stream's rows are its backlog.
CREATE TABLE IF NOT EXISTS queue_entries (
    -- AUTOINCREMENT: an acknowledged entry's id is never handed out again.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stream TEXT NOT NULL,
    payload BLOB NOT NULL,
    -- The consumer the entry was last delivered to; NULL until its first delivery.
    delivered_to TEXT,
    -- Unix microseconds of the last delivery or touch: where its idle time counts from.
    delivered_at_us INTEGER,
    deliveries INTEGER NOT NULL DEFAULT 0
) STRICT;

-- Entries waiting for their first delivery, oldest first (dead letters stay here).
CREATE INDEX IF NOT EXISTS queue_entries_waiting
    ON queue_entries (stream, id) WHERE delivered_to IS NULL;

-- Entries delivered and not yet acknowledged, oldest first, for reclaiming.
CREATE INDEX IF NOT EXISTS queue_entries_pending
    ON queue_entries (stream, id) WHERE delivered_to IS NOT NULL;

-- Delayed wake-ups for the runner inbox. The payload is the inbox message itself; it is unique, so
-- setting the same wake-up twice keeps one (due at the later setting) and it fires once.
CREATE TABLE IF NOT EXISTS queue_timers (
    id INTEGER PRIMARY KEY,
    due_ms INTEGER NOT NULL,
    payload BLOB NOT NULL UNIQUE
) STRICT;

CREATE INDEX IF NOT EXISTS queue_timers_due ON queue_timers (due_ms, id);

-- Every run event in publishing order, trimmed oldest first to a cap. The id is the cursor.
CREATE TABLE IF NOT EXISTS queue_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    payload BLOB NOT NULL
) STRICT;

-- Cancel notices in publishing order, kept only long enough for subscribers to read them.
CREATE TABLE IF NOT EXISTS queue_cancels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    payload BLOB NOT NULL
) STRICT;

-- The last heartbeat of each worker (`<worker id>:<kind>`).
CREATE TABLE IF NOT EXISTS queue_workers (
    id TEXT PRIMARY KEY,
    worker_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    pid INTEGER NOT NULL,
    hostname TEXT NOT NULL,
    started_at_ms INTEGER NOT NULL,
    last_heartbeat_ms INTEGER NOT NULL
) STRICT;
