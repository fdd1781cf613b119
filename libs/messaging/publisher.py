"""The one place messages leave a service: registry topic names mapped to deployed ones."""

from __future__ import annotations

from faststream.kafka import KafkaBroker

from libs.messaging.outgoing import Outgoing
from libs.settings import ConnectionSettings


class Publisher:
    """Publishes records and outgoing messages on the broker, honouring the topic prefix."""

    def __init__(self, broker: KafkaBroker, settings: ConnectionSettings) -> None:
        self._broker = broker
        self._settings = settings

    async def send(self, topic: str, key: bytes | None, payload: bytes, headers: dict[str, str]) -> None:
        """Publish one record and wait until the broker has it."""
        await self._broker.publish(
            payload, topic=self._settings.topic(topic), key=key, headers=headers,
        )

    async def publish(self, outgoing: Outgoing) -> None:
        await self.send(
            outgoing.topic,
            outgoing.key.encode(),
            outgoing.payload,
            {
                "type": outgoing.message.type,
                "correlation_id": str(outgoing.message.correlation_id),
                "content-type": "application/json",
            },
        )
