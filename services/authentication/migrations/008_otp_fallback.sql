-- Delivery fallback of a recipient's code (issue 18): where a failed text goes next, in order
-- ('voice': a call to the same number; 'email': fallback_email, the recipient's address on the
-- package, which workflow seals to this service), as the sender chose. Empty: no fallback.
ALTER TABLE recipients
    ADD COLUMN otp_fallback text[] NOT NULL DEFAULT '{}',
    ADD COLUMN fallback_email text;
