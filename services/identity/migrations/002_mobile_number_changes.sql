-- Every change of a user's profile mobile number, the number signer codes go to: from what to
-- what, when, and by whom (the user themself, or an administrator). Announced on the events
-- topic masked (identity.user_mobile_number_changed); kept here in full, for whoever looks into
-- a signature later.

CREATE TABLE mobile_number_changes (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id        uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    old_number     text,                                    -- E.164; NULL: there was none
    new_number     text,                                    -- E.164; NULL: removed
    changed_by     text        NOT NULL CHECK (changed_by IN ('user', 'administrator')),
    actor          text        NOT NULL,                    -- the subject of the token that changed it
    correlation_id uuid        NOT NULL,
    changed_at     timestamptz NOT NULL
);

CREATE INDEX mobile_number_changes_by_user ON mobile_number_changes (user_id, changed_at);
