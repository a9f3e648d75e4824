-- Users of the API and their API keys (crate compozy-auth).
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'user')),
    -- Unix milliseconds.
    created_at BIGINT NOT NULL
);

-- Emails are unique regardless of case.
CREATE UNIQUE INDEX users_email_lower_idx ON users (lower(email));

-- Keys are stored only as HMAC-SHA-256(server secret, key); the plaintext is never stored.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- First characters of the key, shown to owners so they can tell keys apart.
    prefix TEXT NOT NULL,
    hash BYTEA NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);

CREATE UNIQUE INDEX api_keys_hash_idx ON api_keys (hash);
CREATE INDEX api_keys_user_id_idx ON api_keys (user_id);
