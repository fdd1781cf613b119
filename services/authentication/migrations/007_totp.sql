-- Authenticator-app codes (method totp). A recipient's codes are checked against the authenticator
-- app of the API user the owner named as their signer (totp_source user_authenticator; the user's
-- confirmed authenticator, from identity's events, in user_authenticators), or against a secret
-- workflow provisioned for them (totp_source provisioned). Secrets are kept only as they arrived:
-- sealed to this service (libs.security.sealing), opened when a code is checked; never in clear.
ALTER TABLE recipients ADD COLUMN totp_source text;
ALTER TABLE recipients ADD COLUMN totp_authenticator_id text;
ALTER TABLE recipients ADD COLUMN totp_sealed text;       -- context recipient-totp:<package>/<authenticator id>

CREATE TABLE user_authenticators (
    user_id          uuid        PRIMARY KEY,
    authenticator_id uuid        NOT NULL,
    secret_sealed    text        NOT NULL,                -- context user-totp:<user_id>
    digits           integer     NOT NULL,
    algorithm        text        NOT NULL,
    period_seconds   integer     NOT NULL,
    confirmed_at     timestamptz NOT NULL
);
