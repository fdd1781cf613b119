"""Proof of origin: every record a service publishes is signed, and internal records are verified.

Anyone who can write to a topic could otherwise speak for a service: a forged
``otp.delivery_requested`` would send a recipient's code to the forger's phone. So each
service signs what it publishes with an Ed25519 key of its own, and a service acts on a
record of an internal topic (events, OTP requests, replies: every topic but the command
topics upstream systems write) only when it carries a valid signature by a key of the
service the registry names as that topic's writer (`signgate_contracts.topics.Topic.writer`).

The signature covers the deployed topic name, the record key, the ``type`` header and the
value, so a signed record cannot be moved to another topic or key, or given another type.
Two headers carry it: ``signgate-key-id`` (the first 16 hex digits of the SHA-256 of the raw
public key) and ``signgate-signature`` (base64). A replayed record is caught by the
consumer's dedupe on ``event_id``.

Keys:
- each service's own private key, ``SIGNGATE_<SERVICE>_RECORD_SIGNING_KEY`` (PEM), never shared;
- every service's public keys, ``SIGNGATE_RECORD_PUBLIC_KEYS``: JSON, writer -> list of PEM
  public keys (or their base64 body). Several keys per writer are accepted, so a key is
  rotated by adding the new public key everywhere, then switching the writer's signing key,
  then removing the old public key once the topics no longer hold records it signed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

KEY_ID_HEADER = "signgate-key-id"
SIGNATURE_HEADER = "signgate-signature"
_DOMAIN = b"signgate-record-v1"


class RecordKeySettings(BaseSettings):
    """The public keys of every service that writes internal topics."""

    model_config = SettingsConfigDict(env_prefix="SIGNGATE_RECORD_", extra="ignore")

    public_keys: dict[str, list[str]] = Field(
        default_factory=dict,
        description="JSON: writer (service name) -> its Ed25519 public keys, PEM or the PEM's base64 "
        "body; more than one during a rotation (SIGNGATE_RECORD_PUBLIC_KEYS).",
    )

    @field_validator("public_keys")
    @classmethod
    def _parseable(cls, keys: dict[str, list[str]]) -> dict[str, list[str]]:
        for writer, pems in keys.items():
            for pem in pems:
                load_public_key(pem, writer)
        return keys


class RecordKeyError(ValueError):
    """A record key in the settings is missing or cannot be read."""


class Unauthenticated(Exception):
    """A record on an internal topic has no valid signature of the topic's writer: it has no effect."""


def signed_bytes(topic: str, key: bytes | None, type_: str, value: bytes) -> bytes:
    """What a signature covers, each part length-prefixed so none can borrow from the next."""
    parts = [topic.encode(), key or b"", type_.encode()]
    prefix = b"".join(len(part).to_bytes(4, "big") + part for part in parts)
    return b"%s\x00%s%s" % (_DOMAIN, prefix, value)


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_public_key(text: str, writer: str = "?") -> Ed25519PublicKey:
    """A public key from its PEM, or from the PEM's base64 body."""
    pem = (
        text
        if text.lstrip().startswith("-----")
        else (f"-----BEGIN PUBLIC KEY-----\n{text.strip()}\n-----END PUBLIC KEY-----\n")
    )
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, binascii.Error) as error:
        raise RecordKeyError(
            f"a public key of {writer} in SIGNGATE_RECORD_PUBLIC_KEYS cannot be read"
        ) from error
    if not isinstance(key, Ed25519PublicKey):
        raise RecordKeyError(
            f"a public key of {writer} in SIGNGATE_RECORD_PUBLIC_KEYS is not Ed25519"
        )
    return key


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


class RecordSigner:
    """Signs the records one service publishes."""

    def __init__(self, private_key_pem: str) -> None:
        try:
            key = serialization.load_pem_private_key(private_key_pem.encode(), None)
        except (ValueError, TypeError) as error:
            raise RecordKeyError(
                "the record signing key cannot be read (a PEM Ed25519 key)"
            ) from error
        if not isinstance(key, Ed25519PrivateKey):
            raise RecordKeyError("the record signing key is not an Ed25519 key")
        self.public_key = key.public_key()
        self.key_id = key_id(self.public_key)
        self._key = SigningKey(
            key.private_bytes(  # read with cryptography, used through libsodium
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
        )

    def headers(
        self, topic: str, key: bytes | None, value: bytes, headers: Mapping[str, str]
    ) -> dict[str, str]:
        """``headers`` with the signature of the record added."""
        signature = self._key.sign(
            signed_bytes(topic, key, headers.get("type", ""), value)
        ).signature
        return {
            **headers,
            KEY_ID_HEADER: self.key_id,
            SIGNATURE_HEADER: base64.b64encode(signature).decode(),
        }


class RecordVerifier:
    """Checks that a record was signed by the writer its topic names."""

    def __init__(self, public_keys: Mapping[str, Iterable[str]]) -> None:
        self._keys: dict[str, tuple[str, VerifyKey]] = {}
        for writer, pems in public_keys.items():
            for pem in pems:
                public_key = load_public_key(pem, writer)
                raw = public_key.public_bytes(
                    serialization.Encoding.Raw, serialization.PublicFormat.Raw
                )
                self._keys[key_id(public_key)] = (writer, VerifyKey(raw))

    @classmethod
    def from_settings(cls, settings: RecordKeySettings) -> RecordVerifier:
        return cls(settings.public_keys)

    def knows(self, writer: str) -> bool:
        return any(owner == writer for owner, _ in self._keys.values())

    def verify(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: Sequence[tuple[str, bytes]],
        writer: str,
    ) -> None:
        """Raises `Unauthenticated`, saying why, unless ``writer`` signed this very record."""
        found = {
            name: raw for name, raw in headers if name in (KEY_ID_HEADER, SIGNATURE_HEADER, "type")
        }
        if KEY_ID_HEADER not in found or SIGNATURE_HEADER not in found:
            raise Unauthenticated("no signature")
        known = self._keys.get(found[KEY_ID_HEADER].decode(errors="replace"))
        if known is None:
            raise Unauthenticated("signed by an unknown key")
        owner, public_key = known
        if owner != writer:
            raise Unauthenticated(f"signed by {owner}, not by {writer}, the writer of this topic")
        try:
            signature = base64.b64decode(found[SIGNATURE_HEADER], validate=True)
            type_ = found.get("type", b"").decode()
            public_key.verify(signed_bytes(topic, key, type_, value), signature)
        except (BadSignatureError, ValueError, binascii.Error, UnicodeDecodeError):
            raise Unauthenticated("the signature does not match the record") from None


PUBLIC_KEYS_VARIABLE = "SIGNGATE_RECORD_PUBLIC_KEYS"


def generate_record_keys(writers: Iterable[str]) -> dict[str, str]:
    """Fresh record keys as environment variables: each writer's signing key (PEM) and the public
    keys of them all (each as its PEM's base64 body, so the JSON holds no newline)."""
    variables: dict[str, str] = {}
    public: dict[str, list[str]] = {}
    for writer in writers:
        key = Ed25519PrivateKey.generate()
        variables[signing_key_variable(f"SIGNGATE_{writer.upper()}_")] = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        public[writer] = ["".join(public_key_pem(key.public_key()).splitlines()[1:-1])]
    variables[PUBLIC_KEYS_VARIABLE] = json.dumps(public)
    return variables


def signing_key_variable(env_prefix: str) -> str:
    """The environment variable of a service's record signing key, from its settings' prefix."""
    return f"{env_prefix}RECORD_SIGNING_KEY"


def is_signing_key_variable(name: str) -> bool:
    return name.startswith("SIGNGATE_") and name.endswith("_RECORD_SIGNING_KEY")
