"""Composition root of the identity service: its definition, its dependencies (built once, when its
resources have opened) and ``create_app``.

Its settings are `services.identity.settings.IdentitySettings` (``SIGNGATE_IDENTITY_*``); the
pepper (``SIGNGATE_SECRET_PEPPER``), the token keys (``SIGNGATE_TOKEN_PRIVATE_KEY``,
``SIGNGATE_TOKEN_PUBLIC_KEY``), the identifier digest key (``SIGNGATE_DIGEST_KEY``) and the
sealing public keys (``SIGNGATE_SEALING_PUBLIC_KEYS``) are read without the service prefix:
other services share them. The keys of authenticator secrets at rest
(``SIGNGATE_IDENTITY_TOTP_KEY``) are identity's alone.
"""

from __future__ import annotations

from pathlib import Path

from faststream.asgi import AsgiFastStream

from libs.runtime.service import Resources, ServiceDefinition, build_app
from libs.security.api_keys import ApiKeyDigests
from libs.security.required_secrets import require
from libs.security.secrets import SecretHasher
from libs.security.tokens import TokenIssuer, TokenVerifier
from libs.security.totp import GuessCeiling, UsedSteps
from services.identity.authenticators import (
    TOTP_KEY_VARIABLE,
    AuthenticatorSecrets,
    RecoveryCodeDigests,
)
from services.identity.dependencies import IdentityDependencies
from services.identity.failures import FailureCounters
from services.identity.handlers import HANDLERS
from services.identity.settings import IdentitySettings
from services.identity.views import PublishingKeys, rejection_key
from signgate_contracts.topics import IDENTITY_COMMANDS

__all__ = ["DEFINITION", "IdentitySettings", "build_dependencies", "create_app"]


def build_dependencies(resources: Resources) -> IdentityDependencies:
    """The hasher, the token issuer and verifier, the failure counters, the publishing keys and
    the policies, from the service's settings and its Redis client."""
    settings = resources.settings
    if not isinstance(settings, IdentitySettings):
        raise TypeError("the identity service runs with IdentitySettings")
    if resources.redis is None:
        raise TypeError("the identity service counts failures in Redis")
    return IdentityDependencies(
        hasher=SecretHasher.from_settings(settings.secrets),
        issuer=TokenIssuer.from_settings(settings.tokens, clock=settings.clock),
        verifier=TokenVerifier.from_settings(settings.tokens, clock=settings.clock),
        counters=FailureCounters(
            resources.redis, settings.connections.redis_prefix, settings.failure_memory
        ),
        keys=PublishingKeys.build(settings),
        lockout=settings.lockout,
        passwords=settings.passwords,
        password_links=settings.password_links,
        api_keys=ApiKeyDigests.from_settings(settings.secrets),
        api_key_token_ttl=min(settings.api_key_token_ttl, settings.tokens.ttl),
        authenticator_secrets=AuthenticatorSecrets.from_setting(settings.totp_key),
        recovery_codes=RecoveryCodeDigests.from_settings(settings.secrets),
        used_steps=UsedSteps(resources.redis, settings.connections.redis_prefix),
        totp_guesses=GuessCeiling(
            resources.redis, settings.connections.redis_prefix, settings.totp
        ),
        totp=settings.totp,
        clock=settings.clock,
    )


DEFINITION = ServiceDefinition(
    name="identity",
    settings=IdentitySettings,
    dependencies=build_dependencies,
    schema="identity",
    uses_redis=True,
    consumes=(IDENTITY_COMMANDS,),
    handlers=HANDLERS,
    folder=Path(__file__).parent,
    rejection_key=rejection_key,  # a rejection is keyed by the digest of the name given, never the name
)


def create_app(settings: IdentitySettings | None = None) -> AsgiFastStream:
    """The identity service's app; refuses to be made without the secrets it needs."""
    settings = settings or IdentitySettings()
    require(
        "identity",
        {
            "SIGNGATE_SECRET_PEPPER": settings.secrets.pepper,
            "SIGNGATE_TOKEN_PRIVATE_KEY": settings.tokens.private_key,
            "SIGNGATE_DIGEST_KEY": settings.digests.key,
            "SIGNGATE_SEALING_PUBLIC_KEYS": settings.sealing.public_keys.get("authentication"),
            TOTP_KEY_VARIABLE: settings.totp_key,
        },
    )
    PublishingKeys.build(settings)  # and checks the keys it was given are keys
    AuthenticatorSecrets.from_setting(settings.totp_key)
    return build_app(DEFINITION, settings)
