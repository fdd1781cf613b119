"""The composition of a signgate service: what it consumes, how it handles it, and its resources.

A service is described by a `ServiceDefinition` (pure data: topics, handlers, schema, settings class) and
turned into a FastStream app by `build_app`. Nothing connects until the app starts: the
lifespan opens the Postgres pool, the Redis client and the outbox relay, and closes them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Generic, TypeVar
from uuid import UUID

import asyncpg
import redis.asyncio as aioredis
from aiokafka.structs import ConsumerRecord
from faststream import AckPolicy
from faststream.asgi import AsgiFastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

from libs.runtime.errors import is_transient
from libs.runtime.logging import configure_logging, get_logger
from libs.runtime.messaging.broker import attach_batches, create_broker
from libs.runtime.messaging.outbox import OutboxRelay, insert_outbox_records, running_relay
from libs.runtime.messaging.outgoing import Outgoing, caused_by
from libs.runtime.messaging.pipeline import (
    CURRENT_BATCH,
    DeliveriesExhausted,
    Envelope,
    Pipeline,
    RetryPolicy,
    position_id,
    read_envelope,
)
from libs.runtime.messaging.processed import claim_processed_messages
from libs.runtime.messaging.publisher import Publication, Publisher
from libs.runtime.messaging.replies import ReplyRule
from libs.runtime.messaging.savepoint import SavepointOnWrite
from libs.runtime.observability import Metrics, Progress, committed_progress, health_endpoint
from libs.runtime.postgres import create_pool, ping
from libs.runtime.read_ahead import ReadAhead
from libs.runtime.redis_client import create_redis
from libs.runtime.settings import ConnectionSettings
from libs.runtime.specification import service_specification
from libs.security.record_signatures import (
    RecordKeyError,
    RecordKeySettings,
    RecordSigner,
    RecordVerifier,
    Unauthenticated,
    signing_key_variable,
)
from signgate_contracts import Message, Topic, UnknownMessageType, decode
from signgate_contracts.codec import decode_object
from signgate_contracts.topics import OUTCOME_TOPIC, TOPICS, TopicKind

log = get_logger(__name__)
__version__ = "0.1.0"


class ServiceSettings(BaseSettings):
    """Settings every service has; each service subclasses it with its own env prefix."""

    connections: ConnectionSettings = Field(default_factory=ConnectionSettings)
    record_signing_key: SecretStr | None = Field(
        None,
        description="This service's own Ed25519 private key (PEM), which signs every record it "
        "publishes; required, and given to no other service (`SIGNGATE_<SERVICE>_RECORD_SIGNING_KEY`).",
    )
    records: RecordKeySettings = Field(default_factory=RecordKeySettings)
    retry_attempts: int = Field(4, ge=1, description="Tries of a message hit by a transient fault.")
    retry_first_delay: float = Field(
        0.1, gt=0, description="Seconds before the first retry; doubles."
    )
    outbox_poll_interval: float = Field(0.5, gt=0, description="Seconds between outbox sweeps.")
    fetch_max_wait_ms: int = Field(
        100,
        ge=0,
        description="Longest the broker holds a fetch while no record waits: a record that "
        "arrives meanwhile may wait a fraction of it; shorter costs idle fetches (on the embedded "
        "broker, 25 ms costs an idle service about 5% of a core and the broker 4%; 100 ms, 1%).",
    )
    session_timeout_ms: int = Field(
        10_000,
        ge=1_000,
        description="How long a silent consumer keeps its partitions: the wait after a crash.",
    )
    heartbeat_interval_ms: int = Field(
        3_000, ge=100, description="How often a consumer says it is alive."
    )
    batch_max_records: int = Field(
        256,
        ge=1,
        le=10_000,
        description="Most records fetched and handled as one batch: one offset commit and one outbox "
        "flush per batch.",
    )
    batch_timeout_ms: int = Field(
        5,
        ge=1,
        description="Longest a consumer waits for a batch to fill before handling what it has.",
    )
    lanes: int = Field(
        4,
        ge=1,
        le=32,
        description="Records of a batch handled concurrently, split by key: each lane one Postgres "
        "transaction, each key's records in order within its lane.",
    )
    stall_after: float = Field(
        60.0,
        gt=0,
        description="Seconds with records waiting and no committed offset advancing before "
        "/health fails.",
    )
    max_deliveries: int = Field(
        5,
        ge=2,
        le=100,
        description="Deliveries of a record that fails transiently while Postgres and Redis answer, "
        "before it is dead-lettered (and answered 500) so that its partition moves on.",
    )

    @property
    def retry(self) -> RetryPolicy:
        return RetryPolicy(attempts=self.retry_attempts, first_delay=self.retry_first_delay)


D = TypeVar("D")


@dataclass
class Resources:
    """What the service's lifespan opened, and the dependencies it built from them once."""

    settings: ServiceSettings
    publisher: Publisher
    pool: asyncpg.Pool | None = None
    redis: aioredis.Redis | None = None
    relay: OutboxRelay | None = None
    dependencies: Any = None
    """The service's typed dependencies object (its ``ServiceDefinition.dependencies`` built it)."""
    extras: dict[str, Any] = field(default_factory=dict)
    """TRANSITIONAL, to be removed: objects a service still builds lazily, by name."""


@dataclass(frozen=True)
class Scope(Generic[D]):
    """What one record's handler may touch: the service's dependencies (built once, at start), the
    connection of the record's transaction (if the service has Postgres), and what its lane read
    ahead (if the service reads ahead: for the repository to consult, not the handler)."""

    dependencies: D
    connection: asyncpg.Connection | None = None
    read_ahead: ReadAhead | None = None


MessageHandler = Callable[[Any, Scope[Any]], Awaitable[Sequence[Outgoing]]]
"""A handler takes a message and returns what to publish; it raises a Refusal to refuse."""


@dataclass(frozen=True)
class ServiceDefinition:
    """What a service is, as data."""

    name: str
    consumes: tuple[Topic, ...]
    handlers: Mapping[type[Message], MessageHandler]
    settings: type[ServiceSettings] | None = None
    """The service's settings class (the docs generator reads it; ``create_app`` makes one)."""
    dependencies: Callable[[Resources], Any] | None = None
    """Builds the service's typed dependencies object once, when its resources have opened; every
    handler gets it as ``Scope.dependencies``."""
    extra_outcomes: Mapping[str, Topic] = field(default_factory=dict)
    """Outcome topics of consumed command topics that are not in the registry (tests, extensions)."""
    schema: str | None = None
    """Postgres schema the service owns; None for a service without Postgres."""
    uses_redis: bool = False
    shared_tracks: tuple[str, ...] = ()
    """Shared migration tracks from ``libs/runtime/sql/`` (``accounts``: API users' account states)."""
    folder: Path | None = None
    """The service's package folder (holds ``migrations/``)."""
    read_ahead: Callable[[], ReadAhead] | None = None
    """Makes a lane's read-ahead: one query for what its records will look up one by one."""
    http_routes: Callable[[Any], Sequence[tuple[str, Any]]] | None = None
    """The service's own HTTP routes besides /health and /metrics: (path, ASGI handler) pairs, built
    once from the service's settings (the authentication service's JWKS)."""
    rejection_key: Callable[[ServiceSettings], Callable[[str], str]] | None = None
    """Makes what keys a rejection from the command's record key, when that key must not be
    published as it is (identity's: the user name a caller gave, published as a keyed digest)."""

    @property
    def outcomes(self) -> dict[str, Topic]:
        """Consumed command topic name -> the topic its outcomes (and rejections) go to."""
        registry = {t.name: OUTCOME_TOPIC[t.name] for t in self.consumes if t.name in OUTCOME_TOPIC}
        return {**registry, **self.extra_outcomes}

    @property
    def group_id(self) -> str:
        return f"signgate-{self.name}"

    def check(self) -> None:
        """Every command a consumed command topic carries has a handler."""
        for topic in self.consumes:
            if topic.answers_commands:
                missing = [m.__name__ for m in topic.messages if m not in self.handlers]
                if missing:
                    raise TypeError(f"{self.name}: no handler for {', '.join(missing)}")


@dataclass
class Service:
    """A built service: the FastStream app and the parts tests and tools may reach for."""

    definition: ServiceDefinition
    app: AsgiFastStream
    broker: KafkaBroker
    pipeline: Pipeline
    resources: Resources
    metrics: Metrics
    progress: Progress
    executor: BatchExecutor
    open_resources: Callable[[], Awaitable[None]]
    """What the app's start-up does before the broker consumes: the pool, Redis, the dependencies."""
    close_resources: Callable[[], Awaitable[None]]
    """What the app's shut-down does after the broker stopped: closes what ``open_resources`` opened."""


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
    broker.add_middleware(
        KafkaPrometheusMiddleware(registry=metrics.registry, app_name=definition.name)
    )
    signer, verifier = record_keys(definition, settings)
    publisher = Publisher(broker, connections, signer, metrics)
    pipeline = Pipeline(
        service=definition.name,
        settings=connections,
        publisher=publisher,
        outcome_topics=definition.outcomes,
        retry=settings.retry,
        metrics=metrics,
        rejection_key=definition.rejection_key(settings) if definition.rejection_key else None,
    )
    attach_batches(broker)
    resources = Resources(settings=settings, publisher=publisher)
    executor = BatchExecutor(definition, resources, pipeline, verifier)

    subscriber = broker.subscriber(
        *[connections.topic(t.name) for t in definition.consumes],
        group_id=connections.topic(definition.group_id),
        ack_policy=AckPolicy.NACK_ON_ERROR,  # commit the batch once handled; on error, seek back
        auto_offset_reset="earliest",
        batch=True,
        max_records=settings.batch_max_records,
        batch_timeout_ms=settings.batch_timeout_ms,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=settings.heartbeat_interval_ms,
        title=definition.name,
        decoder=undecoded,
        include_in_schema=False,  # described topic by topic in libs.runtime.specification
    )

    @subscriber
    async def consume(
        _bodies: Any,
    ) -> None:  # no Context parameter: resolving one costs a thread hop
        await executor.batch(CURRENT_BATCH.get())

    async def redis_answers() -> object:
        assert resources.redis is not None
        return await resources.redis.ping()

    checks: dict[str, Callable[[], Awaitable[Any]]] = {
        "broker": lambda: broker.ping(timeout=2.0),
        "progress": lambda: _progress_check(progress, _consumers(subscriber)),
    }
    if definition.schema:
        checks["postgres"] = lambda: ping(resources.pool)
    if definition.uses_redis:
        checks["redis"] = redis_answers

    stack = contextlib.AsyncExitStack()  # resources: closed after the broker stops
    relay_loop = contextlib.AsyncExitStack()  # stopped before the broker stops

    async def open_resources() -> None:
        if definition.schema:
            resources.pool = (
                await create_pool(  # a connection per lane, the relay's, and one for /health
                    connections.database_url, definition.schema, max_size=settings.lanes + 2
                )
            )
            stack.push_async_callback(resources.pool.close)
            resources.relay = OutboxRelay(
                resources.pool, publisher.send, send_many=publisher.send_many
            )
        if definition.uses_redis:
            resources.redis = create_redis(connections.redis_url)
            stack.push_async_callback(resources.redis.aclose)
        if definition.dependencies is not None:
            built = definition.dependencies(resources)
            resources.dependencies = await built if inspect.isawaitable(built) else built
            if hasattr(
                resources.dependencies, "aclose"
            ):  # what it opened (an HTTP client) closes first
                stack.push_async_callback(resources.dependencies.aclose)

    async def start_relay() -> None:
        if resources.relay:
            await relay_loop.enter_async_context(
                running_relay(resources.relay, settings.outbox_poll_interval)
            )

    app = AsgiFastStream(
        broker,
        asgi_routes=[
            ("/health", health_endpoint(checks)),
            ("/metrics", metrics.asgi()),
            *(definition.http_routes(settings) if definition.http_routes else ()),
        ],
        asyncapi_path="/docs",
        on_startup=[open_resources],
        after_startup=[start_relay],
        on_shutdown=[relay_loop.aclose],
        after_shutdown=[stack.aclose],
        specification=service_specification(definition, connections, version=__version__),
    )
    return Service(
        definition,
        app,
        broker,
        pipeline,
        resources,
        metrics,
        progress,
        executor,
        open_resources,
        stack.aclose,
    )


def record_keys(
    definition: ServiceDefinition, settings: ServiceSettings
) -> tuple[RecordSigner, RecordVerifier]:
    """The service's record signer, and the verifier of what it consumes; refuses to start without
    its signing key, or without a public key of the writer of a topic it consumes."""
    if settings.record_signing_key is None:
        variable = signing_key_variable(
            settings.model_config.get("env_prefix") or f"SIGNGATE_{definition.name.upper()}_"
        )
        raise RecordKeyError(
            f"{definition.name} has no record signing key: set {variable} "
            "(python -m libs.devstack.dev_secrets makes a development set)"
        )
    signer = RecordSigner(settings.record_signing_key.get_secret_value())
    verifier = RecordVerifier.from_settings(settings.records)
    for topic in definition.consumes:
        if topic.writer is not None and not verifier.knows(topic.writer):
            raise RecordKeyError(
                f"{definition.name} consumes {topic.name}, which {topic.writer} signs, but "
                f"SIGNGATE_RECORD_PUBLIC_KEYS has no public key of {topic.writer}"
            )
    return signer, verifier


async def undecoded(message: Any) -> bytes:
    """The record's bytes as they came: the BatchExecutor decodes them under the pipeline's rules
    (FastStream's own JSON decoding raised RecursionError on deep nesting: a 500, not a DLQ)."""
    return message.body


def _consumers(subscriber) -> list:
    """The subscriber's consumer, once it has started."""
    consumer = getattr(subscriber, "consumer", None)
    return [consumer] if consumer is not None else []


async def _progress_check(progress: Progress, consumers: list) -> dict[str, object]:
    committed: dict[Any, int] = {}
    ends: dict[Any, int] = {}
    for consumer in consumers:
        offsets, last = await committed_progress(consumer)
        committed.update(offsets)
        ends.update(last)
    lag, stalled = progress.observe(committed, ends)
    return {
        "ok": not stalled,
        "lag": lag,
        "stalled": sorted(f"{p.topic}/{p.partition}" for p in stalled),
    }


def build_app(definition: ServiceDefinition, settings: ServiceSettings) -> AsgiFastStream:
    """The FastStream app of a service (what ``faststream run ... --factory`` runs)."""
    return build_service(definition, settings).app


@dataclass
class DecodedRecord:
    """One record of a batch, decoded as far as it could be."""

    record: ConsumerRecord
    envelope: Envelope
    message: Message | None = None
    error: Exception | None = None
    """Why the record could not be decoded; it is settled (dead letter, rejection), not handled."""

    @property
    def event_id(self) -> UUID:
        return self.message.event_id if self.message is not None else self.envelope.event_id


TRANSACTION_RECORDS = 48
"""Most records in one lane transaction: each writing record's savepoint is a subtransaction,
and past 64 of them Postgres overflows its subtransaction cache, which slows every session."""

DELIVERIES_REMEMBERED = 10_000
"""Records whose failed deliveries are counted at once (the oldest are forgotten first)."""


class LaneAborted(Exception):
    """The lane's transaction cannot go on (its connection broke, or Postgres picked it as a
    deadlock victim): the batch is delivered again, and records already handled are skipped."""


class TransactionAborted(Exception):
    """A record's statement failed outside its savepoint, so Postgres aborted the lane's transaction:
    the lane's records are handled again, each in a transaction of its own."""


class BatchExecutor:
    """Handles a fetched batch: its records split into lanes by key, each lane one transaction.

    In a lane every record claims its event id (one statement for the lane), what the records will
    look up is read at once (if the service reads ahead), and each record runs its handler with
    a savepoint opened at its first write (so that a refusal undoes only its own writes) and
    queues what it returns, or its rejection and dead letter, in the outbox. Lanes run
    concurrently. Once they have committed, the batch's outcomes are durable, so its offsets are
    committed while the outbox relay publishes them. A service without Postgres publishes each
    batch's effects, and waits for the broker to have them, before its offsets are committed.

    A record that breaks its lane's transaction (a failure in the claim, the read-ahead, the
    outbox insert, or a statement outside its savepoint) costs the others nothing: the lane's
    transaction is rolled back and its records are handled again one by one, each in its own
    transaction, and the one that fails alone is settled alone (dead letter, 500) in one more.
    """

    def __init__(
        self,
        definition: ServiceDefinition,
        resources: Resources,
        pipeline: Pipeline,
        verifier: RecordVerifier,
    ) -> None:
        self.definition = definition
        self.verifier = verifier
        self.resources = resources
        self.pipeline = pipeline
        self.handled_types = {m.model_fields["type"].default: m for m in definition.handlers}
        self.topics = {topic.name: topic for topic in definition.consumes}
        connections = resources.settings.connections
        self.reply_rule = ReplyRule(
            own_replies=[
                connections.topic(t.name)
                for t in TOPICS
                if t.kind is TopicKind.REPLIES and t.writer == definition.name
            ],
            caller_prefix=connections.topic(connections.caller_reply_prefix),
        )
        self._deliveries: collections.OrderedDict[tuple[str, int, int], int] = (
            collections.OrderedDict()
        )
        """(topic, partition, offset) -> deliveries that failed transiently while dependencies answered."""

    async def batch(self, records: Sequence[ConsumerRecord]) -> None:
        lanes = balanced_lanes(records, self.resources.settings.lanes)
        results = await asyncio.gather(
            *(self._lane(lane) for lane in lanes), return_exceptions=True
        )
        effects = [o for result in results if not isinstance(result, BaseException) for o in result]
        relay = self.resources.relay
        if relay is not None and relay.running:
            relay.kick()  # what the lanes committed is durable: publishing need not hold the batch
        elif relay is not None:
            await relay.flush()
        elif effects:
            await self.resources.publisher.send_many(effects)
            self._count_dead_letters(effects)
        for result in results:
            if isinstance(result, BaseException):
                if self.pipeline.metrics:
                    self.pipeline.metrics.redelivered.labels(self.definition.name).inc(len(records))
                raise result

    async def _lane(self, records: list[ConsumerRecord]) -> list[Publication]:
        """Handle one lane's records in order; returns what to publish (nothing: it is in the outbox)."""
        items = [item for item in map(self._decode, records) if item is not None]
        pool = self.resources.pool
        if pool is None:
            effects: list[Publication] = []
            for item in items:
                effects += await self._outcome(
                    item, partial(self._apply, item, Scope(self.resources.dependencies))
                )
            return effects
        for start in range(0, len(items), TRANSACTION_RECORDS):
            chunk = items[start : start + TRANSACTION_RECORDS]
            try:
                await self._transaction(pool, chunk, read_ahead=True)
            except Exception as error:
                if isinstance(error, LaneAborted) or is_transient(error):
                    raise
                log.warning(
                    "a record broke its lane's transaction; the lane's records are handled "
                    "again, each alone",
                    error=type(error).__name__,
                    records=len(chunk),
                )
                for item in chunk:
                    await self._alone(pool, item)
        return []

    async def _transaction(
        self, pool: asyncpg.Pool, items: list[DecodedRecord], *, read_ahead: bool
    ) -> None:
        """Handle ``items`` in one transaction: claim their event ids, read ahead, apply each, queue
        what they yield."""
        async with pool.acquire() as connection, connection.transaction():
            fresh = await claim_processed_messages(
                connection, self.definition.name, [i.event_id for i in items]
            )
            ahead = (
                await self._read_ahead(connection, [i for i in items if i.event_id in fresh])
                if read_ahead
                else None
            )
            queued: list[Publication] = []
            for item in items:
                if item.event_id not in fresh:
                    log.info("duplicate message ignored", event_id=str(item.event_id))
                    continue
                fresh.discard(item.event_id)  # a second copy in this very batch is a duplicate too
                queued += await self._outcome(
                    item, partial(self._apply_guarded, item, connection, ahead)
                )
            await insert_outbox_records(connection, queued)
        self._count_dead_letters(queued)

    async def _alone(self, pool: asyncpg.Pool, item: DecodedRecord) -> None:
        """Handle ``item`` in a transaction of its own; if it breaks that one too, settle its failure
        (dead letter, 500) in another."""
        try:
            await self._transaction(pool, [item], read_ahead=False)
        except Exception as error:
            if isinstance(error, LaneAborted) or is_transient(error):
                raise
            cause = (
                error.__cause__
                if isinstance(error, TransactionAborted) and error.__cause__
                else error
            )
            with self.pipeline.bound(item.record, item.envelope):
                settled = self.pipeline.settle(item.record, item.envelope, cause)  # type: ignore[arg-type]
            async with pool.acquire() as connection, connection.transaction():
                if await claim_processed_messages(
                    connection, self.definition.name, [item.event_id]
                ):
                    await insert_outbox_records(connection, settled)
            self._count_dead_letters(settled)

    def _count_dead_letters(self, published: Sequence[Publication]) -> None:
        metrics = self.pipeline.metrics
        if metrics:
            for record in published:
                if record.topic.endswith(".dlq"):
                    metrics.dead_lettered.labels(
                        self.definition.name, record.topic.removesuffix(".dlq")
                    ).inc()

    async def _read_ahead(
        self, connection: asyncpg.Connection, items: list[DecodedRecord]
    ) -> ReadAhead | None:
        if self.definition.read_ahead is None:
            return None
        ahead = self.definition.read_ahead()
        await ahead.load(connection, [item.message for item in items if item.message is not None])
        return ahead

    def _decode(self, record: ConsumerRecord) -> DecodedRecord | None:
        """The record's message; None for another service's fact this one does not need."""
        envelope = read_envelope(record)
        try:
            topic = self.topics[self.resources.settings.connections.registry_name(record.topic)]
            body = record.value or b""
            if (
                not topic.answers_commands
                and envelope.type is not None
                and envelope.type not in self.handled_types
            ):
                return None  # (a record without a readable type is decoded, and so dead-lettered)
            if topic.writer is not None:
                self._authenticate(record, topic.writer)
            parsed = envelope.document  # None: not a JSON object with a type; decode says why
            message = decode_object(topic, parsed) if parsed is not None else decode(topic, body)
            if not {"event_id", "correlation_id"} <= message.model_fields_set:
                message = with_stand_in_ids(message, envelope)
            if type(message) not in self.definition.handlers:
                raise UnknownMessageType(message.type, topic.name)
            return DecodedRecord(record, envelope, message)
        except Unauthenticated as error:  # its ids are the forger's: it claims its position instead
            return DecodedRecord(
                record, replace(envelope, event_id=position_id(record)), error=error
            )
        except Exception as error:  # settled in the lane, like a failure of the handler
            return DecodedRecord(record, envelope, error=error)

    def _authenticate(self, record: ConsumerRecord, writer: str) -> None:
        """Raises `Unauthenticated` unless ``writer`` signed this very record."""
        self.verifier.verify(record.topic, record.key, record.value or b"", record.headers, writer)

    async def _outcome(
        self, item: DecodedRecord, attempt: Callable[[], Awaitable[list[Publication]]]
    ) -> list[Publication]:
        """What ``item`` yields: its effects, or the rejection and dead letter its failure maps to."""
        with self.pipeline.bound(item.record, item.envelope):
            try:
                if item.error is not None:
                    raise item.error
                return await self.pipeline.run(attempt)
            except (LaneAborted, TransactionAborted):
                raise
            except Exception as error:
                if is_transient(error):
                    error = await self._delivery_failed(item, error)
                return self.pipeline.settle(item.record, item.envelope, error)

    async def _delivery_failed(self, item: DecodedRecord, error: Exception) -> Exception:
        """A transient failure that outlasted the retries: raised (the batch is delivered again) while
        a dependency is away or the record has deliveries left; returned as `DeliveriesExhausted`,
        to be settled, once the record has failed ``max_deliveries`` times with its dependencies up."""
        if not await self._dependencies_answer():
            log.warning(
                "dependency unavailable after retries; the batch will be delivered again",
                error=type(error).__name__,
            )
            raise error
        position = (item.record.topic, item.record.partition, item.record.offset)
        deliveries = self._deliveries.pop(position, 0) + 1
        if deliveries >= self.resources.settings.max_deliveries:
            return DeliveriesExhausted(deliveries, error)
        self._deliveries[position] = deliveries
        while len(self._deliveries) > DELIVERIES_REMEMBERED:
            self._deliveries.popitem(last=False)
        log.warning(
            "a record failed transiently with its dependencies up; the batch will be delivered again",
            error=type(error).__name__,
            deliveries=deliveries,
        )
        raise error

    async def _dependencies_answer(self) -> bool:
        """Whether Postgres and Redis (those the service uses) answer now."""
        try:
            async with asyncio.timeout(2.0):
                if self.resources.pool is not None:
                    await ping(self.resources.pool)
                if self.resources.redis is not None:
                    await self.resources.redis.ping()
            return True
        except Exception:
            return False

    async def _apply_guarded(
        self, item: DecodedRecord, connection: asyncpg.Connection, ahead: ReadAhead | None
    ) -> list[Publication]:
        """Apply ``item`` on the lane's connection, its writes undone alone if it fails."""
        guarded = SavepointOnWrite(connection)
        try:
            try:
                return await self._apply(item, Scope(self.resources.dependencies, guarded, ahead))
            except BaseException:
                await guarded.rollback()
                raise
            finally:
                if guarded.wrote and ahead is not None and item.message is not None:
                    ahead.forget(item.message)
        except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError) as error:
            raise LaneAborted(type(error).__name__) from error
        except Exception as error:
            if connection.is_closed():
                raise LaneAborted(type(error).__name__) from error
            if isinstance(error, asyncpg.PostgresError) and not guarded.wrote:
                raise TransactionAborted(
                    type(error).__name__
                ) from error  # no savepoint to roll back to
            raise

    async def _apply(self, item: DecodedRecord, scope: Scope[Any]) -> list[Publication]:
        assert item.message is not None
        self.reply_rule.check(getattr(item.message, "reply_to", None))
        handler = self.definition.handlers[type(item.message)]
        publication = self.resources.publisher.publication
        return [
            publication(o) for o in with_causation(item.message, await handler(item.message, scope))
        ]


def balanced_lanes(records: Sequence[ConsumerRecord], count: int) -> list[list[ConsumerRecord]]:
    """At most ``count`` lanes of records, each key's records in one lane in the order they came,
    keys spread so the lanes hold about as many records each (largest key first, to the emptiest
    lane): a batch takes as long as its fullest lane."""
    by_key: dict[bytes, list[ConsumerRecord]] = {}
    for record in records:
        by_key.setdefault(
            record.key if record.key is not None else b"%d" % record.partition, []
        ).append(record)
    lanes: list[list[ConsumerRecord]] = [[] for _ in range(min(count, len(by_key)))]
    emptiest = [(0, n) for n in range(len(lanes))]
    for group in sorted(by_key.values(), key=len, reverse=True):
        size, n = heapq.heappop(emptiest)
        lanes[n] += group
        heapq.heappush(emptiest, (size + len(group), n))
    return lanes


def with_stand_in_ids(message: Message, envelope: Envelope) -> Message:
    """A message sent without its ids takes the stand-ins derived from its record's position (as
    its rejections do): a redelivery is then recognised as one, and its outcome can be found."""
    missing = {
        name: getattr(envelope, name)
        for name in ("event_id", "correlation_id")
        if name not in message.model_fields_set
    }
    return message.model_copy(update=missing) if missing else message


def with_causation(cause: Message, outgoing: Sequence[Outgoing]) -> list[Outgoing]:
    """Give every effect of ``cause`` its correlation, causation and a replay-stable id."""
    return [
        replace(o, message=caused_by(cause, o.message, index=i)) for i, o in enumerate(outgoing)
    ]
