"""Composition root of the workflow service: its definition, its dependencies (built once, when
the service starts) and its app."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from faststream.asgi import AsgiFastStream

from libs.runtime.service import Resources, ServiceDefinition, build_app
from libs.security.accounts import ACCOUNT_STATE_HANDLERS
from libs.security.digests import Digests
from libs.security.invitations import InvitationIssuer
from libs.security.required_secrets import require
from libs.security.sealing import Sealer
from libs.security.secrets import SecretHasher
from libs.security.tokens import TokenVerifier, utc_now
from services.workflow.dependencies import PublishingKeys, WorkflowDependencies
from services.workflow.handlers import FACTS, HANDLERS
from services.workflow.repository import PackagesAhead
from services.workflow.settings import WorkflowSettings
from signgate_contracts.topics import AUTHENTICATION_EVENTS, IDENTITY_EVENTS, WORKFLOW_COMMANDS

__all__ = [
    "DEFINITION",
    "WorkflowSettings",
    "build_dependencies",
    "create_app",
    "publishing_keys",
]


def publishing_keys(settings: WorkflowSettings) -> PublishingKeys:
    """The keys of what the workflow publishes; refuses a key that is not one."""
    return PublishingKeys(
        invitations=InvitationIssuer(settings.invitations),
        digests=Digests.from_settings(settings.digests),
        sealer=Sealer.for_consumer("authentication", settings.sealing),
    )


def build_dependencies(resources: Resources) -> WorkflowDependencies:
    """What the handlers use, built once from the service's settings when it starts."""
    settings = resources.settings
    assert isinstance(settings, WorkflowSettings), "the workflow runs with WorkflowSettings"
    return WorkflowDependencies(
        tokens=TokenVerifier.from_settings(settings.tokens),
        hasher=SecretHasher.from_settings(settings.secrets),
        keys=publishing_keys(settings),
        clock=utc_now,
        totp=settings.totp,
    )


DEFINITION = ServiceDefinition(
    name="workflow",
    settings=WorkflowSettings,
    dependencies=build_dependencies,
    schema="workflow",
    shared_tracks=("accounts",),
    consumes=(WORKFLOW_COMMANDS, AUTHENTICATION_EVENTS, IDENTITY_EVENTS),
    handlers={
        **HANDLERS,
        **ACCOUNT_STATE_HANDLERS,  # API users' account state, for verifying tokens
    },
    folder=Path(__file__).parent,
    read_ahead=partial(PackagesAhead, frozenset(FACTS)),  # the packages of a lane's facts, at once
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
    publishing_keys(settings)  # refuses now, not at the first message, a key that is not a key
    return build_app(DEFINITION, settings)
