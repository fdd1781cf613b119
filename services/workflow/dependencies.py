"""What the workflow's handlers use besides the record's transaction: built once, when the service
starts (``services.workflow.app.build_dependencies``), and handed to every handler as
``Scope.dependencies``."""

from __future__ import annotations

from dataclasses import dataclass

from libs.runtime.service import Scope
from libs.security.digests import Digests
from libs.security.invitations import InvitationIssuer
from libs.security.sealing import Sealer
from libs.security.secrets import SecretHasher
from libs.security.tokens import TokenVerifier
from libs.security.totp import TotpSettings
from signgate_contracts.envelope import Clock


@dataclass(frozen=True)
class PublishingKeys:
    """What the workflow signs, digests and seals what it publishes with (``views`` uses them)."""

    invitations: InvitationIssuer
    """Signs recipients' invitations (the key only this service holds)."""
    digests: Digests
    """Keyed digests of emails and user names, in place of the identifiers."""
    sealer: Sealer
    """Seals a policy's secret hash and destination to the authentication service."""


@dataclass(frozen=True)
class WorkflowDependencies:
    """Every object the workflow's handlers need, typed."""

    tokens: TokenVerifier
    """Verifies a caller's token (signature, audience, times); the account state is read at verify
    time through the record's own transaction (``PostgresAccountStates(scope.transaction)``)."""
    hasher: SecretHasher
    """Hashes a password or access code as the authentication service checks it."""
    keys: PublishingKeys
    clock: Clock
    """The time an invitation is issued at (decisions take their times from the messages)."""
    totp: TotpSettings
    """The issuer the otpauth URIs of provisioned recipient secrets name."""


WorkflowScope = Scope[WorkflowDependencies]
"""What each of the service's handlers gets: its dependencies, the record's transaction."""
