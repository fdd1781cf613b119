"""Recipient invitations: what a recipient holds that proves they are the recipient.

Knowing a package id and an order is not enough to act as a recipient: every recipient command
(open with a password or access code, ask for and check a one-time password, read the status)
carries the recipient's invitation, or the package owner's token. The workflow service issues
an invitation per recipient when the workflow is shared, and again on the owner's request; the
signing platform puts it in the recipient's signing link. It is an EdDSA-signed JWT:

- ``iss`` the workflow service, ``aud`` ``signgate-recipient``, ``sub`` ``<package>/<order>``;
- ``pkg``, ``ord``: the recipient; ``ver``: the recipient's authentication version when it was
  issued. A reset, a change or a removal of the recipient's authentication raises the version,
  so every older invitation stops working;
- ``iat``, ``exp`` (a setting, 30 days by default), ``jti``.

The workflow service signs with ``SIGNGATE_INVITATION_PRIVATE_KEY``; the authentication service
verifies with ``SIGNGATE_INVITATION_PUBLIC_KEY`` (PEM Ed25519, as tokens).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from libs.runtime.errors import Unauthorized
from libs.security.tokens import AuthorizationDenied

ALGORITHM = "EdDSA"
AUDIENCE = "signgate-recipient"
ISSUER = "signgate-workflow"


class InvitationSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIGNGATE_INVITATION_", extra="ignore")

    private_key: SecretStr | None = Field(
        None,
        description="PEM Ed25519 key signing recipient invitations (workflow only): "
        "SIGNGATE_INVITATION_PRIVATE_KEY.",
    )
    public_key: str | None = Field(
        None,
        description="PEM Ed25519 public key checking them (authentication): SIGNGATE_INVITATION_PUBLIC_KEY.",
    )
    lifetime: timedelta = Field(timedelta(days=30), description="How long an invitation is valid.")


class InvitationKeyMissing(RuntimeError):
    """Invitations cannot be issued or checked: the key is not configured."""


class CredentialRequired(Unauthorized):
    """A recipient command carries neither the recipient's invitation nor the owner's token."""

    code = "credential_required"

    def __init__(self) -> None:
        super().__init__("User authentication required")


@dataclass(frozen=True)
class Invitation:
    """What a valid invitation says."""

    package_id: str
    order: int
    version: int
    invitation_id: str
    expires_at: datetime


class InvitationIssuer:
    def __init__(self, settings: InvitationSettings) -> None:
        if settings.private_key is None:
            raise InvitationKeyMissing(
                "SIGNGATE_INVITATION_PRIVATE_KEY is not set "
                "(python -m libs.devstack.dev_secrets makes a development set)"
            )
        key = serialization.load_pem_private_key(
            settings.private_key.get_secret_value().encode(), None
        )
        if not isinstance(key, Ed25519PrivateKey):
            raise InvitationKeyMissing("SIGNGATE_INVITATION_PRIVATE_KEY is not an Ed25519 key")
        self._key = key
        self.lifetime = settings.lifetime

    def issue(
        self, package_id: str, order: int, version: int, now: datetime
    ) -> tuple[str, Invitation]:
        invitation = Invitation(package_id, order, version, str(uuid.uuid4()), now + self.lifetime)
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": f"{package_id}/{order}",
            "pkg": package_id,
            "ord": order,
            "ver": version,
            "iat": int(now.timestamp()),
            "exp": int(invitation.expires_at.timestamp()),
            "jti": invitation.invitation_id,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM), invitation


class InvitationVerifier:
    def __init__(self, settings: InvitationSettings, clock) -> None:
        pem = settings.public_key
        if pem is None and settings.private_key is not None:
            private = serialization.load_pem_private_key(
                settings.private_key.get_secret_value().encode(), None
            )
            pem = (
                private.public_key()
                .public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                .decode()
            )
        if pem is None:
            raise InvitationKeyMissing("SIGNGATE_INVITATION_PUBLIC_KEY is not set")
        key = serialization.load_pem_public_key(pem.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise InvitationKeyMissing("SIGNGATE_INVITATION_PUBLIC_KEY is not an Ed25519 key")
        self._key = key
        self._clock = clock

    def verify(self, invitation: str) -> Invitation:
        """What the invitation says; `AuthorizationDenied` (401) for a forged, expired or altered one."""
        try:
            claims = jwt.decode(
                invitation,
                self._key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={
                    "require": ["exp", "iat", "jti", "iss", "aud", "sub"],
                    "verify_exp": False,
                },
            )
            expires_at = datetime.fromtimestamp(int(claims["exp"]), tz=self._clock().tzinfo)
            package_id, order, version = str(claims["pkg"]), int(claims["ord"]), int(claims["ver"])
        except (jwt.PyJWTError, KeyError, TypeError, ValueError):
            raise AuthorizationDenied() from None
        if expires_at <= self._clock():  # the service's clock, which tests can move
            raise AuthorizationDenied()
        return Invitation(package_id, order, version, str(claims["jti"]), expires_at)
