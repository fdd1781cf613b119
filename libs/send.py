"""Send one command from the shell and print its outcome: ``python -m libs.send TOPIC JSON``.

Envelope fields left out (event_id, correlation_id, occurred_at) are filled in. The outcome
(the service's event or `command.rejected`) is read from the command's outcome topic by
correlation id. Finds a running `make run` stack through ``.signgate/stack.json``.
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
from signgate_contracts.topics import OUTCOME_TOPIC


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


async def send(topic: str, command: dict, key: str | None, timeout: float) -> dict:
    servers = bootstrap()
    outcome_topic = OUTCOME_TOPIC[topic].name
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all")
    await consumer.start()
    await producer.start()
    try:
        partitions = [TopicPartition(outcome_topic, p) for p in consumer.partitions_for_topic(outcome_topic)
                      or await _partitions(consumer, outcome_topic)]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for partition in partitions:
            await consumer.position(partition)
        await producer.send_and_wait(topic, json.dumps(command).encode(),
                                     key=(key or command["correlation_id"]).encode())
        async with asyncio.timeout(timeout):
            async for record in consumer:
                outcome = json.loads(record.value)
                if outcome.get("correlation_id") == command["correlation_id"]:
                    return outcome
    finally:
        await producer.stop()
        await consumer.stop()
    raise AssertionError("unreachable")


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
    outcome = asyncio.run(send(topic, command, key, timeout=30))
    print(f"<- {OUTCOME_TOPIC[topic].name}: {json.dumps(outcome, indent=2)}")


if __name__ == "__main__":
    main()
