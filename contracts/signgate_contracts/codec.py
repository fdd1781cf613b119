"""Turning bytes into the message a topic carries, and back, with the reasons decoding can fail."""

from __future__ import annotations

import json
from functools import cache
from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter, ValidationError

from signgate_contracts.envelope import Message
from signgate_contracts.topics import Topic

MAX_TYPE_LENGTH = 200
"""No message type name is longer; a longer ``type`` is not a message type at all."""


class UndecodableMessage(ValueError):
    """The bytes are not a signgate message at all: not JSON, not an object, or no `type`."""


class UnknownMessageType(ValueError):
    """The envelope is readable, but this topic carries no message of that `type`."""

    def __init__(self, type_: str, topic: str) -> None:
        super().__init__(f"topic {topic} carries no message of type {type_!r}")
        self.type = type_


def encode(message: Message) -> bytes:
    return message.model_dump_json().encode()


def read_object(raw: bytes) -> dict[str, Any]:
    """Parse raw bytes as a JSON object, or say why they are not one."""
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise UndecodableMessage(f"not JSON: {type(error).__name__}") from None
    if not isinstance(document, dict):
        raise UndecodableMessage(f"not a JSON object but {type(document).__name__}")
    if not isinstance(document.get("type"), str):
        raise UndecodableMessage("no string `type` field")
    if len(document["type"]) > MAX_TYPE_LENGTH:  # it is echoed in rejections and dead letters
        raise UndecodableMessage(f"`type` longer than {MAX_TYPE_LENGTH} characters")
    return document


@cache
def _adapter(messages: tuple[type[Message], ...]) -> TypeAdapter[Any] | None:
    if not messages:
        return None
    if len(messages) == 1:
        return TypeAdapter(messages[0])
    # A union made at run time of the topic's message types: no static type can name it.
    return TypeAdapter(Annotated[Union[messages], Field(discriminator="type")])  # type: ignore[arg-type]  # noqa: UP007


@cache
def _types(messages: tuple[type[Message], ...]) -> frozenset[str]:
    return frozenset(message.model_fields["type"].default for message in messages)


def decode(topic: Topic, raw: bytes) -> Message:
    """Decode one record of ``topic``; raises UndecodableMessage, UnknownMessageType or ValidationError."""
    return decode_object(topic, read_object(raw))


def decode_object(topic: Topic, document: dict[str, Any]) -> Message:
    """Decode a record of ``topic`` already parsed by ``read_object``; raises as ``decode`` does."""
    if document["type"] not in _types(topic.messages):
        raise UnknownMessageType(document["type"], topic.name)
    adapter = _adapter(topic.messages)
    assert adapter is not None
    return adapter.validate_python(document)


__all__ = [
    "UndecodableMessage",
    "UnknownMessageType",
    "ValidationError",
    "decode",
    "decode_object",
    "encode",
]
