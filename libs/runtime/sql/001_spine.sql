-- The message spine every Postgres-backed service shares: applied in the service's own schema.

-- A message whose effects were committed; written in the same transaction as those effects,
-- so a redelivered message is recognised and applied once.
CREATE TABLE processed_messages (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- Messages to publish, written in the same transaction as the state they describe.
-- The relay publishes rows in id order and deletes them, so credentials bound for a
-- caller's reply topic do not linger here.
CREATE TABLE outbox (
    id         bigserial   PRIMARY KEY,
    topic      text        NOT NULL,
    key        bytea,
    payload    bytea       NOT NULL,
    headers    jsonb       NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
