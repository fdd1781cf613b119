-- API users' authenticator apps (TOTP) and their recovery codes. The secret is kept encrypted
-- (AES-256-GCM under SIGNGATE_IDENTITY_TOTP_KEY, services/identity/authenticators.py); a recovery
-- code only as a keyed digest (HMAC-SHA256 under the pepper). A user has at most one authenticator
-- that is not removed: pending until confirmed with a first code, then their second factor.

CREATE TABLE authenticators (
    id               uuid        PRIMARY KEY,
    user_id          uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    secret_encrypted text        NOT NULL,                  -- <key id>.<nonce + ciphertext>
    digits           integer     NOT NULL,
    algorithm        text        NOT NULL CHECK (algorithm IN ('SHA1', 'SHA256', 'SHA512')),
    period_seconds   integer     NOT NULL,
    created_at       timestamptz NOT NULL,
    confirmed_at     timestamptz,                           -- NULL: pending
    removed_at       timestamptz,
    removed_by       text        CHECK (removed_by IN ('user', 'administrator'))
);

CREATE UNIQUE INDEX authenticators_one_per_user ON authenticators (user_id) WHERE removed_at IS NULL;

CREATE TABLE recovery_codes (
    authenticator_id uuid        NOT NULL REFERENCES authenticators (id) ON DELETE CASCADE,
    digest           text        NOT NULL,
    created_at       timestamptz NOT NULL,
    used_at          timestamptz,                           -- each code opens once
    PRIMARY KEY (authenticator_id, digest)
);
