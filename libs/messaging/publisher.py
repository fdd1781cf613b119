"""The one place messages leave a service: registry topic names mapped to deployed ones."""

from __future__ import annotations

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

    async def send(self, topic: str, key: bytes | None, payload: bytes, headers: dict[str, str]) -> None:
        """Publish one record to a deployed topic name and wait until the broker has it."""
        await self._broker.publish(payload, topic=topic, key=key, headers=headers)
        if self._metrics and "type" in headers:
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
