-- A user's language (BCP 47), from their profile: the language of the signer codes sent to them.
-- NULL: none given; OTP dispatch's default locale.
ALTER TABLE users ADD COLUMN locale text;
