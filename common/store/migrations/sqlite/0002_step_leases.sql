-- Every dispatched attempt holds a lease: `lease` is its fencing token (reports carrying another
-- are ignored), `lease_holder` the latest delivery of its job that reported, and
-- `lease_expires_at` (Unix microseconds) when the reconciler looks for its job.
ALTER TABLE step_runs ADD COLUMN lease INTEGER NOT NULL DEFAULT 0;
ALTER TABLE step_runs ADD COLUMN lease_holder INTEGER NOT NULL DEFAULT 0;
ALTER TABLE step_runs ADD COLUMN lease_expires_at INTEGER;

-- Only steps in flight hold one, so the index stays as small as the work in flight.
CREATE INDEX step_runs_lease_expiry ON step_runs (lease_expires_at) WHERE lease_expires_at IS NOT NULL;
