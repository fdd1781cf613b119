"""The one place records leave a service: deployed topic names, headers, and the service's signature."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import NamedTuple

from faststream.kafka import KafkaBroker

from libs.runtime.logging import about, get_logger
from libs.runtime.messaging.outgoing import Outgoing
from libs.runtime.observability import Metrics
from libs.runtime.settings import ConnectionSettings
from libs.security.record_signatures import RecordSigner
from signgate_contracts.text import printable

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
    ) -> None:
        self._broker = broker
        self._settings = settings
        self._sign = signer.headers if signer is not None else _unsigned
        self._metrics = metrics

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
        sign = self._sign
        debug = log.isEnabledFor(logging.DEBUG)
        async with asyncio.timeout(self.give_up_after):
            deliveries = []
            for topic, key, payload, headers in records:
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
            results = await asyncio.gather(*deliveries, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        for topic, _key, _payload, headers in records:
            if debug:
                with about(_subject(headers)):
                    log.debug("record published", destination=topic)
            if self._metrics and "type" in headers:
                self._metrics.count_published(headers["type"], topic)

    async def publish(self, outgoing: Outgoing) -> None:
        await self.send(*self.publication(outgoing))


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
