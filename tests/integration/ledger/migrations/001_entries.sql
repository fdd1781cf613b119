-- A test-only ledger: one row per applied deposit, in the order applied.
CREATE TABLE entries (
    seq      bigserial PRIMARY KEY,
    event_id uuid      NOT NULL,
    account  text      NOT NULL,
    amount   integer   NOT NULL
);
