-- Operator console sessions: only the keyed hash of the cookie's random id is stored. A session
-- ends at expires_at, at sign-out (revoked_at), or with the API key it was opened with.
CREATE TABLE console_sessions (
    id_hash BLOB PRIMARY KEY,
    key_id TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX console_sessions_expires_idx ON console_sessions (expires_at);
CREATE INDEX console_sessions_key_idx ON console_sessions (key_id);
