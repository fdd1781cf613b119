"""The workflow service's settings (``SIGNGATE_WORKFLOW_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from libs.runtime.service import ServiceSettings
from libs.security.digests import DigestSettings
from libs.security.invitations import InvitationSettings
from libs.security.sealing import SealingPublicKeySettings
from libs.security.secrets import SecretSettings
from libs.security.tokens import TokenSettings
from libs.security.totp import TotpSettings


class WorkflowSettings(ServiceSettings):
    """``SIGNGATE_WORKFLOW_*``, plus the shared pepper (``SIGNGATE_SECRET_PEPPER``: access codes are
    hashed as the authentication service checks them), token key (``SIGNGATE_TOKEN_PUBLIC_KEY``),
    the invitation signing key (``SIGNGATE_INVITATION_PRIVATE_KEY``), the identifier digest key
    (``SIGNGATE_DIGEST_KEY``) and the authentication service's sealing public key
    (``SIGNGATE_SEALING_PUBLIC_KEYS``)."""

    model_config = SettingsConfigDict(env_prefix="SIGNGATE_WORKFLOW_", extra="ignore")

    secrets: SecretSettings = Field(default_factory=SecretSettings)
    tokens: TokenSettings = Field(default_factory=TokenSettings)
    invitations: InvitationSettings = Field(default_factory=InvitationSettings)
    digests: DigestSettings = Field(default_factory=DigestSettings)
    sealing: SealingPublicKeySettings = Field(default_factory=SealingPublicKeySettings)
    totp: TotpSettings = Field(default_factory=TotpSettings)
