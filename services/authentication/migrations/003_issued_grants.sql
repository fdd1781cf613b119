-- Every document-access grant issued, so that it can be revoked: written in the transaction that
-- queues the grant's reply and its RecipientAuthenticated event, revoked (once) when the recipient
-- signs or declines, their authentication is changed, reset or removed, or the package ends. The
-- grant itself is not kept: a grant is named by its jti.
CREATE TABLE issued_grants (
    jti               uuid        PRIMARY KEY,
    package_id        text        NOT NULL,
    "order"           integer     NOT NULL,
    issued_at         timestamptz NOT NULL,
    expires_at        timestamptz NOT NULL,
    revoked_at        timestamptz,
    revocation_reason text,
    FOREIGN KEY (package_id, "order") REFERENCES recipients (package_id, "order"),
    CHECK ((revoked_at IS NULL) = (revocation_reason IS NULL))
);

-- What a revocation looks for: a recipient's (or a package's) grants not yet revoked.
CREATE INDEX issued_grants_unrevoked ON issued_grants (package_id, "order", expires_at) WHERE revoked_at IS NULL;
