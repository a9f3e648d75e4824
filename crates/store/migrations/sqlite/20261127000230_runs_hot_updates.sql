-- PostgreSQL drops workflow_runs_status_idx in this version so that a run's status changes are
-- HOT updates. SQLite has no such mechanism, and an embedded database is small enough for the
-- index to keep status-filtered listings cheap, so nothing changes here; the file keeps both
-- backends' migration histories aligned.
SELECT 1;
