-- The authentication service's own projection of packages and recipient policies, from
-- signgate.workflow.events, and of user profiles, from signgate.identity.events. It never
-- reads another service's tables.

CREATE TABLE packages (
    package_id      text        PRIMARY KEY,
    owner_id        text        NOT NULL,
    state           text        NOT NULL,
    workflow_locked boolean     NOT NULL DEFAULT false,
    document_ids    text[]      NOT NULL DEFAULT '{}'
);

CREATE TABLE recipients (
    package_id         text        NOT NULL REFERENCES packages,
    "order"            integer     NOT NULL,
    email_digest       text        NOT NULL,
    methods            text[]      NOT NULL DEFAULT '{}',   -- every listed method is required
    secret_hash        text,                                -- argon2id of the peppered secret
    channel            text,                                -- sms | email, for OTP methods
    destination        text,                                -- in clear: OTP dispatch needs it
    destination_masked text,
    retry_count        integer     NOT NULL DEFAULT 3,
    frequency          text        NOT NULL DEFAULT 'OncePerDocument',
    starts_at          timestamptz,
    ends_at            timestamptz,
    days_after_receipt integer,
    received_at        timestamptz,
    signed_at          timestamptz,
    locked_at          timestamptz,                         -- durable: a Redis loss unlocks nobody
    locked_failures    integer,
    last_failure       text,
    PRIMARY KEY (package_id, "order")
);

-- Users' profiles as identity publishes them: the signer OTP goes to the mobile number here.
CREATE TABLE user_profiles (
    user_id       uuid PRIMARY KEY,
    user_name     text NOT NULL,
    email_digest  text,
    mobile_number text
);

-- OTP deliveries this service asked for, to answer its caller when OTP dispatch replies.
CREATE TABLE otp_requests (
    request_id   uuid        PRIMARY KEY,  -- event id of the OtpDeliveryRequested
    package_id   text        NOT NULL,
    "order"      integer,
    user_id      text,
    document_id  text,
    field_name   text,
    requested_at timestamptz NOT NULL DEFAULT now()
);
