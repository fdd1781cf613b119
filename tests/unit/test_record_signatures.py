"""Record signatures: what a signature covers, whose keys count, and a rotation's two keys."""

from __future__ import annotations

import json

import pytest

from libs.security.record_signatures import (
    PUBLIC_KEYS_VARIABLE,
    RecordKeyError,
    RecordSigner,
    RecordVerifier,
    Unauthenticated,
    generate_record_keys,
    signing_key_variable,
)

KEYS = generate_record_keys(["authentication", "workflow"])
NEXT = generate_record_keys(["authentication"])  # the key a rotation moves to
TOPIC, KEY, VALUE = "signgate.otp.requests", b"challenge-1", b'{"type":"otp.delivery_requested","destination":"+1"}'


def signer(keys: dict[str, str], writer: str) -> RecordSigner:
    return RecordSigner(keys[signing_key_variable(f"SIGNGATE_{writer.upper()}_")])


def verifier(*keyrings: dict[str, str]) -> RecordVerifier:
    public: dict[str, list[str]] = {}
    for keyring in keyrings:
        for writer, keys in json.loads(keyring[PUBLIC_KEYS_VARIABLE]).items():
            public.setdefault(writer, []).extend(keys)
    return RecordVerifier(public)


def headers(by: RecordSigner, topic: str = TOPIC, key: bytes = KEY, value: bytes = VALUE,
            type_: str = "otp.delivery_requested") -> list[tuple[str, bytes]]:
    return [(n, v.encode()) for n, v in by.headers(topic, key, value, {"type": type_}).items()]


def test_a_record_signed_by_its_topics_writer_is_accepted() -> None:
    verifier(KEYS).verify(TOPIC, KEY, VALUE, headers(signer(KEYS, "authentication")), "authentication")


@pytest.mark.parametrize(("topic", "key", "value", "type_", "reason"), [
    ("signgate.workflow.events", KEY, VALUE, "otp.delivery_requested", "the signature does not match the record"),
    (TOPIC, b"challenge-2", VALUE, "otp.delivery_requested", "the signature does not match the record"),
    (TOPIC, KEY, VALUE.replace(b"+1", b"+2"), "otp.delivery_requested", "the signature does not match the record"),
    (TOPIC, KEY, VALUE, "otp.sent", "the signature does not match the record"),
])
def test_a_signed_record_moved_to_another_topic_or_key_or_changed_is_refused(
        topic: str, key: bytes, value: bytes, type_: str, reason: str) -> None:
    signed = dict(headers(signer(KEYS, "authentication")))
    moved = [(n, type_.encode() if n == "type" else v) for n, v in signed.items()]
    with pytest.raises(Unauthenticated, match=reason):
        verifier(KEYS).verify(topic, key, value, moved, "authentication")


def test_unsigned_unknown_key_and_another_writers_key_are_refused_each_saying_why() -> None:
    check = verifier(KEYS)
    with pytest.raises(Unauthenticated, match="no signature"):
        check.verify(TOPIC, KEY, VALUE, [("type", b"otp.delivery_requested")], "authentication")
    with pytest.raises(Unauthenticated, match="signed by an unknown key"):
        check.verify(TOPIC, KEY, VALUE, headers(signer(NEXT, "authentication")), "authentication")
    with pytest.raises(Unauthenticated, match="signed by workflow, not by authentication"):
        check.verify(TOPIC, KEY, VALUE, headers(signer(KEYS, "workflow")), "authentication")
    garbled = [(n, b"!!" if n == "signgate-signature" else v) for n, v in headers(signer(KEYS, "authentication"))]
    with pytest.raises(Unauthenticated, match="does not match"):
        check.verify(TOPIC, KEY, VALUE, garbled, "authentication")


def test_during_a_rotation_both_keys_of_a_writer_are_accepted_and_after_it_only_the_new_one() -> None:
    during, after = verifier(KEYS, NEXT), verifier(NEXT)
    for by in (signer(KEYS, "authentication"), signer(NEXT, "authentication")):
        during.verify(TOPIC, KEY, VALUE, headers(by), "authentication")
    after.verify(TOPIC, KEY, VALUE, headers(signer(NEXT, "authentication")), "authentication")
    with pytest.raises(Unauthenticated, match="unknown key"):
        after.verify(TOPIC, KEY, VALUE, headers(signer(KEYS, "authentication")), "authentication")


def test_keys_that_cannot_be_read_are_refused_at_start() -> None:
    with pytest.raises(RecordKeyError):
        RecordSigner("not a key")
    with pytest.raises(RecordKeyError):
        RecordVerifier({"identity": ["bm90IGEga2V5"]})
