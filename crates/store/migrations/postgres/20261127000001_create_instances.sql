-- Engine processes sharing this database, and when each last reported in.
CREATE TABLE instances (
    id TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    -- Unix milliseconds, written by the process itself.
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);

CREATE INDEX instances_heartbeat_at_idx ON instances (heartbeat_at);
