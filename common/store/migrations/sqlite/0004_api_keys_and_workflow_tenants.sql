-- API keys: the public id callers present, the tenant and role it grants, and a hash of its
-- secret (the secret itself is never stored). A revoked key keeps its row, for audit. Times are
-- integer microseconds.
CREATE TABLE api_keys (
    id              TEXT    PRIMARY KEY,
    tenant          TEXT    NOT NULL,
    role            TEXT    NOT NULL,
    name            TEXT    NOT NULL DEFAULT '',
    secret_hash     TEXT    NOT NULL,
    created_by      TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    revoked_at      INTEGER
) STRICT;

CREATE INDEX api_keys_by_tenant ON api_keys (tenant, created_at DESC);

-- Workflows belong to a tenant: each has its own `owner/name` namespace. Workflows registered
-- before tenants existed are the `default` tenant's. SQLite cannot change a primary key in
-- place, so the table is rebuilt (nothing references it).
CREATE TABLE workflows_by_tenant (
    tenant          TEXT    NOT NULL DEFAULT 'default',
    owner           TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    version         INTEGER NOT NULL CHECK (version > 0),
    digest          TEXT    NOT NULL,
    definition      TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (tenant, owner, name, version)
) STRICT;

INSERT INTO workflows_by_tenant (tenant, owner, name, version, digest, definition, created_at)
    SELECT 'default', owner, name, version, digest, definition, created_at FROM workflows;
DROP TABLE workflows;
ALTER TABLE workflows_by_tenant RENAME TO workflows;

-- Runs of other tenants made before tenants had workflows of their own keep theirs: each such
-- tenant gets a copy of every workflow its runs use, so no run in flight loses its definition.
INSERT OR IGNORE INTO workflows (tenant, owner, name, version, digest, definition, created_at)
    SELECT DISTINCT r.tenant, w.owner, w.name, w.version, w.digest, w.definition, w.created_at
    FROM runs r
    JOIN workflows w ON w.tenant = 'default'
        AND r.workflow_ref = w.owner || '/' || w.name || '@' || w.version
    WHERE r.tenant <> 'default';
