-- The dedupe cache's durable record: a delivery ID the cache forgot (a restart, an eviction) is
-- still found here within its TTL (crates/webhooks/src/deliveries.rs, last_accepted).
CREATE INDEX IF NOT EXISTS webhook_deliveries_dedupe_idx ON webhook_deliveries (dedupe_key, created_at)
    WHERE dedupe_key IS NOT NULL;
