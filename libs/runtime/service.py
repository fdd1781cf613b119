"""The composition of a signgate service: what it consumes, how it handles it, and its resources.

A service is described by a `ServiceDefinition` (pure data: topics, handlers, schema, settings class) and
turned into a FastStream app by `build_app`. Nothing connects until the app starts: the
lifespan opens the Postgres pool, the Redis client and the outbox relay, and closes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from faststream import AckPolicy
from faststream.asgi import AsgiFastStream
from faststream.kafka import KafkaBroker

from libs.runtime.definition import (
    MessageHandler,
    Resources,
    Scope,
    ServiceDefinition,
    ServiceSettings,
)
from libs.runtime.executor import BatchExecutor, balanced_lanes
from libs.runtime.kafka_security import KafkaSecurityError, check_brokers
from libs.runtime.logging import configure_logging, get_logger
from libs.runtime.messaging.broker import attach_batches, create_broker
from libs.runtime.messaging.outbox import OutboxRelay, running_relay
from libs.runtime.messaging.pipeline import (
    CURRENT_BATCH,
    Pipeline,
)
from libs.runtime.messaging.publisher import Publisher
from libs.runtime.observability import (
    OUTBOX_BACKLOG,
    Destinations,
    Metrics,
    Progress,
    Readiness,
    committed_progress,
    faststream_metrics,
    liveness_endpoint,
    readiness_endpoint,
)
from libs.runtime.postgres import create_pool, ping
from libs.runtime.redis_client import open_redis
from libs.runtime.redis_client import ping as redis_ping
from libs.runtime.settings import ConnectionSettings
from libs.runtime.specification import service_specification
from libs.security.record_signatures import (
    RecordKeyError,
    RecordSigner,
    RecordVerifier,
    signing_key_variable,
)
from signgate_contracts.topics import TOPICS

__all__ = [
    "BatchExecutor",
    "MessageHandler",
    "Resources",
    "Scope",
    "Service",
    "ServiceDefinition",
    "ServiceSettings",
    "balanced_lanes",
    "build_app",
    "build_service",
]

log = get_logger(__name__)
__version__ = "0.1.0"


class ServiceApp(AsgiFastStream):
    """FastStream's ASGI app, served by uvicorn without uvicorn's own logging set-up (its handlers
    and colour formatters): uvicorn's lines go through the service's JSON logs like every other."""

    async def run(
        self, log_level: int = logging.INFO, run_extra_options: dict[str, Any] | None = None
    ) -> None:
        await super().run(log_level, {"log_config": None, **(run_extra_options or {})})


@dataclass
class Service:
    """A built service: the FastStream app and the parts tests and tools may reach for."""

    definition: ServiceDefinition
    app: ServiceApp
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
    metrics = Metrics(definition.name, destinations=destinations(definition, connections))
    progress = Progress(settings.stall_after)
    broker = create_broker(definition.name, connections)
    broker.add_middleware(faststream_metrics(metrics))
    signer, verifier = record_keys(definition, settings)
    publisher = Publisher(broker, connections, signer, metrics, service=definition.name)
    pipeline = Pipeline(
        service=definition.name,
        settings=connections,
        publisher=publisher,
        outcome_topics=definition.outcomes,
        retry=settings.retry,
        metrics=metrics,
        rejection_key=definition.rejection_key(settings) if definition.rejection_key else None,
    )
    attach_batches(broker, definition.name)
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
        batch = CURRENT_BATCH.get()
        await executor.batch(batch.records, batch.envelopes)

    async def redis_answers() -> object:
        assert resources.redis is not None
        return await redis_ping(resources.redis)

    checks: dict[str, Callable[[], Awaitable[Any]]] = {
        "broker": lambda: broker.ping(timeout=2.0),
        "progress": lambda: _progress_check(progress, metrics, _consumers(subscriber)),
    }
    if definition.schema:
        checks["postgres"] = lambda: ping(resources.pool)
    if definition.uses_redis:
        checks["redis"] = redis_answers
    readiness = Readiness(checks)

    async def record_readiness() -> None:  # the consumer's lag is recorded by its check
        ready, _ = await readiness.check()
        metrics.ready.labels(definition.name).set(1 if ready else 0)

    async def record_outbox() -> None:
        if resources.pool is not None:
            backlog, oldest_age = await resources.pool.fetchrow(OUTBOX_BACKLOG)
            metrics.record_outbox(backlog, oldest_age)

    metrics.on_scrape(record_readiness)
    if definition.schema:
        metrics.on_scrape(record_outbox)

    stack = contextlib.AsyncExitStack()  # resources: closed after the broker stops
    relay_loop = contextlib.AsyncExitStack()  # stopped before the broker stops

    async def open_resources() -> None:
        try:  # a refused certificate or password is one clear line, not a bootstrap retry loop
            await check_brokers(connections)
        except KafkaSecurityError as error:
            log.error("kafka refused this service's security settings", reason=str(error))
            raise
        if definition.schema:
            resources.pool = await create_pool(  # one a lane, the relay's, /readyz's, /metrics'
                connections.database_url, definition.schema, max_size=settings.lanes + 3
            )
            stack.push_async_callback(resources.pool.close)
            resources.relay = OutboxRelay(resources.pool, publisher)
        if definition.uses_redis:
            resources.redis = await open_redis(
                connections.redis_url, cluster=connections.redis_cluster
            )
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
        if definition.background is not None:
            await relay_loop.enter_async_context(
                running_background(definition.name, definition.background(resources))
            )

    ready = readiness_endpoint(readiness)
    app = ServiceApp(
        broker,
        asgi_routes=[
            ("/livez", liveness_endpoint()),
            ("/readyz", ready),
            ("/health", ready),  # the older name of /readyz
            ("/metrics", metrics.asgi()),
            *(definition.http_routes(settings) if definition.http_routes else ()),
            *(definition.resource_routes(resources) if definition.resource_routes else ()),
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


@contextlib.asynccontextmanager
async def running_background(name: str, loop: Awaitable[None]) -> AsyncIterator[None]:
    """Run a service's background loop for the duration of the block; cancel it at the end."""
    task = asyncio.ensure_future(loop)
    task.set_name(f"{name}-background")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


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


def destinations(definition: ServiceDefinition, connections: ConnectionSettings) -> Destinations:
    """The bounded ``destination`` labels of what the service publishes: every registry topic and
    the service's own outcome topics by name, callers' reply topics as one."""
    known = [t.name for t in TOPICS]
    known += [t.name for t in (*definition.consumes, *definition.outcomes.values())]
    return Destinations(
        connections.topic_prefix, connections.topic(connections.caller_reply_prefix), known
    )


async def _progress_check(
    progress: Progress, metrics: Metrics, consumers: list
) -> dict[str, object]:
    committed: dict[Any, int] = {}
    ends: dict[Any, int] = {}
    for consumer in consumers:
        offsets, last = await committed_progress(consumer)
        committed.update(offsets)
        ends.update(last)
    metrics.record_offsets(committed, ends)
    lag, stalled = progress.observe(committed, ends)
    return {
        "ok": not stalled,
        "lag": lag,
        "stalled": sorted(f"{p.topic}/{p.partition}" for p in stalled),
    }


def build_app(definition: ServiceDefinition, settings: ServiceSettings) -> ServiceApp:
    """The FastStream app of a service (what ``faststream run ... --factory`` runs)."""
    return build_service(definition, settings).app
