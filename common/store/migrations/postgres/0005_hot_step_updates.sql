-- Step rows change three or four times each (queued, running, ended), and an update that changes
-- no indexed column is HOT: it adds no index entry, and the page prunes its old version without
-- a VACUUM. The lease expiry changed on every one of those updates and was indexed, so none was
-- HOT. The reconciler now finds steps in flight through the runs that are running instead: a
-- run's status changes twice in its life, its steps' lease expiry is no longer indexed.
DROP INDEX step_runs_lease_expiry;
CREATE INDEX runs_running ON runs (id) WHERE status = 'running';
