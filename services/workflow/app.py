"""Composition root of the workflow service."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from faststream.asgi import AsgiFastStream
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from libs.runtime.service import ServiceDefinition, ServiceSettings, build_app
from libs.security.accounts import ACCOUNT_STATE_HANDLERS
from libs.security.digests import DigestSettings
from libs.security.invitations import InvitationSettings
from libs.security.required_secrets import require
from libs.security.sealing import SealingPublicKeySettings
from libs.security.secrets import SecretSettings
from libs.security.tokens import TokenSettings
from services.workflow.callers import PublishingKeys
from services.workflow.handlers import FACTS, HANDLERS
from services.workflow.read_ahead import PackagesAhead
from signgate_contracts.topics import AUTHENTICATION_EVENTS, IDENTITY_EVENTS, WORKFLOW_COMMANDS

__all__ = ["DEFINITION", "WorkflowSettings", "create_app"]


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


DEFINITION = ServiceDefinition(
    dependencies=lambda resources: resources,  # TRANSITIONAL: the resources as they are
    settings=WorkflowSettings,
    name="workflow",
    schema="workflow",
    shared_tracks=("accounts",),
    consumes=(WORKFLOW_COMMANDS, AUTHENTICATION_EVENTS, IDENTITY_EVENTS),
    handlers={
        **HANDLERS,
        **ACCOUNT_STATE_HANDLERS,  # API users' account state, for verifying tokens
    },
    folder=Path(__file__).parent,
    read_ahead=partial(
        PackagesAhead, frozenset(FACTS)
    ),  # the packages of a lane's facts, in one go
)


def create_app(settings: WorkflowSettings | None = None) -> AsgiFastStream:
    settings = settings or WorkflowSettings()
    require(
        "workflow",
        {
            "SIGNGATE_SECRET_PEPPER": settings.secrets.pepper,
            "SIGNGATE_TOKEN_PUBLIC_KEY": settings.tokens.public_key or settings.tokens.private_key,
            "SIGNGATE_INVITATION_PRIVATE_KEY": settings.invitations.private_key,
            "SIGNGATE_DIGEST_KEY": settings.digests.key,
            "SIGNGATE_SEALING_PUBLIC_KEYS": settings.sealing.public_keys.get("authentication"),
        },
    )
    PublishingKeys.build(settings)  # and checks the keys it was given are keys
    return build_app(DEFINITION, settings)
