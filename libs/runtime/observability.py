"""Metrics and health of one service, served over HTTP by FastStream's ASGI app.

``/metrics``: Prometheus text — FastStream's own per-topic message, latency and error
metrics, plus signgate's counters: messages published by type (OTPs sent, authentications,
failures, lockouts, unlocks are all event types), rejections by code, dead letters by topic.
``/health``: 200 when the broker, Postgres and Redis answer and the consumer keeps up;
503 with the failing checks otherwise. "Keeps up" fails when records wait on one of the
service's partitions and its committed offset has not advanced for ``stall_after`` seconds.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from faststream.asgi import AsgiResponse, get
from prometheus_client import CollectorRegistry, Counter, make_asgi_app


@dataclass
class Metrics:
    """The service's Prometheus registry and signgate's own counters."""

    service: str
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        labels = ["service"]
        self.published = Counter(
            "signgate_messages_published",
            "Messages published, by message type.",
            [*labels, "type"],
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
            "Records set aside in a dead-letter topic.",
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

    def asgi(self) -> Any:
        return make_asgi_app(self.registry)


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


def health_endpoint(checks: dict[str, Check], timeout: float = 2.0):
    """An ASGI GET handler running every check; any failure or falsy answer makes it 503."""

    @get(description="Broker, Postgres, Redis and consumer progress.")
    async def health(scope: Any) -> AsgiResponse:
        results: dict[str, Any] = {}
        healthy = True
        for name, check in checks.items():
            try:
                async with asyncio.timeout(timeout):
                    result = await check()
            except Exception as error:  # a health check reports failures, it never raises
                result = {"ok": False, "error": type(error).__name__}
            ok = result.get("ok", False) if isinstance(result, dict) else bool(result)
            results[name] = result if isinstance(result, dict) else {"ok": ok}
            healthy = healthy and ok
        body = json.dumps({"status": "ok" if healthy else "failing", "checks": results}).encode()
        return AsgiResponse(
            body, 200 if healthy else 503, headers={"content-type": "application/json"}
        )

    return health
