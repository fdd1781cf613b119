-- API users, the accounts they may act for, and their credentials and lock state.

CREATE TABLE users (
    id                   uuid        PRIMARY KEY,
    user_name            text        NOT NULL UNIQUE,  -- normalised: stripped, lower-cased
    first_name           text        NOT NULL DEFAULT '',
    last_name            text        NOT NULL DEFAULT '',
    email                text,
    mobile_number        text,                         -- E.164
    roles                text[]      NOT NULL DEFAULT '{}',
    disabled             boolean     NOT NULL DEFAULT false,
    -- argon2id over HMAC-SHA256(pepper, password); NULL until a password is set
    password_hash        text,
    password_changed_at  timestamptz,
    password_expired     boolean     NOT NULL DEFAULT false,  -- an administrator's "expire now"
    must_change_password boolean     NOT NULL DEFAULT false,
    -- the durable side of lockout: Redis counts, Postgres remembers the run and the lock
    failed_attempts      integer     NOT NULL DEFAULT 0,      -- consecutive failures
    lockouts             integer     NOT NULL DEFAULT 0,      -- temporary lockouts in this run
    lock_mode            text        CHECK (lock_mode IN ('temporary', 'hard')),
    locked_until         timestamptz,
    tokens_valid_after   timestamptz,                         -- earlier tokens are revoked
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL
);

CREATE TABLE accounts (
    context_identifier uuid PRIMARY KEY,
    name               text NOT NULL
);

CREATE TABLE memberships (
    user_id            uuid    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    context_identifier uuid    NOT NULL REFERENCES accounts (context_identifier),
    is_primary         boolean NOT NULL,
    PRIMARY KEY (user_id, context_identifier)
);

-- Exactly one primary account per user (the "at least one" is checked by the domain).
CREATE UNIQUE INDEX memberships_one_primary ON memberships (user_id) WHERE is_primary;
