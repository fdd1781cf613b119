"""Stored credentials are argon2id hashes of a peppered HMAC, checked off the event loop."""

from __future__ import annotations

import asyncio
import threading

import pytest
from pydantic import SecretStr

from libs.security.secrets import PepperMissing, SecretHasher, SecretSettings, generate_pepper

PEPPER = b"p" * 32


@pytest.fixture(scope="module")
def hasher() -> SecretHasher:
    return SecretHasher(PEPPER)


def test_hash_is_argon2id_with_the_owasp_parameters(hasher: SecretHasher) -> None:
    """A hash is argon2id with m=19456 KiB, t=2, p=1 and never contains the secret."""
    stored = hasher.hash_now("correct horse")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert "correct horse" not in stored


def test_the_right_secret_verifies_and_a_wrong_one_does_not(hasher: SecretHasher) -> None:
    """Verifying answers True for the hashed secret and False for any other."""
    stored = hasher.hash_now("correct horse")
    assert hasher.verify_now(stored, "correct horse").matches
    assert not hasher.verify_now(stored, "correct horsE").matches


def test_the_pepper_is_part_of_the_hash() -> None:
    """A hash made under one pepper does not verify under another (a stolen table is not enough)."""
    stored = SecretHasher(PEPPER).hash_now("correct horse")
    assert not SecretHasher(b"q" * 32).verify_now(stored, "correct horse").matches


def test_a_missing_hash_fails_after_the_same_work(hasher: SecretHasher) -> None:
    """Verifying against no hash (an unknown user) fails, after checking a dummy argon2id hash."""
    assert hasher.verify_now(None, "anything").matches is False
    assert hasher._dummy is not None and hasher._dummy.startswith("$argon2id$")  # noqa: SLF001


def test_a_hash_that_is_not_argon2_does_not_verify(hasher: SecretHasher) -> None:
    """A malformed stored hash is a failed check, not an error."""
    assert not hasher.verify_now("plaintext", "plaintext").matches


def test_weaker_parameters_ask_for_a_rehash() -> None:
    """A hash made with weaker parameters verifies and asks to be re-hashed with the current ones."""
    weak = SecretHasher(PEPPER, memory_kib=8_192, time_cost=1).hash_now("correct horse")
    result = SecretHasher(PEPPER).verify_now(weak, "correct horse")
    assert result.matches and result.needs_rehash


def test_current_parameters_need_no_rehash(hasher: SecretHasher) -> None:
    """A hash made with the current parameters does not ask to be re-hashed."""
    assert not hasher.verify_now(hasher.hash_now("x" * 8), "x" * 8).needs_rehash


async def test_hashing_runs_off_the_event_loop(hasher: SecretHasher, monkeypatch) -> None:
    """``hash`` and ``verify`` run argon2 in a worker thread, not the event loop's."""
    threads: list[str] = []
    real = hasher.hash_now

    def spy(secret: str) -> str:
        threads.append(threading.current_thread().name)
        return real(secret)

    monkeypatch.setattr(hasher, "hash_now", spy)
    stored = await hasher.hash("correct horse")
    assert (await hasher.verify(stored, "correct horse")).matches
    assert threads and threads[0] != threading.main_thread().name
    assert asyncio.get_running_loop() is not None


def test_a_short_pepper_is_refused() -> None:
    """A pepper under 32 bytes is refused when the hasher is made."""
    with pytest.raises(ValueError, match="32 bytes"):
        SecretHasher(b"short")


def test_settings_without_a_pepper_cannot_make_a_hasher() -> None:
    """Without SIGNGATE_SECRET_PEPPER there is no hasher, and the error names the setting."""
    with pytest.raises(PepperMissing, match="SIGNGATE_SECRET_PEPPER"):
        SecretHasher.from_settings(SecretSettings(pepper=None))


def test_settings_make_one_shared_hasher() -> None:
    """Equal settings give the same hasher (its dummy hash is computed once)."""
    settings = SecretSettings(pepper=SecretStr(generate_pepper()))
    assert SecretHasher.from_settings(settings) is SecretHasher.from_settings(settings.model_copy())
