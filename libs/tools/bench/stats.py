"""Latency percentiles and rates of one load run."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
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
    """``value / reference``, or None when the reference is missing, zero or NaN (no answers)."""
    return value / reference if reference and not math.isnan(reference) else None


def pooled(rounds: Sequence[Mapping], offered_rate: float | None) -> dict:
    """Rounds of one path (each with its ``latencies_ms``, ``errors``, ``outcomes``) as one run:
    latencies pooled, counts and seconds summed; ``achieved_rate`` counts the right answers only."""
    latencies = [ms / 1000 for run in rounds for ms in run["latencies_ms"]]
    outcomes: Counter[str] = Counter()
    for run in rounds:
        outcomes.update(run["outcomes"])
    elapsed = sum(run["elapsed"] for run in rounds)
    errors = sum(run["errors"] for run in rounds)
    result = summarize(
        latencies,
        sent=sum(run["sent"] for run in rounds),
        elapsed=elapsed,
        offered_rate=offered_rate,
        outcomes=dict(outcomes),
    )
    return {
        **result.as_dict(),
        "errors": errors,
        "rounds": len(rounds),
        "achieved_rate": round((result.answered - errors) / elapsed, 1) if elapsed > 0 else 0.0,
    }
