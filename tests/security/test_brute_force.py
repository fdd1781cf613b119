"""The brute-force budget on the real stack: how many wrong passwords an attacker may try in a row."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.support.chaos_identity import Answer, authenticate, register_user
from tests.support.chaos_scale import report
from tests.support.kafka import correlated, producer
from tests.support.system import System

PASSWORD = "Right-pass-2231"
pytestmark = pytest.mark.timeout(300)
LOCKED_OUT = "identity.user_locked_out_v2"


def lockout_in(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((e for e in events if e["type"] == LOCKED_OUT), None)


async def lockout_of(system: System, answer: Answer) -> dict[str, Any]:
    """The lockout the answered attempt caused (it must have caused one)."""
    correlation_id = answer.events[0]["correlation_id"]
    events = system.connections.topic("signgate.identity.events")
    records = await system.watch.wait_for(lambda r: r.topic == events and correlated(r, correlation_id)
                                          and json.loads(r.value).get("type") == LOCKED_OUT, timeout=30)
    return json.loads(records[0].value)


async def test_lock_expire_fail_cycles_never_allow_more_than_a_hundred_failures(system: System) -> None:
    """Failing until locked, waiting out each temporary lockout and failing again ends in a hard lock
    after at most 100 wrong passwords (the configured cap), and the right password then gets no token."""
    policy = system.services["identity"].resources.settings.lockout
    cap = policy.hard_after
    assert cap <= 100
    clock = system.identity_clock
    assert clock is not None
    try:
        async with producer(system.connections.kafka_bootstrap) as client:
            user_name = await register_user(system, client, PASSWORD)
            guesses, run, lockouts, seconds = 0, 0, [], []
            while guesses < 300:
                answer = await authenticate(system, client, user_name, f"Wrong-pass-{guesses}")
                guesses, run = guesses + 1, run + 1
                seconds.append(answer.seconds)
                assert answer.reply["success"] is False
                assert [r["code"] for r in answer.reply["reasons"]] == ["invalid_credentials"]
                if run < policy.threshold and guesses < cap:
                    assert not lockout_in(answer.events)
                    continue
                # due now: the lockout is keyed by the user id, the failure by the name's digest, so it
                # comes on another partition, perhaps after the answer
                lock = await lockout_of(system, answer)
                lockouts.append(lock)
                run = 0
                if lock["mode"] == "hard":
                    break
                clock.advance(datetime.fromisoformat(lock["locked_until"]) - clock() + timedelta(seconds=1))
            clock.advance(timedelta(days=30))
            after_hard_lock = await authenticate(system, client, user_name, PASSWORD)
    finally:
        clock.reset()  # later tests issue tokens for services on the wall clock

    assert lockouts[-1]["mode"] == "hard"
    assert guesses <= cap
    assert max(lock["consecutive_failures"] for lock in lockouts) <= cap
    assert after_hard_lock.reply["success"] is False
    assert [r["code"] for r in after_hard_lock.reply["reasons"]] == ["account_locked"]
    report("brute-force budget (identity)", wrong_passwords_before_hard_lock=guesses, hard_after=cap,
           temporary_lockouts=len(lockouts) - 1, max_consecutive_failures=lockouts[-1]["consecutive_failures"],
           longest_wait=str(max((datetime.fromisoformat(lock["locked_until"]) - datetime.fromisoformat(
               lock["occurred_at"]) for lock in lockouts if lock["locked_until"]), default=None)),
           median_answer_ms=round(sorted(seconds)[len(seconds) // 2] * 1000, 1))
