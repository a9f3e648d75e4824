-- A run's `running` state is read, not written: a run is running once it is `pending` and its
-- first task has started. The claim used to mark the run row (a second row write per claimed
-- task, on the hot path: scripts/bench-worker.sh measured about +20 % tasks/s without it).
-- `first_started_at` is when the task's first attempt started (a retry or rescue keeps it;
-- `started_at` is the current attempt's); it is the run's start. Rows written before this
-- migration keep their run's stored `running` status and `started_at`, and reads honour them.
ALTER TABLE tasks ADD COLUMN first_started_at BIGINT;
