-- Recipient invitations carry the recipient's authentication version: every change, reset or
-- removal of the recipient's authentication raises it, and older invitations stop working.
-- A recipient's signer is the API user the owner named (by id, or by a user name an
-- administrator set); a package belongs to one of its owner's accounts.
ALTER TABLE recipients ADD COLUMN authentication_version integer NOT NULL DEFAULT 0;
ALTER TABLE recipients ADD COLUMN signer_user_id uuid;
ALTER TABLE recipients ADD COLUMN signer_user_name text;
ALTER TABLE packages ADD COLUMN account text;
