"""Hashing stored credentials (passwords, access codes): argon2id over a peppered HMAC.

A secret is first keyed with HMAC-SHA256 under the deployment's pepper (a key that lives in
the services' settings, never in the database), then hashed with argon2id. A stolen
database without the pepper is useless for offline guessing; a stolen pepper without the
database gives nothing at all.

Parameters: OWASP's argon2id recommendation, m=19456 KiB (19 MiB), t=2, p=1 (Password
Storage Cheat Sheet). RFC 9106's "low memory" profile (64 MiB, t=3, p=4) is ~4x the cost
per check on a 2-core machine; the OWASP parameters keep authentication fast enough for a
message handler while still costing an attacker 19 MiB per guess. Stored hashes record
their own parameters, so raising them later works: ``needs_rehash`` tells when to re-hash.

Hashing runs on worker threads, one per core (argon2 releases the GIL), never on the event
loop. Verifying against a missing hash still does the full work against a
dummy hash, so "no such user" takes as long as "wrong password".
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Any, Self, TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class SecretSettings(BaseSettings):
    """The pepper and the argon2id parameters, shared by every service that stores credentials."""

    model_config = SettingsConfigDict(env_prefix="SIGNGATE_SECRET_", extra="ignore")

    pepper: SecretStr | None = Field(
        None, description="HMAC key applied before hashing (SIGNGATE_SECRET_PEPPER), 32+ bytes."
    )
    argon2_memory_kib: int = Field(19_456, ge=8_192, description="argon2id memory cost in KiB.")
    argon2_time_cost: int = Field(2, ge=1, description="argon2id iterations.")
    argon2_parallelism: int = Field(1, ge=1, description="argon2id lanes.")


class PepperMissing(RuntimeError):
    """Credentials cannot be hashed or checked: no pepper is configured."""


class PepperedDigests:
    """Keyed digests (HMAC-SHA256 under the pepper) of secrets made from the CSPRNG: API keys,
    recovery codes. Such a secret cannot be guessed, so argon2's cost, which protects the secrets
    people choose, would only slow every check; without the pepper a stolen digest tests nothing."""

    MIN_PEPPER_BYTES = 32

    def __init__(self, pepper: bytes) -> None:
        if len(pepper) < self.MIN_PEPPER_BYTES:
            raise ValueError(f"the pepper must have at least {self.MIN_PEPPER_BYTES} bytes")
        self._pepper = pepper

    @classmethod
    def from_settings(cls, settings: SecretSettings) -> Self:
        if settings.pepper is None:
            raise PepperMissing("SIGNGATE_SECRET_PEPPER is not set")
        return cls(settings.pepper.get_secret_value().encode())

    def keyed(self, message: bytes) -> str:
        """The hex HMAC-SHA256 of ``message`` under the pepper (begin it with a purpose label)."""
        return hmac.new(self._pepper, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Verification:
    """The result of checking a secret against a stored hash."""

    matches: bool
    needs_rehash: bool = False


class SecretHasher:
    """Hashes and verifies secrets; ``hash`` and ``verify`` run off the event loop."""

    MIN_PEPPER_BYTES = 32

    def __init__(
        self, pepper: bytes, *, memory_kib: int = 19_456, time_cost: int = 2, parallelism: int = 1
    ) -> None:
        if len(pepper) < self.MIN_PEPPER_BYTES:
            raise ValueError(f"the pepper must have at least {self.MIN_PEPPER_BYTES} bytes")
        self._pepper = pepper
        self._argon2 = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        self._dummy: str | None = None

    @classmethod
    def from_settings(cls, settings: SecretSettings) -> SecretHasher:
        if settings.pepper is None:
            raise PepperMissing("SIGNGATE_SECRET_PEPPER is not set")
        return _cached_hasher(
            settings.pepper.get_secret_value(),
            settings.argon2_memory_kib,
            settings.argon2_time_cost,
            settings.argon2_parallelism,
        )

    def _peppered(self, secret: str) -> bytes:
        return hmac.new(self._pepper, secret.encode(), hashlib.sha256).digest()

    def hash_now(self, secret: str) -> str:
        """Blocking: hash ``secret`` (for tools and tests; services call ``hash``)."""
        return self._argon2.hash(self._peppered(secret))

    def verify_now(self, stored: str | None, secret: str) -> Verification:
        """Blocking: check ``secret`` against ``stored``; a None hash costs the same and fails."""
        peppered = self._peppered(secret)
        if stored is None:
            self._check(self._dummy_hash(), peppered)
            return Verification(False)
        if not self._check(stored, peppered):
            return Verification(False)
        return Verification(True, self._argon2.check_needs_rehash(stored))

    def _check(self, stored: str, peppered: bytes) -> bool:
        # argon2's verify compares the digests in constant time.
        try:
            return self._argon2.verify(stored, peppered)
        except (VerificationError, InvalidHashError):  # a mismatch, or a hash that is not argon2
            return False

    def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = self._argon2.hash(secrets.token_bytes(32))
        return self._dummy

    async def hash(self, secret: str) -> str:
        return await _hashing(self.hash_now, secret)

    async def verify(self, stored: str | None, secret: str) -> Verification:
        return await _hashing(self.verify_now, stored, secret)

    async def warm_up(self) -> None:
        """Compute the dummy hash now, so the first unknown-user check is not slower than later ones
        (once it is computed, this costs nothing: it does not queue for a hashing thread)."""
        if self._dummy is None:
            await _hashing(self._dummy_hash)


T = TypeVar("T")


@cache
def _hashing_threads() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="argon2")


async def _hashing(work: Callable[..., T], *args: Any) -> T:
    """Run ``work`` on the process's hashing threads, one per core: more hashes at once than cores
    only share the cores and their caches (each argon2id check fills 19 MiB), so each takes longer."""
    return await asyncio.get_running_loop().run_in_executor(_hashing_threads(), work, *args)


@cache
def _cached_hasher(pepper: str, memory_kib: int, time_cost: int, parallelism: int) -> SecretHasher:
    return SecretHasher(
        pepper.encode(), memory_kib=memory_kib, time_cost=time_cost, parallelism=parallelism
    )


def generate_pepper() -> str:
    """A fresh pepper for a development stack or a test run (43 URL-safe characters, 256 bits)."""
    return secrets.token_urlsafe(32)
