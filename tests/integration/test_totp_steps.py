"""The single-use record of TOTP steps (libs/security/totp.py, totp_claim.lua) on real Redis, one
server and a cluster: a step is accepted once per subject, however many ask at once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from libs.runtime.redis_client import RedisClient
from libs.runtime.settings import ConnectionSettings
from libs.security.totp import TotpParameters, UsedSteps
from tests.support.redis import redis_client


@pytest.fixture
async def steps(redis_connections: ConnectionSettings) -> AsyncIterator[tuple[UsedSteps, RedisClient]]:
    async with redis_client(redis_connections) as client:
        yield UsedSteps(client, f"{redis_connections.redis_prefix}totp-{uuid.uuid4().hex[:8]}:"), client


async def test_ten_thousand_concurrent_claims_of_one_step_accept_exactly_one(
    steps: tuple[UsedSteps, RedisClient],
) -> None:
    """10,000 attempts claiming the same step for one subject, as many at once as the client's
    connections allow: exactly one is accepted."""
    used, _ = steps
    subject = f"user:{uuid.uuid4()}"
    in_flight = asyncio.Semaphore(100)

    async def claim(n: int) -> bool:
        async with in_flight:
            return await used.claim(subject, 1000, f"attempt-{n}")

    results = await asyncio.gather(*(claim(n) for n in range(10_000)))
    assert results.count(True) == 1


async def test_a_step_at_or_below_the_last_accepted_is_used_and_a_later_one_is_not(
    steps: tuple[UsedSteps, RedisClient],
) -> None:
    """Once step 1000 was accepted, steps 1000 and 999 (an older code still in the drift window)
    are refused for that subject, step 1001 is accepted, and another subject is unaffected."""
    used, _ = steps
    subject, other = f"user:{uuid.uuid4()}", f"recipient:{uuid.uuid4()}/1"
    assert await used.claim(subject, 1000, "a")
    assert not await used.claim(subject, 1000, "b")
    assert not await used.claim(subject, 999, "c")
    assert await used.claim(other, 1000, "d")
    assert await used.claim(subject, 1001, "e")
    assert not await used.claim(subject, 1000, "a")


async def test_the_attempt_that_claimed_a_step_gets_it_again_when_delivered_again(
    steps: tuple[UsedSteps, RedisClient],
) -> None:
    """The same attempt (a command redelivered after a crash) claiming its step again is accepted
    again; a different attempt with the same step is not."""
    used, _ = steps
    subject = f"user:{uuid.uuid4()}"
    assert await used.claim(subject, 5000, "attempt-1")
    assert await used.claim(subject, 5000, "attempt-1")
    assert not await used.claim(subject, 5000, "attempt-2")


async def test_the_record_lasts_until_its_step_has_left_every_drift_window(
    steps: tuple[UsedSteps, RedisClient],
) -> None:
    """The record expires, and only after the accepted step and all below it are out of any window
    (2 x drift + 2 periods)."""
    used, client = steps
    subject = f"user:{uuid.uuid4()}"
    await used.claim(subject, 42, "a", parameters=TotpParameters(period=30), drift_steps=1)
    ttl_ms = await client.pttl(used.key(subject))
    assert 90_000 < ttl_ms <= 120_000
