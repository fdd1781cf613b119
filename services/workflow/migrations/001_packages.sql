-- Packages, their recipients with their authentication settings, and the package history.

CREATE TABLE packages (
    package_id    text        PRIMARY KEY,
    owner_id      text        NOT NULL,
    name          text        NOT NULL,
    workflow_type text        NOT NULL CHECK (workflow_type IN ('sequential', 'parallel')),
    state         text        NOT NULL
                              CHECK (state IN ('draft', 'in_progress', 'completed', 'declined', 'terminated')),
    locked        boolean     NOT NULL DEFAULT false,
    on_behalf_of  text,
    documents     jsonb       NOT NULL,
    registered_at timestamptz NOT NULL,
    shared_at     timestamptz,
    finished_at   timestamptz
);

-- One row per recipient; `authentication` holds the policy with the secret only as a
-- peppered argon2id hash. Failures and lockout are the authentication service's, as reported.
CREATE TABLE recipients (
    package_id      text        NOT NULL REFERENCES packages (package_id),
    recipient_order smallint    NOT NULL CHECK (recipient_order BETWEEN 1 AND 50),
    email           text        NOT NULL,
    name            text        NOT NULL,
    role            text        NOT NULL,
    mobile_number   text,
    status          text        NOT NULL CHECK (status IN ('pending', 'received', 'signed', 'declined')),
    received_at     timestamptz,
    signed_at       timestamptz,
    declined_at     timestamptz,
    authentication  jsonb,
    access_window   jsonb,
    failed_attempts integer     NOT NULL DEFAULT 0,
    locked_out_at   timestamptz,
    PRIMARY KEY (package_id, recipient_order)
);

-- Append-only. `sequence` numbers a package's entries from 1 (assigned under the package's
-- row lock); (cause_id, position) makes a message's entries unique, so a replay cannot
-- write an entry twice.
CREATE TABLE history (
    package_id      text        NOT NULL,
    sequence        integer     NOT NULL,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    actor           text        NOT NULL,
    action          text        NOT NULL,
    recipient_order smallint,
    correlation_id  uuid,
    cause_id        uuid        NOT NULL,
    position        smallint    NOT NULL,
    details         jsonb       NOT NULL DEFAULT '{}',
    PRIMARY KEY (package_id, sequence),
    UNIQUE (cause_id, position)
);
