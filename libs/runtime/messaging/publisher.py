"""The one place records leave a service: deployed topic names, headers, and the service's signature."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable
from typing import Any, NamedTuple

from aiokafka.errors import (
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
)
from aiokafka.protocol.metadata import MetadataRequest
from faststream.kafka import KafkaBroker

from libs.runtime.logging import about, get_logger
from libs.runtime.messaging.dead_letters import unpublishable_key, unpublishable_record
from libs.runtime.messaging.outgoing import Outgoing
from libs.runtime.observability import Metrics
from libs.runtime.settings import ConnectionSettings
from libs.security.record_signatures import RecordSigner
from signgate_contracts.text import printable
from signgate_contracts.topics import BY_NAME, TOPICS, TopicKind

ABSENT_TOPIC_ERRORS = frozenset({3, 17})
"""Metadata error codes that say a topic does not exist: UNKNOWN_TOPIC_OR_PARTITION, INVALID_TOPIC."""

log = get_logger(__name__)


class Publication(NamedTuple):
    """A record as it will be published: deployed topic, key, value and headers (before signing)."""

    topic: str
    key: bytes | None
    payload: bytes
    headers: dict[str, str]


class Publisher:
    """Publishes records and outgoing messages on the broker, honouring the topic prefix, and signs
    every record with the service's key (`libs.security.record_signatures`)."""

    def __init__(
        self,
        broker: KafkaBroker,
        settings: ConnectionSettings,
        signer: RecordSigner | None = None,
        metrics: Metrics | None = None,
        service: str | None = None,
    ) -> None:
        self._broker = broker
        self._settings = settings
        self._sign = signer.headers if signer is not None else _unsigned
        self._metrics = metrics
        self._service = service or (metrics.service if metrics else "unknown")
        replies = [t for t in TOPICS if t.kind is TopicKind.REPLIES and t.writer == self._service]
        self._replies_dlq = settings.topic(replies[0].dlq) if replies else None

    def deployed(self, outgoing: Outgoing) -> str:
        """The topic name ``outgoing`` is published to on this deployment."""
        return outgoing.topic if outgoing.verbatim else self._settings.topic(outgoing.topic)

    def publication(self, outgoing: Outgoing) -> Publication:
        return Publication(
            self.deployed(outgoing), outgoing.key.encode(), outgoing.payload, headers(outgoing)
        )

    @property
    def give_up_after(self) -> float:
        """Seconds a publish may wait for the broker before failing as transient. aiokafka's idempotent
        producer never expires a batch (aiokafka #1101), so without this limit a broker outage would
        hold the outbox relay, and every handler waiting on it, for as long as the outage lasts."""
        return 2 * self._settings.kafka_request_timeout_ms / 1000

    async def send(
        self, topic: str, key: bytes | None, payload: bytes, headers: dict[str, str]
    ) -> None:
        """Publish one record to a deployed topic name and wait until the broker has it."""
        with about(_subject(headers)):
            async with asyncio.timeout(self.give_up_after):
                await self._broker.publish(
                    payload, topic=topic, key=key, headers=self._sign(topic, key, payload, headers)
                )
            if log.isEnabledFor(logging.DEBUG):
                log.debug("record published", destination=topic)
        if self._metrics and "type" in headers:
            self._metrics.count_published(headers["type"], topic)

    async def send_many(self, records: list[Publication]) -> None:
        """Publish records in order without waiting for each, then wait until the broker has them all.

        The producer keeps one request in flight per partition, so records of one key stay in order;
        if any send fails, the first error is raised once every send has finished either way.
        """
        for failure in await self.send_each(records):
            if failure is not None:
                raise failure

    async def send_each(self, records: list[Publication]) -> list[Exception | None]:
        """Publish records in order without waiting for each, then each one's failure, or None once
        the broker has it. A record refused before it was queued (too large) fails alone; the batch
        fails as a whole (TimeoutError) only if the broker does not answer within ``give_up_after``."""
        sign = self._sign
        debug = log.isEnabledFor(logging.DEBUG)
        async with asyncio.timeout(self.give_up_after):
            deliveries: list[Awaitable[Any]] = []
            for topic, key, payload, headers in records:
                try:
                    with about(_subject(headers)):  # what the broker client logs names the record
                        deliveries.append(
                            await self._broker.publish(
                                payload,
                                topic=topic,
                                key=key,
                                headers=sign(topic, key, payload, headers),
                                no_confirm=True,
                            )
                        )
                except KafkaError as error:
                    deliveries.append(_failed(error))
            results = await asyncio.gather(*deliveries, return_exceptions=True)
        failures: list[Exception | None] = []
        for (topic, _key, _payload, headers), result in zip(records, results, strict=True):
            if isinstance(result, Exception):
                failures.append(result)
                continue
            if isinstance(result, BaseException):
                raise result
            failures.append(None)
            if debug:
                with about(_subject(headers)):
                    log.debug("record published", destination=topic)
            if self._metrics and "type" in headers:
                self._metrics.count_published(headers["type"], topic)
        return failures

    async def absent(self, topics: set[str]) -> set[str]:
        """Which of ``topics`` the broker says do not exist. Topics the producer already knows are not
        asked for; the others are asked for without allowing the broker to create them (Tansu, and
        Kafka with ``auto.create.topics.enable``, would create any name a caller gave as
        ``reply_to``): a service never creates a topic, and a reply to a topic nobody made is
        dead-lettered instead of holding the outbox while the producer waits for it to appear."""
        producer: Any = self._broker.config.producer
        client = (
            producer._producer.producer.client
        )  # FastStream's aiokafka producer, and its client
        unknown = sorted(topics - set(client.cluster.topics()))
        if not unknown:
            return set()
        node = client.get_random_node()
        response = await client.send(
            node, MetadataRequest(unknown, allow_auto_topic_creation=False)
        )
        return {
            t["topic"]
            for t in response.to_object()["topics"]
            if t["error_code"] in ABSENT_TOPIC_ERRORS
        }

    def unpublishable(self, record: Publication, reason: str) -> Publication:
        """The dead letter of a record that can never be published: on its topic's DLQ for a registry
        topic, else (a caller's reply topic) on the DLQ of this service's replies topic."""
        registered = BY_NAME.get(self._settings.registry_name(record.topic))
        if registered is not None:
            topic = self._settings.topic(registered.dlq)
        else:
            topic = self._replies_dlq or f"{record.topic}.dlq"
        key = unpublishable_key(record.key)
        if self._metrics:
            self._metrics.dead_lettered.labels(self._service, topic.removesuffix(".dlq")).inc()
        return Publication(
            topic,
            key.encode() if key is not None else None,
            unpublishable_record(record, service=self._service, reason=reason),
            dead_letter_headers(reason),
        )

    async def publish(self, outgoing: Outgoing) -> None:
        await self.send(*self.publication(outgoing))


async def _failed(error: Exception) -> None:
    raise error


def unpublishable_reason(error: Exception) -> str | None:
    """Why the broker can never take a record that failed with ``error``; None if it may later (a
    broker away, a leader moving, a topic only just gone: the relay tries the batch again)."""
    match error:
        case MessageSizeTooLargeError() | RecordListTooLargeError():
            return "the record is larger than the broker accepts"
        case InvalidTopicError():
            return "the topic name is invalid on this broker"
        case _:
            return None


def _unsigned(
    _topic: str, _key: bytes | None, _value: bytes, headers: dict[str, str]
) -> dict[str, str]:
    return headers


def headers(outgoing: Outgoing) -> dict[str, str]:
    """Record headers: enough to route and trace without decoding the payload."""
    return {
        "type": outgoing.message.type,
        "correlation_id": str(outgoing.message.correlation_id),
        "content-type": "application/json",
    }


def dead_letter_headers(reason: str, correlation_id: uuid.UUID | None = None) -> dict[str, str]:
    """A dead letter's headers: its reason (shortened, and storable whatever the record held), and
    the correlation id the record gave or stood in for, so its publication is logged under it."""
    headers = {"content-type": "application/json", "reason": printable(reason[:200])}
    if correlation_id is not None:
        headers["correlation_id"] = str(correlation_id)
    return headers


def _subject(headers: dict[str, str]) -> dict[str, str]:
    """What names a record being published on the log lines written meanwhile: its headers' ids."""
    fields = {"correlation_id": headers.get("correlation_id"), "message_type": headers.get("type")}
    return {name: value for name, value in fields.items() if value is not None}
