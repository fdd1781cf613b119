"""The identity service's failure counter: one Lua script on real Redis (one server, a cluster) counts and decides locks."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from libs.runtime.settings import ConnectionSettings
from services.identity.failures import FailureCounters
from tests.support.redis import redis_client


@pytest.fixture
async def counters(redis_connections: ConnectionSettings) -> AsyncIterator[FailureCounters]:
    async with redis_client(redis_connections) as client:
        yield FailureCounters(client, f"{redis_connections.redis_prefix}failures-test:", timedelta(days=30))


def name() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


async def test_the_threshold_th_failure_locks_and_starts_a_new_run(counters: FailureCounters) -> None:
    """Failures 1-4 do not lock, the 5th does, and the 6th starts the next run while the total goes on."""
    user = name()
    counts = [await counters.record_failure(user, uuid.uuid4(), threshold=5, hard_after=100) for _ in range(6)]
    assert [c.locks for c in counts] == [False] * 4 + [True, False]
    assert [(c.run, c.total) for c in counts][3:] == [(4, 4), (0, 5), (1, 6)]


async def test_the_cap_of_failures_in_a_row_locks_whatever_the_run(counters: FailureCounters) -> None:
    """With Postgres remembering 98 failures in a row, the second failure after a flush locks (100)."""
    user = name()
    first = await counters.record_failure(user, uuid.uuid4(), threshold=5, hard_after=100, durable_total=98)
    second = await counters.record_failure(user, uuid.uuid4(), threshold=5, hard_after=100, durable_total=99)
    assert (first.total, first.locks) == (99, False)
    assert (second.total, second.locks) == (100, True)


async def test_a_redelivered_attempt_counts_once_and_gets_the_same_answer(counters: FailureCounters) -> None:
    """Counting the same attempt id again changes nothing and repeats the first answer, lock included."""
    user, attempt = name(), uuid.uuid4()
    for _ in range(4):
        await counters.record_failure(user, uuid.uuid4(), threshold=5, hard_after=100)
    first = await counters.record_failure(user, attempt, threshold=5, hard_after=100)
    again = await counters.record_failure(user, attempt, threshold=5, hard_after=100)
    assert first == again and first.locks and first.total == 5


async def test_an_attempts_answer_is_kept_as_json(
    counters: FailureCounters, redis_connections: ConnectionSettings
) -> None:
    """The answer a redelivered attempt gets again is memoised as JSON [run, total, lock], the one
    memo format of every script."""
    user, attempt = name(), uuid.uuid4()
    count = await counters.record_failure(user, attempt, threshold=5, hard_after=100)
    async with redis_client(redis_connections) as client:
        memo = await client.get(counters.answer_key(user, attempt))
    assert memo is not None and json.loads(memo) == [count.run, count.total, int(count.locks)] == [1, 1, 0]


async def test_concurrent_failures_are_each_counted_and_lock_once_per_run(counters: FailureCounters) -> None:
    """Twenty failures at once are twenty counts, and exactly four of them lock (threshold 5)."""
    user = name()
    counts = await asyncio.gather(*(
        counters.record_failure(user, uuid.uuid4(), threshold=5, hard_after=100) for _ in range(20)))
    assert sorted(c.total for c in counts) == list(range(1, 21))
    assert sum(c.locks for c in counts) == 4


async def test_clearing_ends_the_run(counters: FailureCounters) -> None:
    """After a success clears the counter, counting starts from one again."""
    user = name()
    await counters.record_failure(user, uuid.uuid4(), threshold=5, hard_after=100)
    await counters.clear(user)
    assert (await counters.record_failure(user, uuid.uuid4(), threshold=5, hard_after=100)).total == 1


async def test_the_counter_expires_after_the_failure_memory(redis_connections: ConnectionSettings) -> None:
    """The counter's key carries the failure memory as its TTL, set by the script."""
    async with redis_client(redis_connections) as client:
        counters = FailureCounters(client, f"{redis_connections.redis_prefix}failures-test:", timedelta(hours=2))
        user = name()
        await counters.record_failure(user, uuid.uuid4(), threshold=5, hard_after=100)
        assert 7000 < await client.ttl(counters.key(user)) <= 7200
