"""Sealed fields: what one consumer needs travels on the bus encrypted to that consumer alone.

A recipient's secret hash and OTP destination, a signer's mobile number: the authentication
service needs them, and every other reader of the events topic must not see them. So the
writer seals them to the consumer's public key with a libsodium sealed box (X25519 +
XSalsa20-Poly1305, an ephemeral sender key per message): only the holder of the consumer's
private key can open one, and a sealed value cannot be altered without the opening failing.

A sealed value is ``<key id>.<base64url of the box>``; the key id is the first 16 hex digits of
the SHA-256 of the consumer's raw public key. Inside is JSON ``{"ctx": …, "v": …}``: the
context (say ``"policy:<package>/<order>"``) names what the value belongs to, and opening it
under another context fails, so a sealed value cannot be moved to another recipient.

Keys:
- each consumer's private keys, ``SIGNGATE_<SERVICE>_SEALING_KEYS``: a JSON list of base64 X25519
  private keys; a value sealed to any of them opens;
- the current public key of every consumer, ``SIGNGATE_SEALING_PUBLIC_KEYS``: JSON, consumer ->
  base64 public key; writers seal to it.
Rotation: add the new private key to the consumer's list, then give writers its public key,
then drop the old private key once the topics no longer hold values sealed to it (their
retention: 7 days).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PUBLIC_KEYS_VARIABLE = "SIGNGATE_SEALING_PUBLIC_KEYS"


class SealingPublicKeySettings(BaseSettings):
    """The public keys writers seal to."""

    model_config = SettingsConfigDict(env_prefix="SIGNGATE_SEALING_", extra="ignore")

    public_keys: dict[str, str] = Field(
        default_factory=dict,
        description="JSON: consumer (service name) -> its current X25519 public key, base64 "
        "(SIGNGATE_SEALING_PUBLIC_KEYS).",
    )


class SealingKeyError(ValueError):
    """A sealing key is missing from the settings or cannot be read."""


class SealedValueError(ValueError):
    """A sealed value cannot be opened here: another key, another context, or altered."""


def _decode_key(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as error:
        raise SealingKeyError(f"{what} is not base64") from error
    if len(raw) != 32:
        raise SealingKeyError(f"{what} is not a 32-byte X25519 key")
    return raw


def key_id(public_key: PublicKey) -> str:
    return hashlib.sha256(bytes(public_key)).hexdigest()[:16]


class Sealer:
    """Seals values to one consumer's current public key."""

    def __init__(self, consumer: str, public_key: str) -> None:
        self.consumer = consumer
        self._public_key = PublicKey(
            _decode_key(public_key, f"the sealing public key of {consumer}")
        )
        self._box = SealedBox(self._public_key)
        self.key_id = key_id(self._public_key)

    @classmethod
    def for_consumer(cls, consumer: str, settings: SealingPublicKeySettings) -> Sealer:
        """Refuses to build without the consumer's public key: nothing goes out in clear instead."""
        if consumer not in settings.public_keys:
            raise SealingKeyError(
                f"{PUBLIC_KEYS_VARIABLE} has no public key of {consumer}, "
                f"which must open what is sealed to it"
            )
        return cls(consumer, settings.public_keys[consumer])

    def seal(self, context: str, value: Any) -> str:
        plaintext = json.dumps({"ctx": context, "v": value}, separators=(",", ":")).encode()
        box = self._box.encrypt(plaintext)
        return f"{self.key_id}.{base64.urlsafe_b64encode(box).decode().rstrip('=')}"


class Opener:
    """Opens values sealed to one consumer, with any of its private keys (rotation)."""

    def __init__(self, private_keys: Iterable[str]) -> None:
        self._boxes: dict[str, SealedBox] = {}
        for text in private_keys:
            private_key = PrivateKey(_decode_key(text, "a sealing private key"))
            self._boxes[key_id(private_key.public_key)] = SealedBox(private_key)
        if not self._boxes:
            raise SealingKeyError("no sealing private key is configured")

    def open(self, context: str, sealed: str) -> Any:
        """The value sealed under ``context``; `SealedValueError` for anything else."""
        kid, _, body = sealed.partition(".")
        box = self._boxes.get(kid)
        if box is None:
            raise SealedValueError("sealed to a key this service does not hold")
        try:
            plaintext = box.decrypt(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            opened = json.loads(plaintext)
        except (CryptoError, binascii.Error, ValueError) as error:
            raise SealedValueError("the sealed value cannot be opened") from error
        if not isinstance(opened, dict) or opened.get("ctx") != context:
            raise SealedValueError("the sealed value belongs to something else")
        return opened.get("v")


def private_keys_variable(service: str) -> str:
    return f"SIGNGATE_{service.upper()}_SEALING_KEYS"


def is_private_keys_variable(name: str) -> bool:
    return name.startswith("SIGNGATE_") and name.endswith("_SEALING_KEYS")


def generate_sealing_keys(consumers: Iterable[str]) -> dict[str, str]:
    """Fresh sealing keys as environment variables: each consumer's private key list and the public
    keys of them all."""
    variables: dict[str, str] = {}
    public: dict[str, str] = {}
    for consumer in consumers:
        key = PrivateKey.generate()
        variables[private_keys_variable(consumer)] = json.dumps(
            [base64.b64encode(bytes(key)).decode()]
        )
        public[consumer] = base64.b64encode(bytes(key.public_key)).decode()
    variables[PUBLIC_KEYS_VARIABLE] = json.dumps(public)
    return variables


def public_keys_of(variables: Mapping[str, str]) -> dict[str, str]:
    return json.loads(variables.get(PUBLIC_KEYS_VARIABLE, "{}"))
