"""The one place messages leave a service: registry topic names mapped to deployed ones."""

from __future__ import annotations

import asyncio

from faststream.kafka import KafkaBroker

from libs.messaging.outgoing import Outgoing
from libs.observability import Metrics
from libs.settings import ConnectionSettings


class Publisher:
    """Publishes records and outgoing messages on the broker, honouring the topic prefix."""

    def __init__(self, broker: KafkaBroker, settings: ConnectionSettings, metrics: Metrics | None = None) -> None:
        self._broker = broker
        self._settings = settings
        self._metrics = metrics

    def deployed(self, outgoing: Outgoing) -> str:
        """The topic name ``outgoing`` is published to on this deployment."""
        return outgoing.topic if outgoing.verbatim else self._settings.topic(outgoing.topic)

    @property
    def give_up_after(self) -> float:
        """Seconds a publish may wait for the broker before failing as transient. aiokafka's idempotent
        producer never expires a batch (aiokafka #1101), so without this limit a broker outage would
        hold the outbox relay, and every handler waiting on it, for as long as the outage lasts."""
        return 2 * self._settings.kafka_request_timeout_ms / 1000

    async def send(self, topic: str, key: bytes | None, payload: bytes, headers: dict[str, str]) -> None:
        """Publish one record to a deployed topic name and wait until the broker has it."""
        async with asyncio.timeout(self.give_up_after):
            await self._broker.publish(payload, topic=topic, key=key, headers=headers)
        if self._metrics and "type" in headers:
            self._metrics.published.labels(self._metrics.service, headers["type"]).inc()

    async def send_many(self, records: list[tuple[str, bytes | None, bytes, dict[str, str]]]) -> None:
        """Publish records in order without waiting for each, then wait until the broker has them all.

        The producer keeps one request in flight per partition, so records of one key stay in order;
        if any send fails, the first error is raised once every send has finished either way.
        """
        async with asyncio.timeout(self.give_up_after):
            deliveries = [
                await self._broker.publish(payload, topic=topic, key=key, headers=headers, no_confirm=True)
                for topic, key, payload, headers in records
            ]
            results = await asyncio.gather(*deliveries, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        if self._metrics:
            for _topic, _key, _payload, headers in records:
                if "type" in headers:
                    self._metrics.published.labels(self._metrics.service, headers["type"]).inc()

    async def publish(self, outgoing: Outgoing) -> None:
        await self.send(self.deployed(outgoing), outgoing.key.encode(), outgoing.payload, headers(outgoing))


def headers(outgoing: Outgoing) -> dict[str, str]:
    """Record headers: enough to route and trace without decoding the payload."""
    return {
        "type": outgoing.message.type,
        "correlation_id": str(outgoing.message.correlation_id),
        "content-type": "application/json",
    }
