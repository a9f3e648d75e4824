-- Retention deletes a run's delivery rows with it (and ON DELETE CASCADE looks them up): by run.
CREATE INDEX IF NOT EXISTS webhook_deliveries_run_idx ON webhook_deliveries (run_id);
