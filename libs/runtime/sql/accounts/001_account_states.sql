-- API users' account state, projected from signgate.identity.events (see libs/security/accounts.py):
-- what the token verifier asks before trusting a signed token.
CREATE TABLE account_states (
    user_id            uuid        PRIMARY KEY,
    user_name          text        NOT NULL,
    disabled           boolean     NOT NULL DEFAULT false,
    tokens_valid_after timestamptz,          -- tokens issued before it are revoked
    changed_at         timestamptz NOT NULL  -- when the last disabling or enabling happened
);
