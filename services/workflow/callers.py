"""Who sent a command, and hashing what they sent: the workflow's seams to `libs.tokens` and
`libs.secrets`."""

from __future__ import annotations

from typing import Protocol, cast

from libs.accounts import PostgresAccountStates
from libs.secrets import SecretHasher, SecretSettings
from libs.service import Unit
from libs.tokens import TokenSettings, TokenVerifier
from signgate_contracts.envelope import Command, Secret


class CredentialSettings(Protocol):
    """What the workflow's settings (`services.workflow.app.WorkflowSettings`) provide here."""

    secrets: SecretSettings
    tokens: TokenSettings


def settings_of(unit: Unit) -> CredentialSettings:
    return cast(CredentialSettings, unit.resources.settings)


async def identify_caller(command: Command, unit: Unit) -> str:
    """The user id (the token's subject) of the command's caller.

    Refuses with the seeds' texts: no token 401 "User authentication required"; a bad,
    expired or revoked one 401 "Request authorization denied"; a disabled user's 403
    "Account is disabled" (from this service's projection of identity's events).
    """
    verifier = TokenVerifier.from_settings(
        settings_of(unit).tokens, states=PostgresAccountStates(unit.connection)
    )
    return (await verifier.verify(command.access_token)).subject


async def hash_secret(unit: Unit, secret: Secret | None) -> str | None:
    """The peppered argon2id hash of a password or access code (off the event loop); None for
    a secret left out or empty."""
    if secret is None or not secret.get_secret_value():
        return None
    hasher = SecretHasher.from_settings(settings_of(unit).secrets)
    return await hasher.hash(secret.get_secret_value())
