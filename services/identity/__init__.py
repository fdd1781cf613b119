"""The identity service: API users, their accounts and passwords, and tokens every service trusts."""
