-- Baton's source of truth: workflows, runs, their steps and attempts, and every run event.

CREATE TABLE workflows (
    owner           TEXT        NOT NULL,
    name            TEXT        NOT NULL,
    version         INTEGER     NOT NULL CHECK (version > 0),
    digest          TEXT        NOT NULL,
    definition      JSONB       NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, name, version)
);

CREATE TABLE runs (
    id              UUID        PRIMARY KEY,
    tenant          TEXT        NOT NULL,
    workflow_ref    TEXT        NOT NULL,
    status          TEXT        NOT NULL,
    inputs          JSONB       NOT NULL,
    output          JSONB,
    error           TEXT,
    idempotency_key TEXT,
    max_parallel    INTEGER     NOT NULL DEFAULT 0,
    deadline        TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    started_at      TIMESTAMPTZ,
    ended_at        TIMESTAMPTZ,
    last_sequence   BIGINT      NOT NULL DEFAULT 0,
    -- W3C trace context of the StartRun call, so every service's spans join one trace per run.
    trace_context   JSONB       NOT NULL DEFAULT '{}'
) WITH (fillfactor = 80);

CREATE UNIQUE INDEX runs_idempotency ON runs (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX runs_by_tenant ON runs (tenant, created_at DESC, id DESC);
-- Indexes stay off columns that change on every batch (status of steps, last_sequence), so
-- those updates are HOT and touch no index.
CREATE INDEX runs_deadline ON runs (deadline) WHERE deadline IS NOT NULL;
CREATE INDEX runs_queued ON runs (created_at) WHERE status = 'queued';

CREATE TABLE step_runs (
    run_id          UUID        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    position        INTEGER     NOT NULL,
    step_id         TEXT        NOT NULL,
    kind            TEXT        NOT NULL,
    status          TEXT        NOT NULL,
    attempt         INTEGER     NOT NULL DEFAULT 0,
    output          JSONB,
    error           TEXT,
    worker_id       TEXT,
    queued_at       TIMESTAMPTZ,
    started_at      TIMESTAMPTZ,
    ended_at        TIMESTAMPTZ,
    next_attempt_at TIMESTAMPTZ,
    usage           JSONB,
    PRIMARY KEY (run_id, position)
) WITH (fillfactor = 80);

CREATE INDEX step_runs_retry_due ON step_runs (next_attempt_at) WHERE next_attempt_at IS NOT NULL;

CREATE TABLE step_attempts (
    run_id          UUID        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_id         TEXT        NOT NULL,
    attempt         INTEGER     NOT NULL,
    status          TEXT        NOT NULL,
    error           TEXT,
    worker_id       TEXT,
    queued_at       TIMESTAMPTZ,
    started_at      TIMESTAMPTZ,
    ended_at        TIMESTAMPTZ NOT NULL,
    usage           JSONB,
    PRIMARY KEY (run_id, step_id, attempt)
);

-- Worker processes and the machines they run on, recorded once per worker.
CREATE TABLE workers (
    worker_id       TEXT        PRIMARY KEY,
    host            JSONB       NOT NULL,
    first_seen      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE run_events (
    run_id          UUID        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    sequence        BIGINT      NOT NULL,
    event_type      TEXT        NOT NULL,
    step_id         TEXT,
    attempt         INTEGER     NOT NULL DEFAULT 0,
    message         TEXT,
    output          JSONB,
    time            TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (run_id, sequence)
);
