"""Test helpers on a real broker: watch topics from a point in time and wait for a record."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from libs.runtime.settings import ConnectionSettings


class TopicWatcher:
    """Collects every record published to some topics after `start`; tests wait on what they expect."""

    def __init__(self, bootstrap: str, *topics: str) -> None:
        self.topics = topics
        self.records: list[ConsumerRecord] = []
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> TopicWatcher:
        await self._consumer.start()
        partitions = []
        for topic in self.topics:
            ids = self._consumer.partitions_for_topic(topic)
            if not ids:
                await self._consumer._client.force_metadata_update()  # noqa: SLF001
                ids = self._consumer.partitions_for_topic(topic) or {0}
            partitions += [TopicPartition(topic, p) for p in ids]
        self._consumer.assign(partitions)
        await self._consumer.seek_to_end(*partitions)
        for partition in partitions:  # pin the positions now, before anything is published
            await self._consumer.position(partition)
        self._task = asyncio.create_task(self._collect())
        return self

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    async def __aenter__(self) -> TopicWatcher:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def _collect(self) -> None:
        async for record in self._consumer:
            async with self._changed:
                self.records.append(record)
                self._changed.notify_all()

    def matching(self, predicate: Callable[[ConsumerRecord], bool]) -> list[ConsumerRecord]:
        return [record for record in self.records if predicate(record)]

    async def wait_for(
        self, predicate: Callable[[ConsumerRecord], bool], *, count: int = 1, timeout: float = 20.0
    ) -> list[ConsumerRecord]:
        """Wait until ``count`` records match; fail with what was seen if they do not come."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: len(self.matching(predicate)) >= count)
        except TimeoutError:
            seen = [(r.topic, r.value[:200]) for r in self.records]
            raise AssertionError(f"no {count} matching record(s) within {timeout}s; saw {seen}") from None
        return self.matching(predicate)

    async def outcome(self, correlation_id: Any, *, timeout: float = 20.0) -> dict[str, Any]:
        """The JSON document of the first record carrying ``correlation_id``."""
        [record, *_] = await self.wait_for(lambda r: correlated(r, correlation_id), timeout=timeout)
        return json.loads(record.value)


def correlated(record: ConsumerRecord, correlation_id: Any) -> bool:
    try:
        return json.loads(record.value).get("correlation_id") == str(correlation_id)
    except (ValueError, AttributeError, RecursionError):  # hostile records are watched too
        return False


def document(record: ConsumerRecord) -> dict[str, Any]:
    return json.loads(record.value)


@contextlib.asynccontextmanager
async def producer(bootstrap: str):
    """A plain aiokafka producer, as an upstream system would use."""
    client = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


async def consumer_lag(connections: ConnectionSettings, definitions: Iterable[Any]) -> dict[str, int]:
    """Records each service's group has not committed, over every topic it consumes: counted by
    reading on from the committed offsets (Tansu's latest offset is that of the last batch)."""
    lags = {}
    for definition in definitions:
        group = AIOKafkaConsumer(bootstrap_servers=connections.kafka_bootstrap, enable_auto_commit=False,
                                 group_id=connections.topic(definition.group_id))
        reader = AIOKafkaConsumer(bootstrap_servers=connections.kafka_bootstrap, enable_auto_commit=False)
        await group.start()
        await reader.start()
        try:
            partitions = [TopicPartition(connections.topic(t.name), p)
                          for t in definition.consumes for p in range(t.partitions)]
            reader.assign(partitions)
            for partition in partitions:
                reader.seek(partition, await group.committed(partition) or 0)
            lag = 0
            while batch := await reader.getmany(timeout_ms=500):
                lag += sum(len(records) for records in batch.values())
            lags[definition.name] = lag
        finally:
            await reader.stop()
            await group.stop()
    return lags


def json_object(record: ConsumerRecord) -> dict[str, Any]:
    """A record's JSON object; {} for anything else (hostile suites leave bytes of every kind on
    the topics they share, some nested deeper than json can read)."""
    try:
        document = json.loads(record.value or b"")
    except (ValueError, RecursionError):
        return {}
    return document if isinstance(document, dict) else {}
