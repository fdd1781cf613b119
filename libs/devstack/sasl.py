"""The broker's side of SASL PLAIN and SCRAM-SHA-256/512 (RFC 5802, 7677), for the embedded broker's front.

Kafka's SCRAM is RFC 5802 without channel binding (gs2 header ``n,,``). Users and passwords are
given to the front when it starts; what a SCRAM server stores of them (salt, iteration count,
stored key, server key) is derived at once, as Kafka keeps it. Every refusal is `SaslRefused`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

DIGESTS = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
MECHANISMS = ("PLAIN", *DIGESTS)
ITERATIONS = 4096  # Kafka's minimum for SCRAM credentials


class SaslRefused(Exception):
    """The client's SASL exchange failed: unknown user, wrong password, or a malformed message."""


@dataclass(frozen=True)
class ScramCredential:
    """What a SCRAM server keeps of a password."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


def scram_credential(digest: str, password: str, iterations: int = ITERATIONS) -> ScramCredential:
    """A fresh salt and the keys RFC 5802 derives from ``password`` with it."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac(digest, password.encode(), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", digest)
    return ScramCredential(
        salt,
        iterations,
        hashlib.new(digest, client_key).digest(),
        hmac.digest(salted, b"Server Key", digest),
    )


def plain_user(message: bytes, users: Mapping[str, str]) -> str:
    """The user a PLAIN message (``authzid NUL user NUL password``) authenticates."""
    try:
        authzid, user, password = message.decode().split("\0")
    except ValueError:
        raise SaslRefused("malformed PLAIN message") from None
    known = users.get(user)
    if known is None or not hmac.compare_digest(known.encode(), password.encode()):
        raise SaslRefused("invalid credentials")
    if authzid and authzid != user:
        raise SaslRefused("authorization id differs from the user")
    return user


def _attributes(message: str) -> dict[str, str]:
    try:
        return dict(part.split("=", 1) for part in message.split(","))
    except ValueError:
        raise SaslRefused("malformed SCRAM message") from None


class ScramExchange:
    """One client's SCRAM exchange: `first` answers the client's first message, `final` checks its
    proof and returns the server's signature."""

    def __init__(self, mechanism: str, credentials: Mapping[str, ScramCredential]) -> None:
        self.digest = DIGESTS[mechanism]
        self.credentials = credentials
        self.user: str | None = None
        self._first_bare = ""
        self._server_first = ""
        self._nonce = ""
        self._credential: ScramCredential | None = None

    def first(self, client_first: bytes) -> bytes:
        text = client_first.decode(errors="replace")
        if not text.startswith("n,"):
            raise SaslRefused("channel binding is not supported")
        self._first_bare = text.split(",", 2)[2] if text.count(",") >= 2 else ""
        attributes = _attributes(self._first_bare)
        user = attributes.get("n", "").replace("=2C", ",").replace("=3D", "=")
        client_nonce = attributes.get("r", "")
        if not user or not client_nonce:
            raise SaslRefused("malformed SCRAM first message")
        # An unknown user gets a made-up salt and fails at the proof, as a known one would.
        self._credential = self.credentials.get(user) or scram_credential(
            self.digest, secrets.token_hex(16)
        )
        self.user = user
        self._nonce = client_nonce + secrets.token_urlsafe(18)
        salt = base64.b64encode(self._credential.salt).decode()
        self._server_first = f"r={self._nonce},s={salt},i={self._credential.iterations}"
        return self._server_first.encode()

    def final(self, client_final: bytes) -> bytes:
        if self._credential is None:
            raise SaslRefused("SCRAM final message before the first")
        text = client_final.decode(errors="replace")
        without_proof, _, proof_part = text.rpartition(",p=")
        attributes = _attributes(without_proof)
        if attributes.get("r") != self._nonce or not proof_part:
            raise SaslRefused("SCRAM nonce mismatch")
        auth_message = f"{self._first_bare},{self._server_first},{without_proof}".encode()
        signature = hmac.digest(self._credential.stored_key, auth_message, self.digest)
        try:
            proof = base64.b64decode(proof_part, validate=True)
        except ValueError:
            raise SaslRefused("malformed SCRAM proof") from None
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=False))
        stored = hashlib.new(self.digest, client_key).digest()
        if len(proof) != len(signature) or not hmac.compare_digest(
            stored, self._credential.stored_key
        ):
            raise SaslRefused("invalid credentials")
        if self.user not in self.credentials:
            raise SaslRefused("invalid credentials")
        server_signature = hmac.digest(self._credential.server_key, auth_message, self.digest)
        return b"v=" + base64.b64encode(server_signature)
