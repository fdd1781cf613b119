-- How a recipient's code messages read, as the sender set it on the policy (workflow's events):
-- the recipient's language (BCP 47) and the sender's brand name. NULL: OTP dispatch's defaults.
ALTER TABLE recipients ADD COLUMN locale text, ADD COLUMN brand_name text;
-- An API user's language, from identity's profile events: the language of their signer codes.
ALTER TABLE user_profiles ADD COLUMN locale text;
