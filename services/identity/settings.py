"""The identity service's settings (read from the environment, `docs/settings.md`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from libs.secrets import SecretSettings
from libs.service import ServiceSettings
from libs.tokens import TokenSettings, utc_now
from services.identity.domain import LockoutPolicy, PasswordPolicy


class IdentitySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SIGNGATE_IDENTITY_", extra="ignore")

    secrets: SecretSettings = Field(default_factory=SecretSettings)
    tokens: TokenSettings = Field(default_factory=TokenSettings)

    lockout_threshold: int = Field(5, ge=1, le=100, description="Failures in a row that lock.")
    lockout_mode: Literal["temporary", "hard"] = Field(
        "temporary", description="`hard`: locked until an administrator unlocks."
    )
    lockout_base_wait: timedelta = Field(
        timedelta(minutes=5), description="First temporary lockout; each next one doubles."
    )
    lockout_max_wait: timedelta = Field(timedelta(hours=24), description="Longest temporary lockout.")
    lockout_hard_after: int = Field(
        100, ge=1, description="Failures in a row after which the lock is hard, whatever the mode."
    )
    failure_memory: timedelta = Field(
        timedelta(days=30), description="How long Redis remembers failures without a new one."
    )

    password_min_length: int = Field(8, ge=1)
    password_max_age: timedelta | None = Field(
        None,
        description="Periodic expiry; off by default (NIST SP 800-63B: verifiers SHOULD NOT "
        "require periodic changes).",
    )
    expired_password_url: str | None = Field(
        None, description="Template with {user_name} and {user_id}: where to renew an expired password."
    )
    change_password_url: str | None = Field(
        None, description="Template with {user_name} and {user_id}: where to change a password."
    )

    clock: Callable[[], datetime] = Field(default=utc_now, exclude=True,
                                          description="Injectable for tests.")

    @property
    def lockout(self) -> LockoutPolicy:
        return LockoutPolicy(
            threshold=self.lockout_threshold, mode=self.lockout_mode,
            base_wait=self.lockout_base_wait, max_wait=self.lockout_max_wait,
            hard_after=self.lockout_hard_after,
        )

    @property
    def passwords(self) -> PasswordPolicy:
        return PasswordPolicy(min_length=self.password_min_length, max_age=self.password_max_age)
