"""An API user's authenticator app at rest: its TOTP secret encrypted, its recovery codes digested.

**The secret** must be readable again (each code is computed from it), so it is encrypted, not
hashed: AES-256-GCM (``cryptography``) under the deployment's key ``SIGNGATE_IDENTITY_TOTP_KEY``, a
JSON list of base64 32-byte keys, newest first. A stored secret is ``<key id>.<base64url of nonce +
ciphertext>``; the key id is the first 16 hex digits of the SHA-256 of the key, so a secret opens
with the key that sealed it while the newest seals everything new. The associated data is the
authenticator's id and user id: a ciphertext copied to another row does not open there. A stolen
table without the key holds no secret.

Rotation: put a new key first in the list (every replica), and keep the old ones; a secret sealed
under an older key is sealed again under the newest at the next code it checks
(`AuthenticatorSecrets.needs_resealing`); drop an old key once no row names its id
(``SELECT count(*) FROM identity.authenticators WHERE secret_encrypted LIKE '<id>.%'``).

**Recovery codes** are made from the CSPRNG (10 characters of a 31-letter alphabet, about 50 bits
each), so, like API keys (`libs.security.api_keys`), a keyed digest is the right store: an
HMAC-SHA256 under the pepper (never in the database), with a purpose label and the
authenticator's id. argon2's cost protects secrets people choose; here it would only make a check
cost ten argon2 runs (one per code of the set) for nothing an attacker without the pepper can use.
Online guessing is bounded by the lockout: a wrong code counts as a failed login.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
import uuid
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from libs.security.secrets import PepperedDigests

TOTP_KEY_VARIABLE = "SIGNGATE_IDENTITY_TOTP_KEY"
KEY_BYTES = 32
_NONCE_BYTES = 12


class TotpKeyError(ValueError):
    """``SIGNGATE_IDENTITY_TOTP_KEY`` is missing, not a JSON list of 32-byte keys, or no key of it
    opens a stored secret."""


def generate_totp_key() -> str:
    """A fresh ``SIGNGATE_IDENTITY_TOTP_KEY``: a JSON list of one new key."""
    return json.dumps([base64.b64encode(os.urandom(KEY_BYTES)).decode()])


def _key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


def _associated_data(authenticator_id: uuid.UUID, user_id: uuid.UUID) -> bytes:
    return f"signgate-totp-secret:{authenticator_id}:{user_id}".encode()


class AuthenticatorSecrets:
    """Encrypts TOTP secrets under the newest key and opens them under whichever key sealed them."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys or any(len(key) != KEY_BYTES for key in keys):
            raise TotpKeyError(f"SIGNGATE_IDENTITY_TOTP_KEY must list {KEY_BYTES}-byte keys")
        self._newest = _key_id(keys[0])
        self._keys = {_key_id(key): AESGCM(key) for key in keys}

    @classmethod
    def from_setting(cls, setting: SecretStr | None) -> AuthenticatorSecrets:
        if setting is None:
            raise TotpKeyError("SIGNGATE_IDENTITY_TOTP_KEY is not set")
        try:
            listed = json.loads(setting.get_secret_value())
            keys = [base64.b64decode(key, validate=True) for key in listed]
        except (ValueError, TypeError, binascii.Error):
            raise TotpKeyError(
                "SIGNGATE_IDENTITY_TOTP_KEY must be a JSON list of base64 keys, newest first"
            ) from None
        return cls(keys)

    def seal(self, secret: str, *, authenticator_id: uuid.UUID, user_id: uuid.UUID) -> str:
        """``secret`` encrypted under the newest key, bound to its authenticator and user."""
        nonce = os.urandom(_NONCE_BYTES)
        box = self._keys[self._newest].encrypt(
            nonce, secret.encode(), _associated_data(authenticator_id, user_id)
        )
        return f"{self._newest}.{base64.urlsafe_b64encode(nonce + box).decode()}"

    def open(self, stored: str, *, authenticator_id: uuid.UUID, user_id: uuid.UUID) -> str:
        """The secret ``stored`` holds; `TotpKeyError` if no key of the setting sealed it, or it was
        altered or moved to another row."""
        key_id, _, text = stored.partition(".")
        key = self._keys.get(key_id)
        if key is None:
            raise TotpKeyError(f"no key with id {key_id} in SIGNGATE_IDENTITY_TOTP_KEY")
        try:
            raw = base64.urlsafe_b64decode(text)
            opened = key.decrypt(
                raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _associated_data(authenticator_id, user_id)
            )
        except (InvalidTag, ValueError, binascii.Error):
            raise TotpKeyError("a stored TOTP secret does not open (altered, or moved)") from None
        return opened.decode()

    def needs_resealing(self, stored: str) -> bool:
        """Whether ``stored`` was sealed under a key older than the newest."""
        return not stored.startswith(self._newest + ".")


RECOVERY_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
"""Lower-case letters and digits without the look-alikes (i, l, o, 0, 1): read off paper, typed."""
RECOVERY_CODE_LENGTH = 10
_PURPOSE = b"signgate-recovery-code\x00"


def normalise_recovery_code(code: str) -> str:
    """A recovery code as typed, without its hyphen, spaces and case."""
    return "".join(code.split()).replace("-", "").lower()


def looks_like_recovery_code(code: str) -> bool:
    normalised = normalise_recovery_code(code)
    return len(normalised) == RECOVERY_CODE_LENGTH and all(
        c in RECOVERY_CODE_ALPHABET for c in normalised
    )


@dataclass(frozen=True)
class NewRecoveryCodes:
    codes: list[str]
    """As shown to the user once: ``xxxxx-xxxxx``."""
    digests: list[str]
    """What is stored."""


class RecoveryCodeDigests(PepperedDigests):
    """Makes recovery codes and their keyed digests under the pepper."""

    def new_codes(self, authenticator_id: uuid.UUID, count: int) -> NewRecoveryCodes:
        """``count`` fresh codes for ``authenticator_id`` and their digests."""
        codes = []
        for _ in range(count):
            raw = "".join(
                secrets.choice(RECOVERY_CODE_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH)
            )
            codes.append(f"{raw[:5]}-{raw[5:]}")
        return NewRecoveryCodes(codes, [self.digest(authenticator_id, c) for c in codes])

    def digest(self, authenticator_id: uuid.UUID, code: str) -> str:
        """The stored form of ``code`` (as typed: hyphens, spaces and case do not matter)."""
        return self.keyed(
            _PURPOSE + authenticator_id.bytes + normalise_recovery_code(code).encode()
        )
