"""Latency percentiles and rates of one load run."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by the nearest-rank method; NaN when there are no values."""
    if not values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError("q is a percentage")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class RunResult:
    """What the load generator saw: how many were sent and answered, over how long, how fast."""

    sent: int
    answered: int
    elapsed: float
    """Seconds from the first intended send to the last answer."""
    offered_rate: float | None
    """Messages per second offered (open loop), None when sent flat out."""
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    outcomes: dict[str, int]

    @property
    def throughput(self) -> float:
        return self.answered / self.elapsed if self.elapsed > 0 else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "throughput": round(self.throughput, 1)}


def summarize(
    latencies: Sequence[float],
    *,
    sent: int,
    elapsed: float,
    offered_rate: float | None,
    outcomes: dict[str, int] | None = None,
) -> RunResult:
    """Latencies in seconds (from the intended send time to the answer) -> a run's figures in ms."""
    return RunResult(
        sent=sent,
        answered=len(latencies),
        elapsed=elapsed,
        offered_rate=offered_rate,
        p50_ms=percentile(latencies, 50) * 1000,
        p95_ms=percentile(latencies, 95) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        max_ms=max(latencies, default=math.nan) * 1000,
        outcomes=dict(outcomes or {}),
    )


def ratio(value: float, reference: float) -> float | None:
    """``value / reference``, or None when the reference is missing or zero."""
    return value / reference if reference else None
