-- The embedded backend's store: the same tables and columns as the Postgres schema, in STRICT
-- tables. Ids are 16-byte BLOBs (byte order is id order, as in Postgres), times are integer
-- microseconds since the Unix epoch, JSON is TEXT (SQL NULL is no value, the text 'null' is
-- JSON null). The store's migrations are versions 1..999; the embedded queue keeps its own,
-- 1001 and up, in the same file.

CREATE TABLE workflows (
    owner           TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    version         INTEGER NOT NULL CHECK (version > 0),
    digest          TEXT    NOT NULL,
    definition      TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (owner, name, version)
) STRICT;

CREATE TABLE runs (
    id              BLOB    PRIMARY KEY CHECK (length(id) = 16),
    tenant          TEXT    NOT NULL,
    workflow_ref    TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    inputs          TEXT    NOT NULL,
    output          TEXT,
    error           TEXT,
    idempotency_key TEXT,
    max_parallel    INTEGER NOT NULL DEFAULT 0,
    deadline        INTEGER,
    created_at      INTEGER NOT NULL,
    started_at      INTEGER,
    ended_at        INTEGER,
    last_sequence   INTEGER NOT NULL DEFAULT 0,
    -- W3C trace context of the StartRun call, so every service's spans join one trace per run.
    trace_context   TEXT    NOT NULL DEFAULT '{}'
) STRICT;

CREATE UNIQUE INDEX runs_idempotency ON runs (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX runs_by_tenant ON runs (tenant, created_at DESC, id DESC);
CREATE INDEX runs_deadline ON runs (deadline) WHERE deadline IS NOT NULL;
CREATE INDEX runs_queued ON runs (created_at) WHERE status = 'queued';

CREATE TABLE step_runs (
    run_id          BLOB    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    position        INTEGER NOT NULL,
    step_id         TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    attempt         INTEGER NOT NULL DEFAULT 0,
    output          TEXT,
    error           TEXT,
    worker_id       TEXT,
    queued_at       INTEGER,
    started_at      INTEGER,
    ended_at        INTEGER,
    next_attempt_at INTEGER,
    usage           TEXT,
    PRIMARY KEY (run_id, position)
) STRICT;

CREATE INDEX step_runs_retry_due ON step_runs (next_attempt_at) WHERE next_attempt_at IS NOT NULL;

CREATE TABLE step_attempts (
    run_id          BLOB    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_id         TEXT    NOT NULL,
    attempt         INTEGER NOT NULL,
    status          TEXT    NOT NULL,
    error           TEXT,
    worker_id       TEXT,
    queued_at       INTEGER,
    started_at      INTEGER,
    ended_at        INTEGER NOT NULL,
    usage           TEXT,
    PRIMARY KEY (run_id, step_id, attempt)
) STRICT;

-- Worker processes and the machines they run on, recorded once per worker.
CREATE TABLE workers (
    worker_id       TEXT    PRIMARY KEY,
    host            TEXT    NOT NULL,
    first_seen      INTEGER NOT NULL
) STRICT;

CREATE TABLE run_events (
    run_id          BLOB    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    sequence        INTEGER NOT NULL,
    event_type      TEXT    NOT NULL,
    step_id         TEXT,
    attempt         INTEGER NOT NULL DEFAULT 0,
    message         TEXT,
    output          TEXT,
    time            INTEGER NOT NULL,
    PRIMARY KEY (run_id, sequence)
) STRICT;
