-- API keys: the public id callers present, the tenant and role it grants, and a hash of its
-- secret (the secret itself is never stored). A revoked key keeps its row, for audit.
CREATE TABLE api_keys (
    id              TEXT        PRIMARY KEY,
    tenant          TEXT        NOT NULL,
    role            TEXT        NOT NULL,
    name            TEXT        NOT NULL DEFAULT '',
    secret_hash     TEXT        NOT NULL,
    created_by      TEXT        NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    revoked_at      TIMESTAMPTZ
);

CREATE INDEX api_keys_by_tenant ON api_keys (tenant, created_at DESC);

-- Workflows belong to a tenant: each has its own `owner/name` namespace. Workflows registered
-- before tenants existed are the `default` tenant's.
ALTER TABLE workflows ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
ALTER TABLE workflows DROP CONSTRAINT workflows_pkey, ADD PRIMARY KEY (tenant, owner, name, version);

-- Runs of other tenants made before tenants had workflows of their own keep theirs: each such
-- tenant gets a copy of every workflow its runs use, so no run in flight loses its definition.
INSERT INTO workflows (tenant, owner, name, version, digest, definition, created_at)
    SELECT DISTINCT r.tenant, w.owner, w.name, w.version, w.digest, w.definition, w.created_at
    FROM runs r
    JOIN workflows w ON w.tenant = 'default'
        AND r.workflow_ref = w.owner || '/' || w.name || '@' || w.version
    WHERE r.tenant <> 'default'
ON CONFLICT DO NOTHING;
