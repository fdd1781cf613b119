"""The identity service's settings (read from the environment, `docs/settings.md`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from libs.runtime.service import ServiceSettings
from libs.security.digests import DigestSettings
from libs.security.sealing import SealingPublicKeySettings
from libs.security.secrets import SecretSettings
from libs.security.tokens import TokenSettings, utc_now
from libs.security.totp import TotpSettings
from services.identity.domain import LockoutPolicy, PasswordLinks, PasswordPolicy

DEVELOPMENT_PORTAL_URL = "http://localhost:8080"
"""Where a development stack's portal (the gateway's pages) answers; set the real one in a deployment."""


class IdentitySettings(ServiceSettings):
    """``SIGNGATE_IDENTITY_*``, plus the shared pepper, token keys, identifier digest key
    (``SIGNGATE_DIGEST_KEY``) and the authentication service's sealing public key
    (``SIGNGATE_SEALING_PUBLIC_KEYS``), which the profile mobile number is sealed to."""

    model_config = SettingsConfigDict(env_prefix="SIGNGATE_IDENTITY_", extra="ignore")

    secrets: SecretSettings = Field(default_factory=SecretSettings)
    tokens: TokenSettings = Field(default_factory=TokenSettings)
    digests: DigestSettings = Field(default_factory=DigestSettings)
    sealing: SealingPublicKeySettings = Field(default_factory=SealingPublicKeySettings)
    totp: TotpSettings = Field(default_factory=TotpSettings)

    totp_key: SecretStr | None = Field(
        None,
        description="The keys API users' authenticator secrets are encrypted at rest with "
        "(SIGNGATE_IDENTITY_TOTP_KEY): a JSON list of base64 32-byte AES-256-GCM keys, newest first "
        "(the newest encrypts, any opens what it encrypted). Required.",
    )

    lockout_threshold: int = Field(5, ge=1, le=100, description="Failures in a row that lock.")
    lockout_mode: Literal["temporary", "hard"] = Field(
        "temporary", description="`hard`: locked until an administrator unlocks."
    )
    lockout_base_wait: timedelta = Field(
        timedelta(minutes=5), description="First temporary lockout; each next one doubles."
    )
    lockout_max_wait: timedelta = Field(
        timedelta(hours=24), description="Longest temporary lockout."
    )
    lockout_hard_after: int = Field(
        100, ge=1, description="Failures in a row after which the lock is hard, whatever the mode."
    )
    failure_memory: timedelta = Field(
        timedelta(days=30), description="How long Redis remembers failures without a new one."
    )

    api_key_token_ttl: timedelta = Field(
        timedelta(minutes=15),
        description="Lifetime of a token an API key is exchanged for (no longer than the token TTL): "
        "how long a revoked key's last token, and a gateway's cache of it, can still be used.",
    )

    password_min_length: int = Field(8, ge=1)
    password_max_age: timedelta | None = Field(
        None,
        description="Periodic expiry; off by default (NIST SP 800-63B: verifiers SHOULD NOT "
        "require periodic changes).",
    )
    portal_url: str = Field(
        DEVELOPMENT_PORTAL_URL,
        description="Base URL of the portal where users renew or change their password: AuthenticateUser's "
        "expired_password_url is this URL + /password/expired?user_name=..., its change_password_url this "
        "URL + /password/change?user_name=...",
    )
    expired_password_url: str | None = Field(
        None,
        description="Template with {user_name} and {user_id} replacing the portal's expired-password page.",
    )
    change_password_url: str | None = Field(
        None,
        description="Template with {user_name} and {user_id} replacing the portal's change-password page.",
    )

    clock: Callable[[], datetime] = Field(
        default=utc_now, exclude=True, description="Injectable for tests."
    )

    @field_validator("portal_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("the portal URL must be an http(s) URL")
        return value

    @property
    def password_links(self) -> PasswordLinks:
        return PasswordLinks(self.portal_url, self.expired_password_url, self.change_password_url)

    @property
    def lockout(self) -> LockoutPolicy:
        return LockoutPolicy(
            threshold=self.lockout_threshold,
            mode=self.lockout_mode,
            base_wait=self.lockout_base_wait,
            max_wait=self.lockout_max_wait,
            hard_after=self.lockout_hard_after,
        )

    @property
    def passwords(self) -> PasswordPolicy:
        return PasswordPolicy(min_length=self.password_min_length, max_age=self.password_max_age)
