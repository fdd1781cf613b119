"""The shared security pieces: hashing, tokens, grants' keys, masking, record authentication, sealing, digests, the OTP store."""
