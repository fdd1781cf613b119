"""Metrics and health of one service, served over HTTP by FastStream's ASGI app.

``/metrics``: Prometheus text — FastStream's own per-topic message, latency and error
metrics, plus signgate's counters: messages published by type (OTPs sent, authentications,
failures, lockouts, unlocks are all event types), rejections by code, dead letters by topic.
``/health``: 200 when the broker, Postgres and Redis answer and the consumer keeps up;
503 with the failing checks otherwise. "Keeps up" fails when records are waiting on the
service's partitions but none has been handled for ``stall_after`` seconds.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
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
            "signgate_messages_published", "Messages published, by message type.",
            [*labels, "type"], registry=self.registry,
        )
        self.rejected = Counter(
            "signgate_commands_rejected", "Commands answered with command.rejected, by code.",
            [*labels, "code"], registry=self.registry,
        )
        self.dead_lettered = Counter(
            "signgate_messages_dead_lettered", "Records set aside in a dead-letter topic.",
            [*labels, "topic"], registry=self.registry,
        )

    def asgi(self) -> Any:
        return make_asgi_app(self.registry)


class Progress:
    """Remembers when the consumer last finished a record, to tell a stall from an idle topic."""

    def __init__(self, stall_after: float) -> None:
        self.stall_after = stall_after
        self.last_handled = time.monotonic()

    def handled(self) -> None:
        self.last_handled = time.monotonic()

    def idle_for(self) -> float:
        return time.monotonic() - self.last_handled

    def stalled(self, lag: int) -> bool:
        return lag > 0 and self.idle_for() > self.stall_after


async def consumer_lag(consumer: Any) -> int:
    """Records on the consumer's assigned partitions that it has not yet read."""
    partitions = list(consumer.assignment()) if consumer is not None else []
    if not partitions:
        return 0
    ends = await consumer.end_offsets(partitions)
    lag = 0
    for partition in partitions:
        lag += max(ends[partition] - await consumer.position(partition), 0)
    return lag


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
        return AsgiResponse(body, 200 if healthy else 503, headers={"content-type": "application/json"})

    return health
