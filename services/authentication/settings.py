"""The authentication service's settings (``SIGNGATE_AUTHENTICATION_*``, `docs/settings.md`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from libs.runtime.service import ServiceSettings
from libs.security.digests import DigestSettings
from libs.security.invitations import InvitationSettings
from libs.security.otp_store import OtpStoreSettings
from libs.security.secrets import SecretSettings
from libs.security.tokens import TokenSettings
from libs.security.totp import TotpSettings
from services.authentication.grants import GrantSettings
from signgate_contracts.envelope import utc_now
from signgate_contracts.workflow import DEFAULT_RETRY_COUNT


class AuthenticationSettings(ServiceSettings):
    """With the secrets it shares: the access-code pepper, the OTP pepper, the token public key,
    the grant signing key, the invitation public key and the identifier digest key."""

    model_config = SettingsConfigDict(env_prefix="SIGNGATE_AUTHENTICATION_", extra="ignore")

    secrets: SecretSettings = Field(default_factory=SecretSettings)
    tokens: TokenSettings = Field(default_factory=TokenSettings)
    otp_store: OtpStoreSettings = Field(default_factory=OtpStoreSettings)
    grants: GrantSettings = Field(default_factory=GrantSettings)
    invitations: InvitationSettings = Field(default_factory=InvitationSettings)
    digests: DigestSettings = Field(default_factory=DigestSettings)
    totp: TotpSettings = Field(default_factory=TotpSettings)
    sealing_keys: list[SecretStr] = Field(
        default_factory=list,
        description="This service's X25519 private keys (base64), JSON list: what "
        "workflow and identity seal to it opens with any (SIGNGATE_AUTHENTICATION_SEALING_KEYS).",
    )
    signing_retry_count: int = Field(
        DEFAULT_RETRY_COUNT,
        ge=1,
        le=10,
        description="Wrong codes a signer may submit for one signature field before its codes are "
        "refused (a signer has no recipient policy of their own to say so).",
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
