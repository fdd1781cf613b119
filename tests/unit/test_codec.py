"""Decoding and encoding signgate messages: the reasons bytes are refused, and what survives."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Literal
from uuid import uuid4

import pytest
from pydantic import ValidationError

from signgate_contracts import (
    BY_NAME,
    Command,
    CommandRejected,
    Secret,
    Topic,
    TopicKind,
    UndecodableMessage,
    UnknownMessageType,
    decode,
    encode,
)
from signgate_contracts.codec import read_object

IDENTITY_EVENTS = BY_NAME["signgate.identity.events"]


class OpenDocument(Command):
    """A test-only command carrying a credential."""

    type: Literal["test.open_document"] = "test.open_document"
    package_id: str
    access_code: Secret


TEST_COMMANDS = Topic(
    "signgate.test.commands",
    TopicKind.COMMANDS,
    "package_id",
    1,
    timedelta(hours=1),
    (OpenDocument, CommandRejected),
    "Test-only topic with two message types.",
)


def _rejection() -> CommandRejected:
    return CommandRejected(
        status=404,
        code="document_not_found",
        message="Document not found",
        command_type="test.open_document",
        correlation_id=uuid4(),
        causation_id=uuid4(),
    )


@pytest.mark.parametrize(
    "raw",
    [b"not json", b'{"type": ', b"\xff\xfe", b""],
    ids=["text", "truncated", "binary", "empty"],
)
def test_bytes_that_are_not_json_are_undecodable(raw: bytes) -> None:
    """Bytes that are not JSON raise UndecodableMessage."""
    with pytest.raises(UndecodableMessage, match="not JSON"):
        decode(IDENTITY_EVENTS, raw)


@pytest.mark.parametrize(
    "raw", [b"[]", b'[{"type": "command.rejected"}]', b'"command.rejected"', b"42"]
)
def test_json_that_is_not_an_object_is_undecodable(raw: bytes) -> None:
    """A JSON array, string or number raises UndecodableMessage."""
    with pytest.raises(UndecodableMessage, match="not a JSON object"):
        decode(IDENTITY_EVENTS, raw)


@pytest.mark.parametrize("raw", [b"{}", b'{"status": 404}', b'{"type": null}', b'{"type": 7}'])
def test_object_without_string_type_is_undecodable(raw: bytes) -> None:
    """A JSON object without a string `type` raises UndecodableMessage."""
    with pytest.raises(UndecodableMessage, match="type"):
        decode(IDENTITY_EVENTS, raw)


def test_deeply_nested_json_is_undecodable() -> None:
    """JSON nested beyond the recursion limit raises UndecodableMessage, not RecursionError."""
    with pytest.raises(UndecodableMessage):
        read_object(b"[" * 100_000 + b"]" * 100_000)


def test_type_the_topic_does_not_carry_is_unknown() -> None:
    """A readable message of a type the topic does not carry raises UnknownMessageType."""
    with pytest.raises(UnknownMessageType) as raised:
        decode(IDENTITY_EVENTS, b'{"type": "test.open_document", "package_id": "p"}')
    assert raised.value.type == "test.open_document"
    assert "signgate.identity.events" in str(raised.value)


def test_topic_without_messages_knows_no_type() -> None:
    """A topic that carries no message types refuses every type as unknown."""
    empty = Topic("signgate.test.empty", TopicKind.REPLIES, "k", 1, timedelta(minutes=1), (), "")
    with pytest.raises(UnknownMessageType):
        decode(empty, encode(_rejection()))


def test_known_type_with_invalid_fields_raises_validation_error() -> None:
    """A known type whose fields do not validate raises pydantic's ValidationError."""
    raw = json.dumps({"type": "command.rejected", "status": 418, "code": "x", "message": "y"})
    with pytest.raises(ValidationError):
        decode(IDENTITY_EVENTS, raw.encode())


def test_rejection_round_trips_on_identity_events() -> None:
    """A CommandRejected encoded, then decoded on signgate.identity.events, equals the original."""
    rejection = _rejection()
    decoded = decode(IDENTITY_EVENTS, encode(rejection))
    assert isinstance(decoded, CommandRejected)
    assert decoded == rejection


def test_encoded_message_is_a_json_object_with_its_type() -> None:
    """`encode` writes UTF-8 JSON with the literal `type` and the envelope fields."""
    rejection = _rejection()
    document = json.loads(encode(rejection))
    assert document["type"] == "command.rejected"
    assert document["event_id"] == str(rejection.event_id)
    assert document["correlation_id"] == str(rejection.correlation_id)
    assert document["occurred_at"].endswith("Z")


def test_unknown_fields_are_ignored() -> None:
    """Fields a consumer does not know are dropped, not refused."""
    document = json.loads(encode(_rejection()))
    document["added_in_a_later_version"] = {"nested": True}
    decoded = decode(IDENTITY_EVENTS, json.dumps(document).encode())
    assert not hasattr(decoded, "added_in_a_later_version")
    assert "added_in_a_later_version" not in decoded.model_dump()


def test_union_topic_decodes_each_type_to_its_class() -> None:
    """On a topic with several message types, each record decodes to the class of its `type`."""
    command = OpenDocument(package_id="pkg-1", access_code="s3cret-code")
    assert isinstance(decode(TEST_COMMANDS, encode(command)), OpenDocument)
    assert isinstance(decode(TEST_COMMANDS, encode(_rejection())), CommandRejected)


def test_secret_is_hidden_in_repr_but_sent_on_the_wire() -> None:
    """A `Secret` field never shows in repr or str, yet the encoded JSON carries it in clear."""
    command = OpenDocument(package_id="pkg-1", access_code="s3cret-code", access_token="tok-123")
    assert "s3cret-code" not in repr(command)
    assert "s3cret-code" not in str(command)
    assert "tok-123" not in repr(command)
    document = json.loads(encode(command))
    assert document["access_code"] == "s3cret-code"
    assert document["access_token"] == "tok-123"
    decoded = decode(TEST_COMMANDS, encode(command))
    assert isinstance(decoded, OpenDocument)
    assert decoded.access_code.get_secret_value() == "s3cret-code"
    assert "s3cret-code" not in repr(decoded)


def test_decoded_messages_are_frozen() -> None:
    """A decoded message cannot be changed in place."""
    decoded = decode(IDENTITY_EVENTS, encode(_rejection()))
    with pytest.raises(ValidationError):
        decoded.code = "other"  # type: ignore[misc]


def test_overlong_type_is_undecodable() -> None:
    """A `type` longer than any message type name is refused before it could be echoed in outcomes."""
    with pytest.raises(UndecodableMessage, match="longer than"):
        decode(BY_NAME["signgate.identity.commands"], json.dumps({"type": "x" * 900_000}).encode())
