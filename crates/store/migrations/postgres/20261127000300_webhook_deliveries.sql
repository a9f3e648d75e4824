-- Accepted webhook deliveries, written in the same transaction as the run they started
-- (crates/webhooks/src/deliveries.rs). Times are Unix milliseconds.
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    slug TEXT NOT NULL,
    source TEXT NOT NULL,
    event TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    run_id TEXT NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
    -- accepted (the only result stored today; rejected deliveries are counted, not stored)
    result TEXT NOT NULL,
    -- SHA-256 of slug and delivery ID, hex; NULL when the delivery carried no ID
    dedupe_key TEXT,
    -- the delivery this one replays, if any
    replay_of TEXT,
    -- the raw body while webhooks.retention keeps it, else NULL
    payload TEXT,
    created_at BIGINT NOT NULL
);

CREATE INDEX webhook_deliveries_created_idx ON webhook_deliveries (created_at, id);
CREATE INDEX webhook_deliveries_slug_idx ON webhook_deliveries (slug, created_at, id);
