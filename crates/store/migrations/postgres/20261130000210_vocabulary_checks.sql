-- The queue's vocabularies (crates/worker/src/model.rs), enforced by the schema: a value
-- outside them is refused at write time instead of being misread later.
ALTER TABLE workflow_runs ADD CONSTRAINT workflow_runs_status_check
    CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled'));
ALTER TABLE tasks ADD CONSTRAINT tasks_state_check
    CHECK (state IN ('available', 'running', 'succeeded', 'failed', 'dead', 'cancelled'));
ALTER TABLE tasks ADD CONSTRAINT tasks_kind_check CHECK (kind IN ('tool', 'http', 'wait'));
ALTER TABLE tasks ADD CONSTRAINT tasks_last_outcome_check
    CHECK (last_outcome IN ('success', 'error', 'timeout', 'rescued'));
ALTER TABLE task_attempts ADD CONSTRAINT task_attempts_outcome_check
    CHECK (outcome IN ('success', 'error', 'timeout', 'rescued'));
