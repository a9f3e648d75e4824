-- A run's row changes twice per run (started, ended), on the hot path of every task. With
-- `status` indexed neither change could be a HOT update: each wrote a new entry into all four
-- of the table's indexes. Without it, and with room left on each page for the new version,
-- both are HOT (no index writes): `scripts/bench-worker.sh` measured +10 % tasks/s.
-- The price: `GET /api/v0/executions?status=…` walks the creation-order index and filters,
-- so a page of a rare status reads further back (docs/storage.md).
DROP INDEX workflow_runs_status_idx;
ALTER TABLE workflow_runs SET (fillfactor = 70);
