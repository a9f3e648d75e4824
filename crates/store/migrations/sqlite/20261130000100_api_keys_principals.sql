-- A key belongs to a local user or to a JWT principal (issuer, subject), never both: a token
-- whose subject equals a local user's id owns nothing of that user's. `role` caps what the key
-- grants (a JWT principal's key carries the token's role at minting; NULL: the user's role).
-- SQLite cannot drop NOT NULL in place: the table is rebuilt (nothing references it).
CREATE TABLE api_keys_new (
    id TEXT PRIMARY KEY,
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    issuer TEXT,
    subject TEXT,
    role TEXT CHECK (role IN ('admin', 'user')),
    prefix TEXT NOT NULL,
    hash BLOB NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT,
    CHECK (
        (user_id IS NOT NULL AND issuer IS NULL AND subject IS NULL)
        OR (user_id IS NULL AND issuer IS NOT NULL AND subject IS NOT NULL AND role IS NOT NULL)
    )
);

INSERT INTO api_keys_new (id, user_id, prefix, hash, name, created_at, last_used_at, revoked_at)
    SELECT id, user_id, prefix, hash, name, created_at, last_used_at, revoked_at FROM api_keys;
DROP TABLE api_keys;
ALTER TABLE api_keys_new RENAME TO api_keys;

CREATE UNIQUE INDEX api_keys_hash_idx ON api_keys (hash);
CREATE INDEX api_keys_user_id_idx ON api_keys (user_id);
CREATE INDEX api_keys_principal_idx ON api_keys (issuer, subject) WHERE issuer IS NOT NULL;
