"""Every object the authentication service's handlers use, built once at start (`app.build_dependencies`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from libs.runtime.service import Scope
from libs.security.digests import Digests
from libs.security.invitations import InvitationVerifier
from libs.security.otp_store import OtpStore
from libs.security.sealing import Opener
from libs.security.secrets import SecretHasher
from libs.security.tokens import TokenVerifier
from libs.security.totp import GuessCeiling, TotpSettings, UsedSteps
from services.authentication.failures import SecretFailures
from services.authentication.grants import GrantSigner


@dataclass(frozen=True)
class AuthenticationDependencies:
    hasher: SecretHasher
    """Checks passwords and access codes against the argon2id hashes workflow sealed to this service."""
    secret_failures: SecretFailures
    """Wrong passwords, access codes and TOTP codes, counted per recipient in Redis; passed methods."""
    otp: OtpStore
    """The OTP store shared with otp-dispatch: codes verified and consumed, wrong codes counted."""
    grants: GrantSigner
    """Signs the document-access grants."""
    tokens: TokenVerifier
    """Verifies API users' tokens (the owner's, a signer's), with their account state."""
    invitations: InvitationVerifier
    """Verifies the recipients' invitations (workflow signs them)."""
    digests: Digests
    """Keyed digests of emails and user names, as workflow and identity publish them."""
    opener: Opener
    """Opens what workflow and identity sealed to this service (secret hashes, destinations, mobiles)."""
    clock: Callable[[], datetime]
    signing_retry_count: int
    """Wrong codes a signer may submit for one field (`AuthenticationSettings.signing_retry_count`)."""
    used_steps: UsedSteps
    """The TOTP steps each subject has used (shared with identity: a code opens once, anywhere)."""
    totp_guesses: GuessCeiling
    """Each subject's ceiling of wrong TOTP codes (shared with identity: one ceiling per user)."""
    totp: TotpSettings
    """The drift window codes are checked in."""

    def now(self) -> datetime:
        return self.clock()


AuthenticationScope = Scope[AuthenticationDependencies]
"""What one record's handler gets: these dependencies, its transaction's connection, the read-ahead."""
