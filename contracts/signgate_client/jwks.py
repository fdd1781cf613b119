"""Ed25519 public keys as JSON Web Keys (RFC 8037), and key sets (RFC 7517) of them.

A grant's ``kid`` header is the RFC 7638 thumbprint of its signing key's JWK: the base64url
SHA-256 of ``{"crv":"Ed25519","kty":"OKP","x":"…"}``. Anyone who holds the public key computes
the same id, so a key set written from PEM files and one fetched from the authentication
service's ``/.well-known/jwks.json`` agree.

Needs ``cryptography`` (``pip install 'signgate-contracts[verify]'``).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ALGORITHM = "EdDSA"


class KeySetError(ValueError):
    """A key set, key or PEM that is not an Ed25519 signing key as grants use."""


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def thumbprint(key: Ed25519PublicKey) -> str:
    """RFC 7638 thumbprint (SHA-256) of the key's JWK: the grant's ``kid``."""
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw_public_key(key))},
        separators=(",", ":"),
        sort_keys=True,
    )
    return _b64url(hashlib.sha256(canonical.encode()).digest())


def jwk_of(key: Ed25519PublicKey) -> dict[str, str]:
    """The public JWK of ``key``: OKP, Ed25519, for signatures with EdDSA, its thumbprint as ``kid``."""
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": _b64url(raw_public_key(key)),
        "kid": thumbprint(key),
        "use": "sig",
        "alg": ALGORITHM,
    }


def public_key_from_pem(pem: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except ValueError as error:
        raise KeySetError("not a PEM public key") from error
    if not isinstance(key, Ed25519PublicKey):
        raise KeySetError("not an Ed25519 public key: grants are signed with EdDSA only")
    return key


def public_key_from_jwk(jwk: Mapping[str, Any]) -> Ed25519PublicKey:
    """The Ed25519 key of a JWK; refuses any other type, curve or algorithm, and a key marked for
    anything but signatures."""
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise KeySetError("not an OKP Ed25519 key")
    if jwk.get("alg", ALGORITHM) != ALGORITHM or jwk.get("use", "sig") != "sig":
        raise KeySetError("not a key for EdDSA signatures")
    try:
        raw = _unb64url(str(jwk["x"]))
        return Ed25519PublicKey.from_public_bytes(raw)
    except (KeyError, ValueError) as error:
        raise KeySetError("the key's x is not a 32-byte Ed25519 public key") from error


class GrantKeys(Mapping[str, Ed25519PublicKey]):
    """The public keys grants may be signed with, by ``kid``: the current one and, while a rotation
    is under way, the previous ones."""

    def __init__(self, keys: Iterable[Ed25519PublicKey]) -> None:
        self._keys = {thumbprint(key): key for key in keys}

    @classmethod
    def from_pem(cls, *pems: str) -> GrantKeys:
        return cls(public_key_from_pem(pem) for pem in pems)

    @classmethod
    def from_jwks(cls, document: Mapping[str, Any] | str | bytes) -> GrantKeys:
        """The keys of a JWKS document. A key whose ``kid`` is not its thumbprint is refused: ids are
        derived, never chosen, so a key set cannot give one key another key's id."""
        parsed = json.loads(document) if isinstance(document, (str, bytes)) else document
        entries = parsed.get("keys") if isinstance(parsed, Mapping) else None
        if not isinstance(entries, list):
            raise KeySetError("a JWKS document is an object with a list of keys")
        keys = []
        for entry in entries:
            if not isinstance(entry, Mapping):
                raise KeySetError("a key of a JWKS document is an object")
            key = public_key_from_jwk(entry)
            if "kid" in entry and entry["kid"] != thumbprint(key):
                raise KeySetError(f"key id {entry['kid']!r} is not the key's RFC 7638 thumbprint")
            keys.append(key)
        return cls(keys)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The keys as a JWKS document."""
        return {"keys": [jwk_of(key) for key in self._keys.values()]}

    def __getitem__(self, kid: str) -> Ed25519PublicKey:
        return self._keys[kid]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)
