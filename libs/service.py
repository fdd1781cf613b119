"""The composition of a signgate service: what it consumes, how it handles it, and its resources.

A service is described by a `ServiceDefinition` (pure data: topics, use cases, schema) and
turned into a FastStream app by `build_app`. Nothing connects until the app starts: the
lifespan opens the Postgres pool, the Redis client and the outbox relay, and closes them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from aiokafka.structs import ConsumerRecord
from faststream import AckPolicy
from faststream.asgi import AsgiFastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from pydantic import Field
from pydantic_settings import BaseSettings

from libs.logging import configure_logging, get_logger
from libs.messaging.broker import attach_pipeline, create_broker
from libs.messaging.outbox import OutboxRelay, insert_outbox_messages, running_relay
from libs.messaging.outgoing import Outgoing, caused_by
from libs.messaging.pipeline import CURRENT_RECORD, Envelope, Pipeline, RetryPolicy, read_envelope
from libs.messaging.processed import insert_processed_message
from libs.messaging.publisher import Publisher
from libs.observability import Metrics, Progress, consumer_lag, health_endpoint
from libs.postgres import create_pool, ping
from libs.settings import ConnectionSettings
from libs.specification import service_specification
from signgate_contracts import Message, Topic, UnknownMessageType, decode
from signgate_contracts.codec import read_object
from signgate_contracts.topics import OUTCOME_TOPIC

log = get_logger(__name__)
__version__ = "0.1.0"


class ServiceSettings(BaseSettings):
    """Settings every service has; each service subclasses it with its own env prefix."""

    connections: ConnectionSettings = Field(default_factory=ConnectionSettings)
    retry_attempts: int = Field(4, ge=1, description="Tries of a message hit by a transient fault.")
    retry_first_delay: float = Field(0.1, gt=0, description="Seconds before the first retry; doubles.")
    outbox_poll_interval: float = Field(0.5, gt=0, description="Seconds between outbox sweeps.")
    fetch_max_wait_ms: int = Field(
        100, ge=0, description="Longest the broker holds a fetch for new records: the idle latency floor."
    )
    session_timeout_ms: int = Field(
        10_000, ge=1_000, description="How long a silent consumer keeps its partitions: the wait after a crash."
    )
    heartbeat_interval_ms: int = Field(3_000, ge=100, description="How often a consumer says it is alive.")
    consumer_workers: int = Field(
        1, ge=1, le=32,
        description="Consumers per consumed topic in this process: partitions are handled concurrently, "
        "each partition (so each key) still one record at a time, in order, committed only once handled.",
    )
    stall_after: float = Field(
        60.0, gt=0, description="Seconds with records waiting and none handled before /health fails."
    )

    @property
    def retry(self) -> RetryPolicy:
        return RetryPolicy(attempts=self.retry_attempts, first_delay=self.retry_first_delay)


@dataclass
class Resources:
    """What the service's lifespan opened; handed to every use case."""

    settings: ServiceSettings
    publisher: Publisher
    pool: asyncpg.Pool | None = None
    redis: aioredis.Redis | None = None
    relay: OutboxRelay | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    """Objects a service builds once from the above (hashers, stores), by name."""


@dataclass(frozen=True)
class Unit:
    """What one use case may touch: the transaction's connection (if the service has Postgres)."""

    resources: Resources
    connection: asyncpg.Connection | None = None


UseCase = Callable[[Any, Unit], Awaitable[Sequence[Outgoing]]]
"""A use case takes a message and returns what to publish; it raises a Refusal to refuse."""


@dataclass(frozen=True)
class ServiceDefinition:
    """What a service is, as data."""

    name: str
    consumes: tuple[Topic, ...]
    handlers: Mapping[type[Message], UseCase]
    extra_outcomes: Mapping[str, Topic] = field(default_factory=dict)
    """Outcome topics of consumed command topics that are not in the registry (tests, extensions)."""
    schema: str | None = None
    """Postgres schema the service owns; None for a service without Postgres."""
    uses_redis: bool = False
    shared_tracks: tuple[str, ...] = ()
    """Shared migration tracks from ``libs/sql/`` (``accounts``: API users' account states)."""
    folder: Path | None = None
    """The service's package folder (holds ``migrations/``)."""

    @property
    def outcomes(self) -> dict[str, Topic]:
        """Consumed command topic name -> the topic its outcomes (and rejections) go to."""
        registry = {t.name: OUTCOME_TOPIC[t.name] for t in self.consumes if t.name in OUTCOME_TOPIC}
        return {**registry, **self.extra_outcomes}

    @property
    def group_id(self) -> str:
        return f"signgate-{self.name}"

    def check(self) -> None:
        """Every command a consumed command topic carries has a use case."""
        for topic in self.consumes:
            if topic.answers_commands:
                missing = [m.__name__ for m in topic.messages if m not in self.handlers]
                if missing:
                    raise TypeError(f"{self.name}: no use case for {', '.join(missing)}")


@dataclass
class Service:
    """A built service: the FastStream app and the parts tests and tools may reach for."""

    definition: ServiceDefinition
    app: AsgiFastStream
    broker: KafkaBroker
    pipeline: Pipeline
    resources: Resources
    metrics: Metrics


def build_service(definition: ServiceDefinition, settings: ServiceSettings) -> Service:
    """Broker, pipeline, one subscriber for every consumed topic, and start/stop hooks.

    Resources open in ``on_startup`` (before the broker starts consuming) and close in
    ``after_shutdown`` (after in-flight messages are done), so ``faststream run`` and
    ``async with app`` in tests behave alike.
    """
    definition.check()
    connections = settings.connections
    configure_logging(connections.log_level, connections.log_format, service=definition.name)
    metrics = Metrics(definition.name)
    progress = Progress(settings.stall_after)
    broker = create_broker(definition.name, connections)
    broker.add_middleware(KafkaPrometheusMiddleware(registry=metrics.registry, app_name=definition.name))
    publisher = Publisher(broker, connections, metrics)
    pipeline = Pipeline(
        service=definition.name,
        settings=connections,
        publisher=publisher,
        outcome_topics=definition.outcomes,
        retry=settings.retry,
        metrics=metrics,
        progress=progress,
    )
    attach_pipeline(broker, pipeline)
    resources = Resources(settings=settings, publisher=publisher)
    handle = Handler(definition, resources)

    topics = [connections.topic(t.name) for t in definition.consumes]
    workers = settings.consumer_workers
    # One consumer over every topic; or, with several workers, one subscriber per topic whose
    # consumers share its partitions (FastStream's concurrent manual-commit mode takes one topic).
    groups = [topics] if workers == 1 else [[topic] for topic in topics]
    subscribers = []
    for group in groups:
        subscriber = broker.subscriber(
            *group,
            group_id=connections.topic(definition.group_id),
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.heartbeat_interval_ms,
            title=definition.name if workers == 1 else f"{definition.name}:{group[0]}",
            decoder=undecoded,
            include_in_schema=False,  # described topic by topic in libs.specification
            **({"max_workers": workers} if workers > 1 else {}),
        )

        @subscriber
        async def consume(_body: Any) -> None:  # no Context parameter: resolving one costs a thread hop
            record = CURRENT_RECORD.get()
            await handle(record.topic, record.value or b"", record)

        subscribers.append(subscriber)

    checks = {
        "broker": lambda: broker.ping(timeout=2.0),
        "progress": lambda: _progress_check(progress, [c for s in subscribers for c in _consumers(s)]),
    }
    if definition.schema:
        checks["postgres"] = lambda: ping(resources.pool)
    if definition.uses_redis:
        checks["redis"] = lambda: resources.redis.ping()

    stack = contextlib.AsyncExitStack()  # resources: closed after the broker stops
    relay_loop = contextlib.AsyncExitStack()  # stopped before the broker stops

    async def open_resources() -> None:
        if definition.schema:
            resources.pool = await create_pool(connections.database_url, definition.schema)
            stack.push_async_callback(resources.pool.close)
            resources.relay = OutboxRelay(resources.pool, publisher.send, send_many=publisher.send_many)
            pipeline.record_rejection = handle.record_rejection
        if definition.uses_redis:
            resources.redis = aioredis.Redis.from_url(connections.redis_url)
            stack.push_async_callback(resources.redis.aclose)

    async def start_relay() -> None:
        if resources.relay:
            await relay_loop.enter_async_context(running_relay(resources.relay, settings.outbox_poll_interval))

    app = AsgiFastStream(
        broker,
        asgi_routes=[("/health", health_endpoint(checks)), ("/metrics", metrics.asgi())],
        asyncapi_path="/docs",
        on_startup=[open_resources],
        after_startup=[start_relay],
        on_shutdown=[relay_loop.aclose],
        after_shutdown=[stack.aclose],
        specification=service_specification(definition, connections, version=__version__),
    )
    return Service(definition, app, broker, pipeline, resources, metrics)


async def undecoded(message: Any) -> bytes:
    """The record's bytes as they came: the Handler decodes them under the pipeline's rules
    (FastStream's own JSON decoding raised RecursionError on deep nesting: a 500, not a DLQ)."""
    return message.body


def _consumers(subscriber) -> list:
    """A subscriber's consumers: its one, or one per worker when partitions are handled concurrently."""
    group = getattr(subscriber, "consumer_subgroup", None)
    if group:
        return list(group)
    consumer = getattr(subscriber, "consumer", None)
    return [consumer] if consumer is not None else []


async def _progress_check(progress: Progress, consumers: list) -> dict[str, object]:
    lag = sum([await consumer_lag(consumer) for consumer in consumers])
    return {"ok": not progress.stalled(lag), "lag": lag, "idle_seconds": round(progress.idle_for(), 1)}


def build_app(definition: ServiceDefinition, settings: ServiceSettings) -> AsgiFastStream:
    """The FastStream app of a service (what ``faststream run ... --factory`` runs)."""
    return build_service(definition, settings).app


class Handler:
    """Decodes a record, runs its use case once, and queues or publishes what it returns."""

    def __init__(self, definition: ServiceDefinition, resources: Resources) -> None:
        self.definition = definition
        self.resources = resources
        self.handled_types = {m.model_fields["type"].default: m for m in definition.handlers}
        self.topics = {topic.name: topic for topic in definition.consumes}

    async def __call__(self, deployed_topic: str, body: bytes, record: ConsumerRecord | None = None) -> None:
        topic = self.topics[self.resources.settings.connections.registry_name(deployed_topic)]
        if not topic.answers_commands and read_object(body)["type"] not in self.handled_types:
            return  # other services' facts this one does not need
        message = decode(topic, body)
        if record is not None and not {"event_id", "correlation_id"} <= message.model_fields_set:
            message = with_stand_in_ids(message, read_envelope(record))
        use_case = self.definition.handlers.get(type(message))
        if use_case is None:
            raise UnknownMessageType(message.type, topic.name)
        if self.resources.pool is None:
            outgoing = await use_case(message, Unit(self.resources))
            for effect in stamp(message, outgoing):
                await self.resources.publisher.publish(effect)
            return
        async with self.resources.pool.acquire() as connection, connection.transaction():
            if not await insert_processed_message(connection, self.definition.name, message.event_id):
                log.info("duplicate message ignored")
                return
            outgoing = await use_case(message, Unit(self.resources, connection))
            await insert_outbox_messages(connection, stamp(message, outgoing), self.resources.publisher.deployed)
        assert self.resources.relay is not None
        await self.resources.relay.flush()

    async def record_rejection(self, envelope: Envelope, rejection: Outgoing) -> None:
        """A rejection is an outcome too: recorded once, with the processed-message claim."""
        assert self.resources.pool is not None and self.resources.relay is not None
        async with self.resources.pool.acquire() as connection, connection.transaction():
            if await insert_processed_message(connection, self.definition.name, envelope.event_id):
                await insert_outbox_messages(connection, [rejection], self.resources.publisher.deployed)
        await self.resources.relay.flush()


def with_stand_in_ids(message: Message, envelope: Envelope) -> Message:
    """A message sent without its ids takes the stand-ins derived from its record's position (as
    its rejections do): a redelivery is then recognised as one, and its outcome can be found."""
    missing = {name: getattr(envelope, name) for name in ("event_id", "correlation_id")
               if name not in message.model_fields_set}
    return message.model_copy(update=missing) if missing else message


def stamp(cause: Message, outgoing: Sequence[Outgoing]) -> list[Outgoing]:
    """Give every effect of ``cause`` its correlation, causation and a replay-stable id."""
    return [
        replace(o, message=caused_by(cause, o.message, index=i)) for i, o in enumerate(outgoing)
    ]
