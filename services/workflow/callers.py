"""Who sent a command, hashing what they sent, and the keys of what the workflow publishes: the
workflow's seams to `libs.security.tokens`, `libs.security.secrets`, `libs.security.invitations`, `libs.security.digests` and
`libs.security.sealing`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, cast

from libs.runtime.service import Scope
from libs.security.accounts import PostgresAccountStates
from libs.security.digests import Digests, DigestSettings
from libs.security.invitations import InvitationIssuer, InvitationSettings
from libs.security.sealing import Sealer, SealingPublicKeySettings
from libs.security.secrets import SecretHasher, SecretSettings
from libs.security.tokens import Claims, TokenSettings, TokenVerifier
from services.workflow.domain import Caller
from signgate_contracts.envelope import Command, Secret


class CredentialSettings(Protocol):
    """What the workflow's settings (`services.workflow.app.WorkflowSettings`) provide here."""

    secrets: SecretSettings
    tokens: TokenSettings
    invitations: InvitationSettings
    digests: DigestSettings
    sealing: SealingPublicKeySettings


def settings_of(unit: Scope[Any]) -> CredentialSettings:
    return cast(CredentialSettings, unit.dependencies.settings)


@dataclass(frozen=True)
class PublishingKeys:
    """What the workflow signs, digests and seals what it publishes with; built once."""

    invitations: InvitationIssuer
    digests: Digests
    sealer: Sealer

    @classmethod
    def build(cls, settings: CredentialSettings) -> PublishingKeys:
        return cls(
            InvitationIssuer(settings.invitations),
            Digests.from_settings(settings.digests),
            Sealer.for_consumer("authentication", settings.sealing),
        )


def keys_of(unit: Scope[Any]) -> PublishingKeys:
    extras = unit.dependencies.extras
    if "workflow_keys" not in extras:
        extras["workflow_keys"] = PublishingKeys.build(settings_of(unit))
    return extras["workflow_keys"]


async def caller_of(command: Command, unit: Scope[Any]) -> Caller:
    """The command's caller, with the accounts their token names (refusals as `identify_caller`)."""
    claims: Claims = await _verifier(unit).verify(command.access_token)
    return Caller(claims.subject, tuple(claims.accounts), claims.primary_account)


def _verifier(unit: Scope[Any]) -> TokenVerifier:
    return TokenVerifier.from_settings(
        settings_of(unit).tokens, states=PostgresAccountStates(unit.connection)
    )


async def identify_caller(command: Command, unit: Scope[Any]) -> str:
    """The user id (the token's subject) of the command's caller.

    Refuses with the seeds' texts: no token 401 "User authentication required"; a bad,
    expired or revoked one 401 "Request authorization denied"; a disabled user's 403
    "Account is disabled" (from this service's projection of identity's events).
    """
    return (await _verifier(unit).verify(command.access_token)).subject


async def hash_secret(unit: Scope[Any], secret: Secret | None) -> str | None:
    """The peppered argon2id hash of a password or access code (off the event loop); None for
    a secret left out or empty."""
    if secret is None or not secret.get_secret_value():
        return None
    hasher = SecretHasher.from_settings(settings_of(unit).secrets)
    return await hasher.hash(secret.get_secret_value())
