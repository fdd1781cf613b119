"""Reading topics from now on (or from their start) with one consumer and no consumer group."""

from __future__ import annotations

import json
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import TopicAuthorizationFailedError


async def partitions_of(admin: AIOKafkaAdminClient, topics: Iterable[str]) -> list[TopicPartition]:
    """Every partition of ``topics`` that exist on the broker (the others are skipped).

    Raises `TopicAuthorizationFailedError` naming the topics an ACL hides: skipped, they would
    turn a missing permission into outcomes that never arrive."""
    described = await admin.describe_topics(list(topics))
    denied = [
        t["topic"] for t in described if t["error_code"] == TopicAuthorizationFailedError.errno
    ]
    if denied:
        raise TopicAuthorizationFailedError(f"not authorised to describe {', '.join(denied)}")
    return [
        TopicPartition(t["topic"], p["partition"])
        for t in described
        if t["error_code"] == 0
        for p in t["partitions"]
    ]


async def assign(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], *, from_beginning: bool = False
) -> None:
    """Assign ``partitions`` and pin the positions now, so nothing published later is missed."""
    consumer.assign(partitions)
    if not partitions:
        return
    if from_beginning:
        await consumer.seek_to_beginning(*partitions)
    else:
        await consumer.seek_to_end(*partitions)
    for partition in partitions:
        await consumer.position(partition)


def correlation_of(record: ConsumerRecord) -> str | None:
    """A record's correlation id: from its header when it has one, else from its JSON body."""
    for name, value in record.headers or ():
        if name == "correlation_id":
            return value.decode(errors="replace")
    try:
        document = json.loads(record.value or b"")
    except (UnicodeDecodeError, ValueError):
        return None
    value = document.get("correlation_id") if isinstance(document, dict) else None
    return value if isinstance(value, str) else None
