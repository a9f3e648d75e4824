-- Workflow runs and their task rows: the durable queue. The state machine is written down in
-- crates/worker/src/queue/sql.rs beside the statements that move rows through it.
-- Times are Unix milliseconds; JSON is stored as text (the same SQL runs on both backends).
CREATE TABLE workflow_runs (
    id TEXT PRIMARY KEY,
    workflow_id TEXT NOT NULL,
    -- pending | running | succeeded | failed | cancelled
    status TEXT NOT NULL,
    input TEXT NOT NULL,
    output TEXT,
    error TEXT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT
);

CREATE INDEX workflow_runs_created_idx ON workflow_runs (created_at, id);
CREATE INDEX workflow_runs_workflow_idx ON workflow_runs (workflow_id, created_at);
CREATE INDEX workflow_runs_status_idx ON workflow_runs (status, created_at);

CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    -- the workflow's task id
    name TEXT NOT NULL,
    -- tool | http | wait
    kind TEXT NOT NULL,
    queue TEXT NOT NULL,
    -- available | running | succeeded | failed | dead | cancelled
    state TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    -- when the task became (or becomes) ready: schedule-to-start is measured from here
    available_at BIGINT NOT NULL,
    lease_owner TEXT,
    lease_expires_at BIGINT,
    last_outcome TEXT,
    last_error TEXT,
    output TEXT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    UNIQUE (run_id, position)
);

-- Claiming: ready rows of one queue in order.
CREATE INDEX tasks_claim_idx ON tasks (queue, state, available_at);
-- Rescuing expired leases.
CREATE INDEX tasks_lease_idx ON tasks (state, lease_expires_at);
