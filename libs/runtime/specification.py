"""The AsyncAPI document of a service: every topic it receives or sends, with the messages on it.

A service consumes all its topics through one subscriber that takes raw bytes (the pipeline
decodes them), so FastStream cannot see from it what the topics carry. The document is
described instead on a documentation broker that is never started: one subscriber per
consumed topic whose handler takes the topic's discriminated union, and one publisher per
topic the service sends to, with that union as its schema. FastStream builds the channels,
operations and payload schemas from them as it would for any app.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Protocol, Union

from faststream.kafka import KafkaBroker, KafkaRouter
from faststream.specification import AsyncAPI
from pydantic import BaseModel, ConfigDict, Field

from libs.runtime.kafka_security import broker_security
from libs.runtime.settings import ConnectionSettings
from signgate_contracts.topics import (
    BY_NAME,
    DLQ_PARTITIONS,
    DLQ_RETENTION,
    OUTCOME_TOPIC,
    TOPICS,
    Topic,
    TopicKind,
)


class ServiceDefinition(Protocol):
    """What a specification reads of a service (`libs.runtime.service.ServiceDefinition` has it)."""

    @property
    def name(self) -> str: ...

    @property
    def consumes(self) -> tuple[Topic, ...]: ...

    @property
    def group_id(self) -> str: ...

    @property
    def outcomes(self) -> dict[str, Topic]: ...


DESCRIPTION = (
    "Upstream systems publish commands; each command yields exactly one outcome with its "
    "`correlation_id` on the service's event topic: the domain event, or `command.rejected`. "
    "Credentials issued to a caller go only to its `reply_to` topic (or the service's replies "
    "topic). Every message is JSON in a common envelope, one discriminated union on `type` per topic."
)


class DeadLetter(BaseModel):
    """A record set aside on `<topic>.dlq`: where it came from, why, and its payload without secrets."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(description="Why the record could not be handled.")
    service: str = Field(description="The service that set it aside.")
    source_topic: str = Field(description="The topic the record was read from.")
    partition: int = Field(description="Its partition on the source topic.")
    offset: int = Field(description="Its offset there; read it while the source topic keeps it.")
    key: str | None = Field(description="The record key.")
    dead_lettered_at: datetime = Field(description="When it was set aside (UTC).")
    payload_sha256: str = Field(description="SHA-256 of the original payload, hex.")
    payload_size: int = Field(description="Size of the original payload in bytes.")
    payload: dict[str, Any] | None = Field(
        description="The payload, if it was a JSON object, with secret-named fields redacted "
        "and phone numbers and emails masked; otherwise null."
    )


@dataclass(frozen=True)
class Channel:
    """A topic as the document shows it: its name, what it carries and how Kafka keeps it."""

    name: str
    description: str
    payload: Any
    """The type of its records: a message class or a discriminated union of them."""


def topic_channel(topic: Topic) -> Channel:
    """A registry topic, with its key, partitions and retention in its description."""
    summary = f"Key: {topic.key}; {topic.partitions} partitions; kept {duration(topic.retention)}."
    return Channel(topic.name, f"{topic.description} {summary}", payload_type(topic.messages))


def dead_letter_channel(topic: Topic) -> Channel:
    """The dead-letter topic of ``topic``."""
    description = (
        f"Dead letters of {topic.name}: records that could not be parsed or handled, with the "
        f"reason. Key: as the source; {DLQ_PARTITIONS} partition; kept {duration(DLQ_RETENTION)}."
    )
    return Channel(topic.dlq, description, DeadLetter)


def payload_type(messages: tuple[type[BaseModel], ...]) -> Any:
    """One message class, or the union of several discriminated by their `type`."""
    if len(messages) == 1:
        return messages[0]
    return Annotated[Union[messages], Field(discriminator="type")]  # noqa: UP007


def receives(definition: ServiceDefinition) -> list[Channel]:
    """The topics a service consumes."""
    return [topic_channel(topic) for topic in definition.consumes]


def sends(definition: ServiceDefinition) -> list[Channel]:
    """The topics a service publishes to, derived from what it consumes.

    Its outcome topics; the replies topic beside each command topic it consumes; each requests
    topic whose answers it consumes (it is the one asking); and the dead-letter topic of
    everything it consumes. Callers' own `reply_to` topics are named at run time, not here.
    """
    consumed = {topic.name for topic in definition.consumes}
    topics: dict[str, Topic] = {t.name: t for t in definition.outcomes.values()}
    for topic in definition.consumes:
        if topic.kind is TopicKind.COMMANDS:
            replies = BY_NAME.get(f"{topic.name.rpartition('.')[0]}.{TopicKind.REPLIES}")
            if replies is not None:
                topics[replies.name] = replies
    for topic in TOPICS:
        if topic.kind is TopicKind.REQUESTS and OUTCOME_TOPIC[topic.name].name in consumed:
            topics[topic.name] = topic
    channels = [topic_channel(topic) for topic in topics.values()]
    return channels + [dead_letter_channel(topic) for topic in definition.consumes]


def declare(
    broker: KafkaBroker,
    definition: ServiceDefinition,
    connections: ConnectionSettings,
    *,
    title_prefix: str = "",
) -> None:
    """Declare on ``broker`` a subscriber per topic ``definition`` receives and a publisher per
    topic it sends to, for the document only: ``broker`` must never be started.

    Each endpoint sits in a router of its own: a broker keeps its endpoints in an unordered set,
    its routers in a list, and the document should list topics in the definition's order.
    """
    for channel in receives(definition):
        router = KafkaRouter()
        router.subscriber(
            connections.topic(channel.name),
            group_id=connections.topic(definition.group_id),
            title=f"{title_prefix}{channel.name}",
            description=f"{channel.description} Consumed by {definition.name}.",
        )(_receiver(channel.payload))
        broker.include_router(router)
    for channel in sends(definition):
        router = KafkaRouter()
        router.publisher(
            connections.topic(channel.name),
            title=f"{title_prefix}{channel.name}",
            description=f"{channel.description} Published by {definition.name}.",
            schema=channel.payload,
        )
        broker.include_router(router)


def _receiver(payload: Any) -> Any:
    async def receive(message: Any) -> None:
        """Never called: the documentation broker is not started."""

    receive.__annotations__ = {"message": payload, "return": None}
    return receive


def service_specification(
    definition: ServiceDefinition, connections: ConnectionSettings, *, version: str
) -> AsyncAPI:
    """The AsyncAPI document of one service (what its ``/docs`` route serves)."""
    broker = documentation_broker(connections)
    declare(broker, definition, connections)
    return AsyncAPI(
        broker, title=f"signgate {definition.name}", version=version, description=DESCRIPTION
    )


def system_specification(
    definitions: Iterable[ServiceDefinition], connections: ConnectionSettings, *, version: str
) -> AsyncAPI:
    """One AsyncAPI document of every service; each endpoint is titled ``<service>:<topic>``."""
    broker = documentation_broker(connections)
    for definition in definitions:
        declare(broker, definition, connections, title_prefix=f"{definition.name}:")
    return AsyncAPI(broker, title="signgate", version=version, description=DESCRIPTION)


def documentation_broker(connections: ConnectionSettings) -> KafkaBroker:
    """A broker that only describes (its servers' security too): it has no handlers that run and
    is never connected."""
    return KafkaBroker(connections.kafka_bootstrap, security=broker_security(connections))


def duration(value: timedelta) -> str:
    """A retention or lifetime the way people say it: ``1 h``, ``7 d``, ``15 min``."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"
