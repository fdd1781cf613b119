"""Enumeration through the broker: unknown user, wrong password and locked user, answers and timings."""

from __future__ import annotations

import json
import statistics
import uuid

import pytest

from tests.support.chaos_identity import authenticate, register_user
from tests.support.chaos_scale import report, scaled
from tests.support.kafka import producer
from tests.support.system import System

PASSWORD = "Right-pass-8812"
VOLATILE = ("event_id", "occurred_at", "correlation_id", "causation_id")
pytestmark = pytest.mark.timeout(600)


def _answer(reply: dict) -> str:
    return json.dumps({k: v for k, v in reply.items() if k not in VOLATILE}, sort_keys=True)


async def test_unknown_wrong_and_locked_users_get_the_same_answer(system: System) -> None:
    """An unknown user name, a wrong password and a wrong password for a locked user get byte-identical
    answers (apart from ids and timestamps); the latency of each is measured and reported."""
    samples = scaled(12, 100)
    async with producer(system.connections.kafka_bootstrap) as client:
        known = await register_user(system, client, PASSWORD)
        locked = await register_user(system, client, PASSWORD)
        threshold = system.services["identity"].resources.settings.lockout.threshold
        for n in range(threshold):
            await authenticate(system, client, locked, f"Wrong-pass-{n}")
        unknown = f"nobody-{uuid.uuid4().hex[:8]}@example.com"
        answers: dict[str, set[str]] = {"unknown user": set(), "wrong password": set(), "locked user": set()}
        seconds: dict[str, list[float]] = {name: [] for name in answers}
        for n in range(samples):
            for name, user_name in (("unknown user", unknown), ("wrong password", known), ("locked user", locked)):
                answer = await authenticate(system, client, user_name, f"Guess-pass-{n}")
                answers[name].add(_answer(answer.reply))
                seconds[name].append(answer.seconds)
            reset = await authenticate(system, client, known, PASSWORD)  # ends the known user's run of failures
            assert reset.reply["success"] is True
        still_locked = await authenticate(system, client, locked, PASSWORD)

    assert len(set().union(*answers.values())) == 1, answers
    assert [r["code"] for r in json.loads(next(iter(answers["unknown user"])))["reasons"]] == ["invalid_credentials"]
    assert [r["code"] for r in still_locked.reply["reasons"]] == ["account_locked"]

    def figures(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {"median_ms": round(statistics.median(ordered) * 1000, 1),
                "p95_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * 1000, 1)}

    report("enumeration (identity through the broker)", samples_each=samples,
           distinct_answers=len(set().union(*answers.values())),
           **{name: figures(values) for name, values in seconds.items()})
