"""Document-access grants: what a recipient shows to open a package after authenticating.

A grant is an EdDSA-signed JWT scoped to one package and one recipient (``doc:open``), signed
with the authentication service's own key, so the viewer that opens the document verifies it
with the public key alone (`signgate_client.GrantVerifier`). It is bounded:

- header ``kid``: the RFC 7638 thumbprint of the signing key, found in the service's JWKS
  (``/.well-known/jwks.json``; ``python -m services.authentication.jwks``);
- ``iss`` (``SIGNGATE_GRANT_ISSUER``), ``aud`` (``SIGNGATE_GRANT_AUDIENCE``, ``signgate-viewer``),
  ``sub`` ``<package>/<order>``, ``pkg``, ``ord``, ``scope``, ``iat``, ``nbf``, ``jti``;
- ``exp``: never later than ``SIGNGATE_GRANT_LIFETIME`` (30 minutes) after issue, nor than the end
  of the recipient's access window (`domain.grant_expiry`);
- revocable: every grant issued is recorded (``issued_grants``) and revoked, with an
  ``authentication.document_access_revoked`` event, when the recipient signs or declines, their
  authentication is changed, reset or removed, or the package ends (`projection`).

Rotation: sign with a new ``SIGNGATE_GRANT_PRIVATE_KEY`` and list the old public key in
``SIGNGATE_GRANT_PREVIOUS_PUBLIC_KEYS`` until the last grant it signed has expired (the lifetime,
plus verifiers' leeway); the JWKS carries both meanwhile.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.authentication.domain import GRANT_LIFETIME
from signgate_client.grants import AUDIENCE, ISSUER, SCOPE  # what verifiers expect by default
from signgate_client.jwks import ALGORITHM, GrantKeys, public_key_from_pem, thumbprint


class GrantKeyError(ValueError):
    """A grant key in the settings is not an Ed25519 key."""


class GrantSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIGNGATE_GRANT_", extra="ignore")

    private_key: SecretStr | None = Field(
        None,
        description="PEM Ed25519 key signing access grants (SIGNGATE_GRANT_PRIVATE_KEY); "
        "the authentication service refuses to start without it.",
    )
    previous_public_keys: list[str] = Field(
        default_factory=list,
        description="JSON list of PEM Ed25519 public keys of retired grant keys, "
        "published in the JWKS until the last grant they signed has expired (key rotation).",
    )
    issuer: str = ISSUER
    audience: str = Field(
        AUDIENCE, min_length=1, description="The grant's aud: what a viewer checks."
    )
    lifetime: timedelta = Field(
        GRANT_LIFETIME,
        description="Longest a grant is valid (its exp), whatever the frequency: long "
        "enough to read and sign a document in one sitting, short enough that a leaked grant is "
        "worth little; the access window's end is a bound too, and revocation ends it sooner.",
    )

    def signing_key(self) -> Ed25519PrivateKey:
        """The configured key (there is no other: replicas must sign with one key, the JWKS lists)."""
        if self.private_key is None:
            raise GrantKeyError(
                "SIGNGATE_GRANT_PRIVATE_KEY is not set (`python -m libs.devstack.dev_secrets` "
                "makes a development set)"
            )
        key = serialization.load_pem_private_key(self.private_key.get_secret_value().encode(), None)
        if not isinstance(key, Ed25519PrivateKey):
            raise GrantKeyError("SIGNGATE_GRANT_PRIVATE_KEY is not an Ed25519 private key")
        return key

    @field_validator("lifetime")
    @classmethod
    def _positive(cls, lifetime: timedelta) -> timedelta:
        if not timedelta(0) < lifetime <= timedelta(days=1):
            raise ValueError("the grant lifetime is more than nothing and at most a day")
        return lifetime


@dataclass(frozen=True)
class IssuedGrant:
    """A signed grant and what the service records of it."""

    token: str
    grant_id: str
    issued_at: datetime
    expires_at: datetime


class GrantSigner:
    def __init__(self, settings: GrantSettings) -> None:
        key = settings.signing_key()
        try:
            previous = [public_key_from_pem(pem) for pem in settings.previous_public_keys]
        except ValueError as error:
            raise GrantKeyError(f"SIGNGATE_GRANT_PREVIOUS_PUBLIC_KEYS: {error}") from None
        self._key = key
        self.key_id = thumbprint(key.public_key())
        self.keys = GrantKeys([key.public_key(), *previous])
        """Every key a valid grant may be signed with: the current one first."""
        self.issuer = settings.issuer
        self.audience = settings.audience
        self.lifetime = settings.lifetime

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public keys as a JWKS document (what ``/.well-known/jwks.json`` serves)."""
        return self.keys.jwks()

    def sign(self, package_id: str, order: int, now: datetime, expires_at: datetime) -> IssuedGrant:
        """A grant for the recipient, valid from ``now`` until ``expires_at`` (`domain.grant_expiry`)."""
        grant_id = str(uuid.uuid4())
        issued_at = int(now.timestamp())
        expires = int(
            expires_at.timestamp()
        )  # a NumericDate in whole seconds, never past expires_at
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": f"{package_id}/{order}",
            "pkg": package_id,
            "ord": order,
            "scope": SCOPE,
            "iat": issued_at,
            "nbf": issued_at,
            "exp": expires,
            "jti": grant_id,
        }
        token = jwt.encode(
            claims, self._key, algorithm=ALGORITHM, headers={"kid": self.key_id, "typ": "JWT"}
        )
        return IssuedGrant(token, grant_id, now, datetime.fromtimestamp(expires, UTC))
