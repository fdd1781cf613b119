"""Send one command from the shell and print its outcome: ``python -m libs.send TOPIC JSON``.

Envelope fields left out (event_id, correlation_id, occurred_at) are filled in. The outcome
(the service's event or `command.rejected`) is read from the command's outcome topic by
correlation id, with any reply to the caller (a token, a grant) from the service's replies topic. Finds a running `make run` stack through ``.signgate/stack.json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from libs.stack import STACK_FILE
from signgate_contracts.topics import BY_NAME, OUTCOME_TOPIC


def bootstrap() -> str:
    if os.environ.get("SIGNGATE_KAFKA_BOOTSTRAP"):
        return os.environ["SIGNGATE_KAFKA_BOOTSTRAP"]
    if STACK_FILE.exists():
        return json.loads(STACK_FILE.read_text())["kafka_bootstrap"]
    raise SystemExit("no running stack: start one with `make run` or set SIGNGATE_KAFKA_BOOTSTRAP")


def complete_envelope(command: dict) -> dict:
    command.setdefault("event_id", str(uuid.uuid4()))
    command.setdefault("correlation_id", str(uuid.uuid4()))
    command.setdefault("occurred_at", datetime.now(UTC).isoformat())
    return command


def answer_topics(topic: str) -> list[str]:
    """Where a command's answers appear: its outcome topic, and its service's replies topic."""
    replies = topic.rsplit(".", 1)[0] + ".replies"
    return [OUTCOME_TOPIC[topic].name, *([replies] if replies in BY_NAME else [])]


async def send(topic: str, command: dict, key: str | None, timeout: float) -> list[tuple[str, dict]]:
    """Publish ``command`` and return what answered it: (topic, message) for its outcome, and
    for a reply that came before the outcome or within a second after it."""
    servers = bootstrap()
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all")
    await consumer.start()
    await producer.start()
    answers: list[tuple[str, dict]] = []
    try:
        partitions = [TopicPartition(name, p) for name in answer_topics(topic)
                      for p in consumer.partitions_for_topic(name) or await _partitions(consumer, name)]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for partition in partitions:
            await consumer.position(partition)
        await producer.send_and_wait(topic, json.dumps(command).encode(),
                                     key=(key or command["correlation_id"]).encode())
        outcome_topic = OUTCOME_TOPIC[topic].name
        async with asyncio.timeout(timeout):
            while not any(name == outcome_topic for name, _ in answers):
                answers += await _answers(consumer, command["correlation_id"], wait_ms=500)
        answers += await _answers(consumer, command["correlation_id"], wait_ms=1000)
        return answers
    finally:
        await producer.stop()
        await consumer.stop()


async def _answers(consumer: AIOKafkaConsumer, correlation_id: str, wait_ms: int) -> list[tuple[str, dict]]:
    batches = await consumer.getmany(timeout_ms=wait_ms)
    found = []
    for records in batches.values():
        for record in records:
            message = json.loads(record.value)
            if message.get("correlation_id") == correlation_id:
                found.append((record.topic, message))
    return found


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()  # noqa: SLF001 - aiokafka has no public call for it
    return consumer.partitions_for_topic(topic) or {0}


def main() -> None:
    if len(sys.argv) not in (3, 4):
        raise SystemExit("usage: python -m libs.send TOPIC JSON [KEY]")
    topic, body = sys.argv[1], sys.argv[2]
    key = sys.argv[3] if len(sys.argv) == 4 else None
    command = complete_envelope(json.loads(body))
    print(f"-> {topic}: {json.dumps(command)}")
    for answered_on, message in asyncio.run(send(topic, command, key, timeout=30)):
        print(f"<- {answered_on}: {json.dumps(message, indent=2)}")


if __name__ == "__main__":
    main()
