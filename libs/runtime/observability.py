"""Metrics and probes of one service, served over HTTP by FastStream's ASGI app.

``/metrics``: Prometheus text — FastStream's own per-topic message, latency and error metrics
(their ``destination`` label bounded as signgate's is), signgate's counters (messages published
by type and destination, rejections by code, dead letters, redeliveries), the handling-latency
histogram by message type, and gauges refreshed at each scrape: consumer lag and committed
offset per assigned partition, the outbox's backlog and its oldest row's age, readiness; and
the process's CPU, memory and file descriptors (prometheus_client's process and platform
collectors), every series labelled with the service.
``/livez``: 200 while the process and its event loop answer; it never asks a dependency.
``/readyz`` (and ``/health``, its older name): 200 when the broker, Postgres and Redis answer and
the consumer keeps up; 503 with the failing checks otherwise. "Keeps up" fails when records wait
on one of the service's partitions and its committed offset has not advanced for ``stall_after``
seconds.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from faststream.asgi import AsgiResponse, get
from faststream.kafka.prometheus.provider import (
    BatchKafkaMetricsSettingsProvider,
    KafkaMetricsSettingsProvider,
)
from faststream.prometheus.middleware import PrometheusMiddleware
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    make_asgi_app,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from libs.runtime.logging import get_logger

log = get_logger(__name__)

CALLER_REPLY = "caller-reply"
"""The ``destination`` of every record sent to a caller's own reply topic: one series, not one a caller."""
OTHER_DESTINATION = "other"
"""The ``destination`` of a topic the service was not built to publish to (none is, today)."""
UNKNOWN_TYPE = "unknown"
"""The ``type`` of a record that could not be decoded as a message of its topic."""

HANDLING_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
"""Seconds: a record is handled in a few milliseconds; retries with backoff take seconds."""


class Destinations:
    """Bounded ``destination`` label values: a registry topic's name, or ``caller-reply``."""

    def __init__(self, topic_prefix: str, caller_prefix: str, known: Iterable[str]) -> None:
        self.topic_prefix = topic_prefix
        self.caller_prefix = caller_prefix
        """The deployed prefix of callers' reply topics (after the topic prefix)."""
        self.known = frozenset(name for topic in known for name in (topic, f"{topic}.dlq"))

    def label(self, deployed: str) -> str:
        if deployed.startswith(self.caller_prefix):
            return CALLER_REPLY
        if not deployed.startswith(self.topic_prefix):
            return OTHER_DESTINATION
        name = deployed[len(self.topic_prefix) :]
        return name if name in self.known else OTHER_DESTINATION


class _Labelled(Collector):
    """Another collector's metrics with the service's label added to every sample."""

    def __init__(self, collector: Collector, labels: Mapping[str, str]) -> None:
        self._collector = collector
        self._labels = dict(labels)

    def collect(self) -> Iterator[Metric]:
        for family in self._collector.collect():
            labelled = Metric(family.name, family.documentation, family.type, family.unit)
            labelled.samples = [
                sample._replace(labels={**sample.labels, **self._labels})
                for sample in family.samples
            ]
            yield labelled


Refresh = Callable[[], Awaitable[None]]

_abandoned: set[asyncio.Task[Any]] = set()
"""Tasks given up on, held until they finish so that they are not collected mid-flight."""


async def within(timeout: float, work: Awaitable[Any]) -> Any:
    """``work``'s result, or TimeoutError after ``timeout`` seconds even if ``work`` does not let
    itself be cancelled promptly (asyncpg's cancellation waits on a black-holed server): a probe
    answers in time whatever hangs behind it."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        _abandoned.add(task)
        task.add_done_callback(_forget)
        raise TimeoutError
    return task.result()


def _forget(task: asyncio.Task[Any]) -> None:
    _abandoned.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: its failure was reported as the timeout already


@dataclass
class Metrics:
    """The service's Prometheus registry, signgate's own metrics, and what refreshes at a scrape."""

    service: str
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    destinations: Destinations | None = None
    """Bounds the ``destination`` label; None (tools, tests): the deployed topic's name as it is."""

    def __post_init__(self) -> None:
        labels = ["service"]
        self.published = Counter(
            "signgate_messages_published",
            "Messages published, by message type and destination (a registry topic, or "
            "caller-reply for any caller's own reply topic).",
            [*labels, "type", "destination"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "signgate_commands_rejected",
            "Commands answered with command.rejected, by code.",
            [*labels, "code"],
            registry=self.registry,
        )
        self.dead_lettered = Counter(
            "signgate_messages_dead_lettered",
            "Records set aside in a dead-letter topic, by the topic they came from.",
            [*labels, "topic"],
            registry=self.registry,
        )
        self.unauthenticated = Counter(
            "signgate_records_unauthenticated",
            "Records of internal topics without a valid signature of the topic's writer; dead-lettered.",
            [*labels, "topic"],
            registry=self.registry,
        )
        self.redelivered = Counter(
            "signgate_records_redelivered",
            "Records of batches that failed and are delivered again (a dependency away, or a record that "
            "keeps failing until its deliveries are exhausted).",
            labels,
            registry=self.registry,
        )
        self.handling = Histogram(
            "signgate_handling_seconds",
            "Seconds from the start of a record's handling to its outcome (retries included, its "
            "lane's commit not), by message type (unknown: the record could not be decoded).",
            [*labels, "type"],
            buckets=HANDLING_BUCKETS,
            registry=self.registry,
        )
        self.lag = Gauge(
            "signgate_consumer_lag",
            "Records past the group's committed offset, per partition assigned to this process.",
            [*labels, "topic", "partition"],
            registry=self.registry,
        )
        self.committed = Gauge(
            "signgate_consumer_committed_offset",
            "The group's committed offset, per partition assigned to this process.",
            [*labels, "topic", "partition"],
            registry=self.registry,
        )
        self.outbox_backlog = Gauge(
            "signgate_outbox_backlog",
            "Rows in the service's outbox waiting to be published (the table every replica shares).",
            labels,
            registry=self.registry,
        )
        self.outbox_oldest_age = Gauge(
            "signgate_outbox_oldest_age_seconds",
            "Age of the oldest row waiting in the outbox; 0 when it is empty.",
            labels,
            registry=self.registry,
        )
        self.ready = Gauge(
            "signgate_ready",
            "1 when /readyz answers 200 (broker, Postgres, Redis answer and the consumer keeps up), else 0.",
            labels,
            registry=self.registry,
        )
        for collector in (ProcessCollector(registry=None), PlatformCollector(registry=None)):
            self.registry.register(_Labelled(collector, {"service": self.service}))
        self._partitions: set[tuple[str, str]] = set()
        self._refreshes: list[Refresh] = []

    def destination(self, deployed: str) -> str:
        return self.destinations.label(deployed) if self.destinations else deployed

    def count_published(self, type_: str, deployed: str) -> None:
        self.published.labels(self.service, type_, self.destination(deployed)).inc()

    def record_offsets(self, committed: Mapping[Any, int], ends: Mapping[Any, int]) -> None:
        """Lag and committed offset of exactly the partitions in ``ends`` (those assigned now)."""
        now: set[tuple[str, str]] = set()
        for partition, end in ends.items():
            offset = committed.get(partition, 0)
            key = (partition.topic, str(partition.partition))
            self.lag.labels(self.service, *key).set(max(end - offset, 0))
            self.committed.labels(self.service, *key).set(offset)
            now.add(key)
        for gone in self._partitions - now:  # revoked: another replica reports it now
            self.lag.remove(self.service, *gone)
            self.committed.remove(self.service, *gone)
        self._partitions = now

    def record_outbox(self, backlog: int, oldest_age: float | None) -> None:
        self.outbox_backlog.labels(self.service).set(backlog)
        self.outbox_oldest_age.labels(self.service).set(max(oldest_age or 0.0, 0.0))

    def on_scrape(self, refresh: Refresh) -> None:
        """Run ``refresh`` before every scrape is answered."""
        self._refreshes.append(refresh)

    async def refresh(self, timeout: float = 3.0) -> None:
        """Bring the scrape-time gauges up to date; a refresh that fails leaves its gauges as they were."""

        async def one(refresh: Refresh) -> None:
            try:
                await within(timeout, refresh())
            except Exception as error:  # a scrape still answers with what is known
                log.warning("metrics refresh failed", error=type(error).__name__)

        await asyncio.gather(*(one(r) for r in self._refreshes))

    def asgi(self) -> Any:
        exposition = make_asgi_app(self.registry)

        async def metrics(scope: Any, receive: Any, send: Any) -> None:
            await self.refresh()
            await exposition(scope, receive, send)

        return metrics


OUTBOX_BACKLOG = "SELECT count(*), EXTRACT(EPOCH FROM now() - min(created_at))::float8 FROM outbox"
"""Read from outside the relay: what waits, and for how long the oldest has."""


class Progress:
    """Tells a stalled consumer from an idle one by its committed offsets.

    A partition is stalled when records wait past its committed offset and that offset has not
    moved for ``stall_after`` seconds: records are read and handled, but none is settled (a
    batch delivered again and again fails the same way). Reading records is not progress.
    """

    def __init__(self, stall_after: float) -> None:
        self.stall_after = stall_after
        self._since: dict[Any, tuple[int, float, int]] = {}
        """Partition -> (its committed offset, since when records have waited at it, how many
        waited at the last look): the clock starts at the first look that finds records waiting."""

    def observe(
        self, committed: Mapping[Any, int], ends: Mapping[Any, int], now: float | None = None
    ) -> tuple[int, list[Any]]:
        """(records waiting past the committed offsets, the partitions stalled) at ``now``."""
        now = time.monotonic() if now is None else now
        lag, stalled = 0, []
        for partition, end in ends.items():
            offset = committed.get(partition, 0)
            waiting = max(end - offset, 0)
            seen = self._since.get(partition)
            if seen is None or seen[0] != offset or seen[2] == 0:
                seen = (offset, now, waiting)
            self._since[partition] = seen = (offset, seen[1], waiting)
            lag += waiting
            if waiting and now - seen[1] > self.stall_after:
                stalled.append(partition)
        return lag, stalled


async def committed_progress(consumer: Any) -> tuple[dict[Any, int], dict[Any, int]]:
    """The group's committed offsets and the end offsets of the consumer's assigned partitions."""
    partitions = list(consumer.assignment()) if consumer is not None else []
    if not partitions:
        return {}, {}
    ends = await consumer.end_offsets(partitions)
    offsets = await asyncio.gather(*(consumer.committed(partition) for partition in partitions))
    return {p: o or 0 for p, o in zip(partitions, offsets, strict=True)}, ends


Check = Callable[[], Awaitable[Any]]


class Readiness:
    """The checks /readyz runs: every one at once, each within ``timeout``."""

    def __init__(self, checks: Mapping[str, Check], timeout: float = 2.0) -> None:
        self.checks = dict(checks)
        self.timeout = timeout

    async def check(self) -> tuple[bool, dict[str, Any]]:
        """(all passed, each check's answer)."""

        async def one(check: Check) -> dict[str, Any]:
            try:
                result = await within(self.timeout, check())
            except Exception as error:  # a readiness check reports failures, it never raises
                return {"ok": False, "error": type(error).__name__}
            return result if isinstance(result, dict) else {"ok": bool(result)}

        answers = await asyncio.gather(*(one(check) for check in self.checks.values()))
        results = dict(zip(self.checks, answers, strict=True))
        return all(bool(r.get("ok", False)) for r in results.values()), results


def _json(body: dict[str, Any], status: int) -> AsgiResponse:
    return AsgiResponse(
        json.dumps(body).encode(), status, headers={"content-type": "application/json"}
    )


def readiness_endpoint(readiness: Readiness):
    """An ASGI GET handler running every check; any failure or falsy answer makes it 503."""

    @get(description="Broker, Postgres, Redis and consumer progress.")
    async def readyz(scope: Any) -> AsgiResponse:
        ready, results = await readiness.check()
        return _json(
            {"status": "ok" if ready else "failing", "checks": results}, 200 if ready else 503
        )

    return readyz


def liveness_endpoint():
    """An ASGI GET handler answering 200 whenever the event loop runs it: no dependency is asked,
    so an outage of one never has the process restarted."""

    @get(description="The process and its event loop answer.")
    async def livez(scope: Any) -> AsgiResponse:
        return _json({"status": "ok"}, 200)

    return livez


def faststream_metrics(metrics: Metrics) -> PrometheusMiddleware:
    """FastStream's Kafka Prometheus middleware in the service's registry, its ``destination`` label
    bounded as signgate's is (FastStream labels a publish with the topic as given: a caller's own)."""

    class Bounded:
        def get_publish_destination_name_from_cmd(self, cmd: Any) -> str:
            return metrics.destination(cmd.destination)

    class Single(Bounded, KafkaMetricsSettingsProvider):
        pass

    class Batch(Bounded, BatchKafkaMetricsSettingsProvider):
        pass

    def providers(message: Any) -> Any:
        return Batch() if isinstance(message, Sequence) else Single()

    return PrometheusMiddleware(
        settings_provider_factory=providers, registry=metrics.registry, app_name=metrics.service
    )
