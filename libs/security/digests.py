"""Keyed digests of identifiers: how events name an email or a typed user name without holding it.

An unkeyed hash of an email is reversed by hashing a list of candidate addresses; an HMAC
under a key only the services hold is not. Every service that names or finds people by such
a digest shares one key, ``SIGNGATE_DIGEST_KEY``; each kind of identifier has its own purpose
label, so an email's digest never equals a user name's.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from signgate_contracts.workflow import keyed_digest


class DigestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIGNGATE_DIGEST_", extra="ignore")

    key: SecretStr | None = Field(
        None,
        description="HMAC key of identifier digests (SIGNGATE_DIGEST_KEY), 32+ characters; "
        "the same in every service.",
    )

    @field_validator("key")
    @classmethod
    def _long_enough(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and len(key.get_secret_value()) < 32:
            raise ValueError("the digest key must be at least 32 characters")
        return key


class DigestKeyMissing(RuntimeError):
    """Identifiers cannot be digested: no digest key is configured."""


class Digests:
    """The deployment's keyed digests of emails and user names."""

    def __init__(self, key: str) -> None:
        self._key = key.encode()

    @classmethod
    def from_settings(cls, settings: DigestSettings) -> Digests:
        if settings.key is None:
            raise DigestKeyMissing(
                "SIGNGATE_DIGEST_KEY is not set (python -m libs.devstack.dev_secrets makes one)"
            )
        return cls(settings.key.get_secret_value())

    def email(self, email: str) -> str:
        return keyed_digest(self._key, "email", email)

    def user_name(self, user_name: str) -> str:
        return keyed_digest(self._key, "user_name", user_name)
