-- API keys of API users, each bound to one of the user's accounts. Only a keyed digest of a key is
-- kept (HMAC-SHA256 under the pepper, libs/security/api_keys.py); the key itself is told once, to
-- the caller who issued it.

CREATE TABLE api_keys (
    id                 uuid        PRIMARY KEY,               -- the public id the key begins with
    user_id            uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    context_identifier uuid        NOT NULL REFERENCES accounts (context_identifier),
    name               text        NOT NULL,
    digest             text        NOT NULL,
    created_at         timestamptz NOT NULL,
    created_by         text        NOT NULL,                  -- the subject of the issuing token
    last_used_at       timestamptz,                           -- the last exchange for a token
    revoked_at         timestamptz
);

CREATE INDEX api_keys_by_user ON api_keys (user_id, created_at);
