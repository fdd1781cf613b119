"""Composition root of the authentication service.

Consumes its commands, and the facts it projects: workflow's recipient policies, identity's
user profiles and account states, and OTP dispatch's answers. Its settings are
`AuthenticationSettings` (``SIGNGATE_AUTHENTICATION_*``), plus the secrets it shares:
``SIGNGATE_SECRET_PEPPER`` (access codes and passwords), ``SIGNGATE_OTP_PEPPER`` (OTP
digests), ``SIGNGATE_TOKEN_PUBLIC_KEY`` (API users' tokens) and ``SIGNGATE_GRANT_PRIVATE_KEY``
(the document-access grants it signs). Besides ``/health`` and ``/metrics`` it serves the grant
public keys at ``/.well-known/jwks.json`` (`jwks`).
"""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from libs.runtime.service import ServiceDefinition, build_app
from libs.security.accounts import ACCOUNT_STATE_HANDLERS
from libs.security.required_secrets import require
from services.authentication.jwks import jwks_routes
from services.authentication.projection import HANDLERS as PROJECTION_HANDLERS
from services.authentication.read_ahead import RecipientsAhead
from services.authentication.runtime import FOLDER, AuthenticationSettings
from services.authentication.use_cases import COMMAND_HANDLERS, OTP_HANDLERS
from signgate_contracts.topics import (
    AUTHENTICATION_COMMANDS,
    IDENTITY_EVENTS,
    OTP_EVENTS,
    WORKFLOW_EVENTS,
)

__all__ = ["DEFINITION", "AuthenticationSettings", "create_app"]

DEFINITION = ServiceDefinition(
    dependencies=lambda resources: resources,  # TRANSITIONAL: the resources as they are
    settings=AuthenticationSettings,
    name="authentication",
    schema="authentication",
    shared_tracks=("accounts",),
    uses_redis=True,
    consumes=(AUTHENTICATION_COMMANDS, WORKFLOW_EVENTS, IDENTITY_EVENTS, OTP_EVENTS),
    handlers={
        **COMMAND_HANDLERS,
        **PROJECTION_HANDLERS,
        **OTP_HANDLERS,
        **ACCOUNT_STATE_HANDLERS,  # API users' account state, for verifying tokens
    },
    folder=FOLDER,
    read_ahead=RecipientsAhead,  # a verification's recipient, read with its lane's others
    http_routes=jwks_routes,
)


def create_app(settings: AuthenticationSettings | None = None) -> AsgiFastStream:
    settings = settings or AuthenticationSettings()
    require(
        "authentication",
        {
            "SIGNGATE_SECRET_PEPPER": settings.secrets.pepper,
            "SIGNGATE_OTP_PEPPER": settings.otp_store.pepper,
            "SIGNGATE_TOKEN_PUBLIC_KEY": settings.tokens.public_key or settings.tokens.private_key,
            "SIGNGATE_GRANT_PRIVATE_KEY": settings.grants.private_key,
            "SIGNGATE_INVITATION_PUBLIC_KEY": settings.invitations.public_key,
            "SIGNGATE_DIGEST_KEY": settings.digests.key,
            "SIGNGATE_AUTHENTICATION_SEALING_KEYS": settings.sealing_keys,
        },
    )
    return build_app(DEFINITION, settings)
