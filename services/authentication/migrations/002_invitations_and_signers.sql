-- A recipient invitation is valid only at the recipient's current authentication version
-- (workflow raises it on every change, reset or removal). A field's signer is the API user the
-- owner named for the recipient, by id or by the keyed digest of a user name, and must be a
-- member of the package's account.
ALTER TABLE recipients ADD COLUMN authentication_version integer NOT NULL DEFAULT 0;
ALTER TABLE recipients ADD COLUMN signer_user_id text;
ALTER TABLE recipients ADD COLUMN signer_user_name_digest text;
ALTER TABLE packages ADD COLUMN account text;
