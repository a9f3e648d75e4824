-- A key belongs to a local user or to a JWT principal (issuer, subject), never both: a token
-- whose subject equals a local user's id owns nothing of that user's. `role` caps what the key
-- grants (a JWT principal's key carries the token's role at minting; NULL: the user's role).
ALTER TABLE api_keys ALTER COLUMN user_id DROP NOT NULL;
ALTER TABLE api_keys
    ADD COLUMN issuer TEXT,
    ADD COLUMN subject TEXT,
    ADD COLUMN role TEXT CHECK (role IN ('admin', 'user')),
    ADD CONSTRAINT api_keys_one_owner CHECK (
        (user_id IS NOT NULL AND issuer IS NULL AND subject IS NULL)
        OR (user_id IS NULL AND issuer IS NOT NULL AND subject IS NOT NULL AND role IS NOT NULL)
    );

CREATE INDEX api_keys_principal_idx ON api_keys (issuer, subject) WHERE issuer IS NOT NULL;
