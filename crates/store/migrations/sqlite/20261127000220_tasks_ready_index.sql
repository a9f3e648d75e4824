-- Claiming reads ready rows of one queue in (available_at, id) order. The index of
-- 20261127000200 ended at available_at, so every claim read and sorted all the ready rows that
-- share a millisecond (a bulk enqueue puts thousands there): a claim cost grew with the queue's
-- depth. Only ready rows are indexed now, in the full claim order, so a claim reads `LIMIT` rows.
DROP INDEX tasks_claim_idx;
CREATE INDEX tasks_ready_idx ON tasks (queue, available_at, id) WHERE state = 'available';

-- The lease rescue reads running rows only.
DROP INDEX tasks_lease_idx;
CREATE INDEX tasks_running_idx ON tasks (lease_expires_at) WHERE state = 'running';
