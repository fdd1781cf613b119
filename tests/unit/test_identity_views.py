"""What identity's events show of a user: ids, masked contacts, keyed digests, a sealed mobile number."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from libs.security.digests import DigestKeyMissing, DigestSettings
from libs.security.sealing import SealedValueError, SealingKeyError, SealingPublicKeySettings
from services.identity.settings import IdentitySettings
from services.identity.views import PublishingKeys, contacts, failure, mobile_number_change
from signgate_contracts import encode
from signgate_contracts.identity import user_mobile_context
from tests.support.signing import authentication_opener, session_digests

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def keys() -> PublishingKeys:
    return PublishingKeys.build(IdentitySettings())


def test_profile_contacts_are_masked_digested_and_the_number_sealed_to_authentication(keys: PublishingKeys) -> None:
    """The email is masked and a keyed digest; the mobile number masked, and sealed so that the
    authentication service opens it as this user's number, and as nobody else's."""
    user_id = uuid.uuid4()
    shown = contacts(user_id, "Jane.Doe@example.com", "+14155550123", keys)
    opener = authentication_opener()

    assert shown["email_masked"] == "J***@example.com"
    assert shown["email_digest"] == session_digests().email("jane.doe@example.com")
    assert shown["mobile_masked"] == "+14*****0123"
    assert "4155550123" not in shown["mobile_sealed"]
    assert opener.open(user_mobile_context(user_id), shown["mobile_sealed"]) == "+14155550123"
    with pytest.raises(SealedValueError):
        opener.open(user_mobile_context(uuid.uuid4()), shown["mobile_sealed"])


def test_no_contact_no_field(keys: PublishingKeys) -> None:
    """A profile without an email or a number carries none of their forms."""
    assert set(contacts(uuid.uuid4(), None, None, keys).values()) == {None}


def test_a_failed_authentication_names_and_is_keyed_by_the_digest_of_the_name_typed(keys: PublishingKeys) -> None:
    """The record names the typed name only by its keyed digest (case and spaces aside), and is
    keyed by it; the text typed appears nowhere."""
    typed = "  Hunter2-Typed-As-A-Name@Example.com "
    outgoing = failure(typed, ["invalid_credentials"], keys, NOW)
    digest = session_digests().user_name("hunter2-typed-as-a-name@example.com")

    assert outgoing.key == digest == outgoing.message.user_name_digest  # type: ignore[attr-defined]
    assert b"hunter2" not in encode(outgoing.message).lower()
    assert "user_id" not in outgoing.message.model_dump()


def test_a_mobile_number_change_is_announced_masked(keys: PublishingKeys) -> None:
    """The announcement of a changed number shows both numbers masked, keyed by the user id."""
    user_id = uuid.uuid4()
    outgoing = mobile_number_change(user_id, "+14155550123", "+447700900123", "user", NOW)

    assert outgoing.key == str(user_id)
    assert (outgoing.message.old_mobile_masked, outgoing.message.new_mobile_masked) == (  # type: ignore[attr-defined]
        "+14*****0123", "+44******0123")
    assert b"4155550123" not in encode(outgoing.message) and b"7700900123" not in encode(outgoing.message)


def test_without_the_digest_or_sealing_key_identity_refuses_to_build() -> None:
    """Nothing goes out in clear for want of a key: no digest key, or no sealing key, no keys."""
    with pytest.raises(DigestKeyMissing):
        PublishingKeys.build(IdentitySettings(digests=DigestSettings(key=None)))
    with pytest.raises(SealingKeyError):
        PublishingKeys.build(IdentitySettings(sealing=SealingPublicKeySettings.model_construct(public_keys={})))
