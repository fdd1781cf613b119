"""What the identity service's handlers use, built once when the service starts
(`services.identity.app.build_dependencies`) and handed to every handler as ``scope.dependencies``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from libs.runtime.service import Scope
from libs.security.api_keys import ApiKeyDigests
from libs.security.secrets import SecretHasher
from libs.security.tokens import TokenIssuer, TokenVerifier
from libs.security.totp import GuessCeiling, TotpSettings, UsedSteps
from services.identity.authenticators import AuthenticatorSecrets, RecoveryCodeDigests
from services.identity.domain import LockoutPolicy, PasswordLinks, PasswordPolicy
from services.identity.failures import FailureCounters
from services.identity.views import PublishingKeys
from signgate_contracts.envelope import Clock


@dataclass(frozen=True)
class IdentityDependencies:
    """The identity service's objects and policies, one of each for the life of the service."""

    hasher: SecretHasher
    """Hashes and checks passwords (argon2id over the peppered HMAC), off the event loop."""
    issuer: TokenIssuer
    """Signs the tokens AuthenticateUser answers with."""
    verifier: TokenVerifier
    """Checks a command's token (signature, issuer, audience, times); the caller's account state is
    read from identity's own users table in the record's transaction (`handlers.verified_caller`)."""
    counters: FailureCounters
    """The failed-authentication counters in Redis."""
    keys: PublishingKeys
    """What identity digests and seals what it publishes with."""
    lockout: LockoutPolicy
    passwords: PasswordPolicy
    password_links: PasswordLinks
    """The portal's pages for an expired password and a required change."""
    api_keys: ApiKeyDigests
    """Makes API keys and checks them against their stored digests."""
    api_key_token_ttl: timedelta
    """Lifetime of a token an API key is exchanged for."""
    authenticator_secrets: AuthenticatorSecrets
    """Encrypts and opens the TOTP secrets of authenticator apps at rest."""
    recovery_codes: RecoveryCodeDigests
    """Makes recovery codes and their keyed digests."""
    used_steps: UsedSteps
    """Each user's last accepted TOTP step, in Redis (shared with the authentication service)."""
    totp_guesses: GuessCeiling
    """Each user's ceiling of wrong TOTP codes (shared with the authentication service)."""
    totp: TotpSettings
    """The drift window and the issuer an authenticator app shows."""
    clock: Clock


IdentityScope = Scope[IdentityDependencies]
"""What each of the service's handlers gets: its dependencies, the record's transaction."""
