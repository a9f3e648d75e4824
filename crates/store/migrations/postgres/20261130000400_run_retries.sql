-- A retry is a new run of the same workflow with the same input; `retry_of` names the run it
-- retries. The unique index lets a run be retried once (retry the retry to try again), finds a
-- run's retry (`retried_by` in the API) and serves the ON DELETE when retention deletes the
-- original, which leaves the retry standing without its link.
ALTER TABLE workflow_runs ADD COLUMN retry_of TEXT REFERENCES workflow_runs (id) ON DELETE SET NULL;
CREATE UNIQUE INDEX workflow_runs_retry_of_idx ON workflow_runs (retry_of) WHERE retry_of IS NOT NULL;
