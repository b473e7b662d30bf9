-- Admission control counts the runs running now, often; only those are in the index, so the
-- count reads a few thousand entries however long the history is.
CREATE INDEX runs_running ON runs (started_at) WHERE status = 'running';
