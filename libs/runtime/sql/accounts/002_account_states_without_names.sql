-- The projection needs a user's id only: identity's events no longer carry names.
ALTER TABLE account_states DROP COLUMN user_name;
