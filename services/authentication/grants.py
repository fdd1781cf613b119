"""Document-access grants: what a recipient shows to open a package after authenticating.

A grant is an EdDSA-signed JWT scoped to one package and one recipient (``doc:open``),
signed with the authentication service's own key, so the viewer that opens the document
verifies it with the public key alone.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SCOPE = "doc:open"


class GrantSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIGNGATE_GRANT_", extra="ignore")

    private_key: SecretStr | None = Field(
        None, description="PEM Ed25519 key signing access grants (SIGNGATE_GRANT_PRIVATE_KEY); "
        "without it each process makes its own, and grants verify only with that process's key.",
    )
    issuer: str = "signgate-authentication"


class GrantSigner:
    def __init__(self, settings: GrantSettings) -> None:
        if settings.private_key is not None:
            key = serialization.load_pem_private_key(settings.private_key.get_secret_value().encode(), None)
            assert isinstance(key, Ed25519PrivateKey)
        else:
            key = Ed25519PrivateKey.generate()
        self._key = key
        self.issuer = settings.issuer

    def public_key_pem(self) -> str:
        return self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def sign(self, package_id: str, order: int, now: datetime, expires_at: datetime | None) -> str:
        claims = {
            "iss": self.issuer, "sub": f"{package_id}/{order}", "pkg": package_id, "ord": order,
            "scope": SCOPE, "iat": int(now.timestamp()), "jti": str(uuid.uuid4()),
        }
        if expires_at is not None:
            claims["exp"] = int(expires_at.timestamp())
        return jwt.encode(claims, self._key, algorithm="EdDSA")
