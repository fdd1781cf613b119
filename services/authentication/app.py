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

from pathlib import Path

from faststream.asgi import AsgiFastStream

from libs.runtime.service import Resources, ServiceDefinition, build_app
from libs.security.accounts import ACCOUNT_STATE_HANDLERS, PostgresAccountStates
from libs.security.digests import Digests
from libs.security.invitations import InvitationVerifier
from libs.security.otp_store import OtpStore
from libs.security.required_secrets import require
from libs.security.sealing import Opener
from libs.security.secrets import SecretHasher
from libs.security.tokens import TokenVerifier
from libs.security.totp import GuessCeiling, UsedSteps
from services.authentication.dependencies import AuthenticationDependencies
from services.authentication.failures import SecretFailures
from services.authentication.grants import GrantSigner
from services.authentication.handlers import COMMAND_HANDLERS, OTP_HANDLERS
from services.authentication.jwks import jwks_routes
from services.authentication.projection import HANDLERS as PROJECTION_HANDLERS
from services.authentication.repository import RecipientsAhead
from services.authentication.settings import AuthenticationSettings
from signgate_contracts.topics import (
    AUTHENTICATION_COMMANDS,
    IDENTITY_EVENTS,
    OTP_EVENTS,
    WORKFLOW_EVENTS,
)

__all__ = ["DEFINITION", "AuthenticationSettings", "build_dependencies", "create_app"]


def build_dependencies(resources: Resources) -> AuthenticationDependencies:
    """Every object the handlers use, built once the pool and Redis have opened."""
    settings = resources.settings
    assert isinstance(settings, AuthenticationSettings)
    assert resources.redis is not None and resources.pool is not None
    prefix = settings.connections.redis_prefix
    return AuthenticationDependencies(
        hasher=SecretHasher.from_settings(settings.secrets),
        secret_failures=SecretFailures(resources.redis, prefix),
        otp=OtpStore(
            resources.redis, prefix=prefix, pepper=settings.otp_store.pepper, clock=settings.clock
        ),
        grants=GrantSigner(settings.grants),
        tokens=TokenVerifier.from_settings(
            settings.tokens, states=PostgresAccountStates(resources.pool), clock=settings.clock
        ),
        invitations=InvitationVerifier(settings.invitations, settings.clock),
        digests=Digests.from_settings(settings.digests),
        opener=Opener(key.get_secret_value() for key in settings.sealing_keys),
        clock=settings.clock,
        signing_retry_count=settings.signing_retry_count,
        used_steps=UsedSteps(resources.redis, prefix),
        totp_guesses=GuessCeiling(resources.redis, prefix, settings.totp),
        totp=settings.totp,
    )


DEFINITION = ServiceDefinition(
    name="authentication",
    settings=AuthenticationSettings,
    dependencies=build_dependencies,
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
    folder=Path(__file__).parent,
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
