"""The otp_dispatch service: one-time passwords generated and delivered by SMS or email."""
