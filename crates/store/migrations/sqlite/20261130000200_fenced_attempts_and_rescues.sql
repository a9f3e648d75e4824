-- Crash semantics and fenced attempts (the state machine: crates/worker/src/queue/sql.rs).
-- `rescues` counts the leases of this task that expired under a dead worker: they re-queue the
-- task without consuming its `max_attempts` (which count its own failures) and dead-letter it
-- past `worker.max_rescues`. `lease_token` is drawn afresh by every claim: heartbeats,
-- completion and failure of an attempt are guarded by it, so a stale attempt (its lease lost
-- and the task claimed again, even by the same process) can end nothing.
ALTER TABLE tasks ADD COLUMN rescues INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN lease_token TEXT;
