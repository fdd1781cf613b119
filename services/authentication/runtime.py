"""The authentication service's settings and the objects its use cases share, built once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from libs.runtime.service import Resources, Scope, ServiceSettings
from libs.security.accounts import PostgresAccountStates
from libs.security.digests import Digests, DigestSettings
from libs.security.invitations import InvitationSettings, InvitationVerifier
from libs.security.otp_store import OtpRecipient, OtpStore, OtpStoreSettings
from libs.security.sealing import Opener
from libs.security.secrets import SecretHasher, SecretSettings
from libs.security.tokens import TokenSettings, TokenVerifier, utc_now
from services.authentication.failures import SecretFailures
from services.authentication.grants import GrantSettings, GrantSigner

FOLDER = Path(__file__).parent


class AuthenticationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SIGNGATE_AUTHENTICATION_", extra="ignore")

    secrets: SecretSettings = Field(default_factory=SecretSettings)
    tokens: TokenSettings = Field(default_factory=TokenSettings)
    otp_store: OtpStoreSettings = Field(default_factory=OtpStoreSettings)
    grants: GrantSettings = Field(default_factory=GrantSettings)
    invitations: InvitationSettings = Field(default_factory=InvitationSettings)
    digests: DigestSettings = Field(default_factory=DigestSettings)
    sealing_keys: list[SecretStr] = Field(
        default_factory=list,
        description="This service's X25519 private keys (base64), JSON list: what "
        "workflow and identity seal to it opens with any (SIGNGATE_AUTHENTICATION_SEALING_KEYS).",
    )
    clock: Callable[[], datetime] = Field(
        default=utc_now, exclude=True, description="Injectable for tests."
    )
    fetch_max_wait_ms: int = Field(
        25,
        ge=0,
        description="Longest the broker holds a fetch while no record waits: shorter than the "
        "other services' (100), as this service is on the path of every document opening.",
    )


@dataclass
class AuthenticationRuntime:
    settings: AuthenticationSettings
    hasher: SecretHasher
    failures: SecretFailures
    otp: OtpStore
    grants: GrantSigner
    verifier: TokenVerifier
    invitations: InvitationVerifier
    digests: Digests
    opener: Opener

    @classmethod
    def build(cls, resources: Resources) -> AuthenticationRuntime:
        settings = resources.settings
        assert isinstance(settings, AuthenticationSettings)
        assert resources.redis is not None and resources.pool is not None
        prefix = settings.connections.redis_prefix
        return cls(
            settings=settings,
            hasher=SecretHasher.from_settings(settings.secrets),
            failures=SecretFailures(resources.redis, prefix),
            otp=OtpStore(
                resources.redis,
                prefix=prefix,
                pepper=settings.otp_store.pepper,
                clock=settings.clock,
            ),
            grants=GrantSigner(settings.grants),
            verifier=TokenVerifier.from_settings(
                settings.tokens, states=PostgresAccountStates(resources.pool), clock=settings.clock
            ),
            invitations=InvitationVerifier(settings.invitations, settings.clock),
            digests=Digests.from_settings(settings.digests),
            opener=Opener(key.get_secret_value() for key in settings.sealing_keys),
        )

    def now(self) -> datetime:
        return self.settings.clock()

    @staticmethod
    def document_recipient(package_id: str, order: int) -> OtpRecipient:
        return OtpRecipient.document_opening(package_id, order)


def runtime(unit: Scope[Any]) -> AuthenticationRuntime:
    """The shared objects, built on first use from the opened resources."""
    extras = unit.dependencies.extras
    if "authentication" not in extras:
        extras["authentication"] = AuthenticationRuntime.build(unit.dependencies)
    return extras["authentication"]
