"""API keys: their shape, their public id, and their keyed digest."""

from __future__ import annotations

import uuid

import pytest

from libs.security.api_keys import ApiKeyDigests
from signgate_contracts.identity import ExchangeApiKey, api_key_id, command_key

PEPPER = b"p" * 32


def test_a_new_key_begins_with_its_public_id_and_only_its_digest_matches_it() -> None:
    """A fresh key is `sgk_` + its id + 43 characters of secret; its digest matches it and no other key."""
    digests = ApiKeyDigests(PEPPER)
    new, other = digests.new_key(), digests.new_key()

    assert new.api_key.startswith("sgk_") and len(new.api_key) == 79
    assert api_key_id(new.api_key) == new.key_id
    assert digests.matches(new.digest, new.api_key)
    assert not digests.matches(new.digest, other.api_key)
    assert not digests.matches(None, new.api_key)
    assert new.api_key not in new.digest


def test_the_digest_depends_on_the_pepper() -> None:
    """The same key digested under another pepper does not match: a stolen table without it is useless."""
    new = ApiKeyDigests(PEPPER).new_key()

    assert not ApiKeyDigests(b"q" * 32).matches(new.digest, new.api_key)


def test_a_short_pepper_is_refused() -> None:
    """A pepper under 32 bytes is refused."""
    with pytest.raises(ValueError):
        ApiKeyDigests(b"short")


@pytest.mark.parametrize("text", ["", "hello", "sgk_", "sgk_zz" + "0" * 30 + "secret", "SGK_" + "0" * 32])
def test_text_that_is_no_key_has_no_id(text: str) -> None:
    """Text without the prefix and 32 hex digits names no key."""
    assert api_key_id(text) is None


def test_an_exchange_is_keyed_by_the_keys_id_never_the_key() -> None:
    """The record key of an exchange is the key's public id; a malformed key gets a fixed key."""
    key_id = uuid.uuid4()
    api_key = f"sgk_{key_id.hex}{'s' * 43}"

    assert command_key(ExchangeApiKey(api_key=api_key)) == f"api-key:{key_id}"
    assert command_key(ExchangeApiKey(api_key="nonsense")) == "api-key"
