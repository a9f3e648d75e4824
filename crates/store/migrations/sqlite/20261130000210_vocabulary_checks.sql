-- The queue's vocabularies (crates/worker/src/model.rs), enforced by the schema: a value
-- outside them is refused at write time instead of being misread later. SQLite cannot add a
-- CHECK constraint to an existing table without rebuilding it (and the tables that reference
-- it), so triggers do the same checks on insert and on update of the checked columns.
CREATE TRIGGER workflow_runs_status_insert BEFORE INSERT ON workflow_runs
WHEN NEW.status NOT IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: workflow_runs.status'); END;
CREATE TRIGGER workflow_runs_status_update BEFORE UPDATE OF status ON workflow_runs
WHEN NEW.status NOT IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: workflow_runs.status'); END;

CREATE TRIGGER tasks_vocabulary_insert BEFORE INSERT ON tasks
WHEN NEW.state NOT IN ('available', 'running', 'succeeded', 'failed', 'dead', 'cancelled')
  OR NEW.kind NOT IN ('tool', 'http', 'wait')
  OR NEW.last_outcome NOT IN ('success', 'error', 'timeout', 'rescued')
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: tasks'); END;
CREATE TRIGGER tasks_vocabulary_update BEFORE UPDATE OF state, kind, last_outcome ON tasks
WHEN NEW.state NOT IN ('available', 'running', 'succeeded', 'failed', 'dead', 'cancelled')
  OR NEW.kind NOT IN ('tool', 'http', 'wait')
  OR NEW.last_outcome NOT IN ('success', 'error', 'timeout', 'rescued')
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: tasks'); END;

CREATE TRIGGER task_attempts_outcome_insert BEFORE INSERT ON task_attempts
WHEN NEW.outcome NOT IN ('success', 'error', 'timeout', 'rescued')
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: task_attempts.outcome'); END;
