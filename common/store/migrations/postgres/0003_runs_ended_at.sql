-- Retention deletes finished runs oldest first by when they ended. Only runs that ended are in
-- the index, and a run's `ended_at` is written once, so it costs one index entry per run.
CREATE INDEX runs_ended ON runs (ended_at) WHERE ended_at IS NOT NULL;
