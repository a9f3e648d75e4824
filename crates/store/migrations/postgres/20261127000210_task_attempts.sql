-- Every ended attempt of a task, for the execution API's history: the `tasks` row keeps only
-- the latest attempt's outcome. A row is written when the attempt ends (success, failure,
-- timeout, or a lease that expired under a crashed worker), in the same statement or
-- transaction that moves the task row; an attempt still running is the task row itself.
-- A graceful release does not count as an attempt and writes nothing. A run's history is read
-- through tasks (run_id, position), so no index beyond the key is maintained per attempt.
CREATE TABLE task_attempts (
    task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    -- the lease owner (worker instance id) that ran it
    worker TEXT,
    started_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    -- success | error | timeout
    outcome TEXT NOT NULL,
    error TEXT,
    output TEXT,
    PRIMARY KEY (task_id, attempt)
);
