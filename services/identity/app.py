"""Composition root of the identity service, and its settings (``SIGNGATE_IDENTITY_*``).

The pepper (``SIGNGATE_SECRET_PEPPER``) and the token keys (``SIGNGATE_TOKEN_PRIVATE_KEY``,
``SIGNGATE_TOKEN_PUBLIC_KEY``) are read without the service prefix: other services share them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from faststream.asgi import AsgiFastStream
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from libs.logging import get_logger
from libs.secrets import SecretSettings
from libs.service import ServiceDefinition, ServiceSettings, build_app
from libs.tokens import TokenSettings, utc_now
from services.identity import use_cases
from services.identity.domain import LockoutPolicy, PasswordPolicy
from signgate_contracts.identity import (
    AuthenticateUser,
    ChangePassword,
    DisableUser,
    EnableUser,
    ExpirePassword,
    RegisterUser,
    SetPassword,
    UnlockUser,
    UpdateUser,
    UpdateUserProfile,
)
from signgate_contracts.topics import IDENTITY_COMMANDS

__all__ = ["DEFINITION", "IdentitySettings", "create_app"]

log = get_logger(__name__)


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


DEFINITION = ServiceDefinition(
    name="identity",
    schema="identity",
    uses_redis=True,
    consumes=(IDENTITY_COMMANDS,),
    handlers={
        RegisterUser: use_cases.register_user,
        UpdateUser: use_cases.update_user,
        UpdateUserProfile: use_cases.update_user_profile,
        SetPassword: use_cases.set_password,
        ChangePassword: use_cases.change_password,
        DisableUser: use_cases.disable_user,
        EnableUser: use_cases.enable_user,
        UnlockUser: use_cases.unlock_user,
        ExpirePassword: use_cases.expire_password,
        AuthenticateUser: use_cases.authenticate_user,
    },
    folder=Path(__file__).parent,
)


def create_app(settings: IdentitySettings | None = None) -> AsgiFastStream:
    settings = settings or IdentitySettings()
    missing = [name for name, value in (
        ("SIGNGATE_SECRET_PEPPER", settings.secrets.pepper),
        ("SIGNGATE_TOKEN_PRIVATE_KEY", settings.tokens.private_key),
    ) if value is None]
    app = build_app(DEFINITION, settings)
    if missing:  # started anyway: commands needing them are answered with a 500 and logged
        log.warning("identity is not configured to hash passwords or issue tokens", missing=missing)
    return app
