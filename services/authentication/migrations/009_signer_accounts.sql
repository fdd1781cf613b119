-- The accounts each API user is a member of (context identifiers), from identity's events
-- (UserRegisteredV2, UserUpdatedV2, and AuthenticatorConfirmed, which carries them too so that
-- a user registered before this table has them once their app is confirmed). A recipient's
-- codes are checked against their signer's authenticator app only while that user is a member
-- of the package's account, as a signer's own token must be for seed 002.
CREATE TABLE user_accounts (
    user_id    uuid        PRIMARY KEY,
    accounts   text[]      NOT NULL,
    changed_at timestamptz NOT NULL
);
