"""The JSON Schema of every signgate message, as exported into this folder by ``make schemas``.

The committed ``<type>.json`` files are the compatibility baseline: ``tests/contract`` fails
when a model no longer accepts what its committed schema accepts (see ``compatibility``),
and the exporter refuses to overwrite a schema with a breaking change. ``topics.json``
indexes which topic carries which message types.

Schemas are generated in pydantic's ``validation`` mode: they describe what a receiver
accepts, which is what a sender must keep producing. For signgate's models the
``serialization`` mode gives the same schema (a ``Secret`` is ``{"type": "string",
"format": "password"}`` both ways); a contract test keeps the two from drifting apart.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic.json_schema import JsonSchemaMode

from signgate_contracts.envelope import Message
from signgate_contracts.topics import TOPICS

SCHEMA_DIR = Path(__file__).parent
TOPIC_INDEX = "topics.json"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

# A type becomes a file name: keep it to characters that are safe in every file system.
_TYPE_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")


def message_type(message: type[Message]) -> str:
    """The literal ``type`` a message class is sent with."""
    default = message.model_fields["type"].default
    if not isinstance(default, str) or not _TYPE_NAME.fullmatch(default):
        raise ValueError(
            f"{message.__qualname__} has no usable literal `type` default: {default!r}"
        )
    if f"{default}.json" == TOPIC_INDEX:
        raise ValueError(f"message type {default!r} collides with the topic index file")
    return default


def message_classes() -> dict[str, type[Message]]:
    """Every message class of every topic, by ``type``; one type is one class everywhere."""
    classes: dict[str, type[Message]] = {}
    for topic in TOPICS:
        for message in topic.messages:
            type_ = message_type(message)
            if classes.setdefault(type_, message) is not message:
                raise ValueError(
                    f"message type {type_!r} is claimed by both "
                    f"{classes[type_].__qualname__} and {message.__qualname__}"
                )
    return dict(sorted(classes.items()))


def message_schema(message: type[Message], mode: JsonSchemaMode = "validation") -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one message class."""
    schema = message.model_json_schema(mode=mode)
    return {"$schema": JSON_SCHEMA_DIALECT, **schema}


def message_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of every registered message, keyed by its ``type``."""
    return {type_: message_schema(message) for type_, message in message_classes().items()}


def topic_index() -> dict[str, dict[str, Any]]:
    """Every topic with its key, kind, partitions, retention, writer and the message types it carries."""
    return {
        topic.name: {
            "description": topic.description,
            "dlq": topic.dlq,
            "key": topic.key,
            "kind": str(topic.kind),
            "messages": [message_type(message) for message in topic.messages],
            "partitions": topic.partitions,
            "retention_ms": int(topic.retention.total_seconds() * 1000),
            "writer": topic.writer,
        }
        for topic in TOPICS
    }


def render(document: Any) -> str:
    """The committed text of a schema: sorted keys, two-space indent, trailing newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def exported_files() -> dict[str, str]:
    """File name → text of everything ``make schemas`` writes, from the current models."""
    files = {f"{type_}.json": render(schema) for type_, schema in message_schemas().items()}
    files[TOPIC_INDEX] = render(topic_index())
    return files


def committed_files(directory: Path = SCHEMA_DIR) -> dict[str, str]:
    """File name → text of the ``*.json`` files in ``directory``."""
    return {
        path.name: path.read_text(encoding="utf-8") for path in sorted(directory.glob("*.json"))
    }


def committed_schemas(directory: Path = SCHEMA_DIR) -> dict[str, dict[str, Any]]:
    """The committed message schemas, keyed by ``type`` (the topic index left out)."""
    return {
        name.removesuffix(".json"): json.loads(text)
        for name, text in committed_files(directory).items()
        if name != TOPIC_INDEX
    }


__all__ = [
    "JSON_SCHEMA_DIALECT",
    "SCHEMA_DIR",
    "TOPIC_INDEX",
    "committed_files",
    "committed_schemas",
    "exported_files",
    "message_classes",
    "message_schema",
    "message_schemas",
    "message_type",
    "render",
    "topic_index",
]
