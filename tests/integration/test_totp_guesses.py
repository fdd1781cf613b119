"""The per-subject ceiling of wrong TOTP codes (libs/security/totp.py `GuessCeiling`,
totp_guess.lua) on real Redis, one server and a cluster: at most the ceiling's wrong codes per
window, whoever submits them and however many at once; right codes take no place under it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from libs.runtime.redis_client import RedisClient
from libs.runtime.settings import ConnectionSettings
from libs.security.totp import GuessCeiling, TotpGuessesExhausted, TotpSettings
from tests.support.redis import redis_client

SETTINGS = TotpSettings(guess_ceiling=10, guess_window_seconds=900)
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


@pytest.fixture
async def ceiling(
    redis_connections: ConnectionSettings,
) -> AsyncIterator[tuple[GuessCeiling, RedisClient]]:
    async with redis_client(redis_connections) as client:
        prefix = f"{redis_connections.redis_prefix}guess-{uuid.uuid4().hex[:8]}:"
        yield GuessCeiling(client, prefix, SETTINGS), client


def subject() -> str:
    return f"user:{uuid.uuid4()}"


async def test_the_eleventh_wrong_code_is_refused_until_the_first_leaves_the_window(
    ceiling: tuple[GuessCeiling, RedisClient],
) -> None:
    """Ten wrong codes, a minute apart, are admitted; the eleventh is refused with the seconds until
    the first leaves the 15-minute window (6 minutes later), and then one more is admitted."""
    guesses, _ = ceiling
    user = subject()
    admitted = [
        await guesses.retry_after(user, f"a{n}", NOW + timedelta(minutes=n), wrong=True)
        for n in range(10)
    ]
    refused = await guesses.retry_after(user, "a10", NOW + timedelta(minutes=9), wrong=True)
    later = await guesses.retry_after(
        user, "a11", NOW + timedelta(minutes=15, seconds=1), wrong=True
    )

    assert admitted == [None] * 10
    assert refused == 6 * 60
    assert later is None


async def test_past_the_ceiling_a_right_code_is_refused_too_and_counts_nothing(
    ceiling: tuple[GuessCeiling, RedisClient],
) -> None:
    """Right codes are admitted without taking a place (a hundred of them leave room for ten wrong
    ones); past the ceiling a right code, or one not compared, gets the same refusal as a wrong one;
    another subject is unaffected."""
    guesses, client = ceiling
    user, other = subject(), subject()
    right = [await guesses.retry_after(user, f"r{n}", NOW, wrong=False) for n in range(100)]
    wrong = [await guesses.retry_after(user, f"w{n}", NOW, wrong=True) for n in range(10)]

    with pytest.raises(TotpGuessesExhausted) as refused:
        await guesses.admit(user, "right-after", NOW, wrong=False)
    assert right == [None] * 100 and wrong == [None] * 10
    assert (refused.value.status, refused.value.code) == (429, "totp_guesses_exhausted")
    assert refused.value.retry_after_seconds == 900
    assert await client.zcard(guesses.key(user)) == 10
    assert await guesses.retry_after(other, "o1", NOW, wrong=True) is None


async def test_the_same_attempt_delivered_again_is_admitted_again_and_counted_once(
    ceiling: tuple[GuessCeiling, RedisClient],
) -> None:
    """A wrong code's command delivered again (after a crash) is admitted again even at the ceiling,
    and counted once."""
    guesses, client = ceiling
    user = subject()
    for n in range(10):
        assert await guesses.retry_after(user, f"a{n}", NOW, wrong=True) is None
    again = await guesses.retry_after(user, "a3", NOW, wrong=True)

    assert again is None
    assert await client.zcard(guesses.key(user)) == 10


async def test_a_thousand_wrong_codes_at_once_get_exactly_ten_admitted(
    ceiling: tuple[GuessCeiling, RedisClient],
) -> None:
    """1,000 wrong codes for one subject submitted at once (as many packages and logins would):
    exactly the ceiling's ten are admitted; every other is refused."""
    guesses, _ = ceiling
    user = subject()
    in_flight = asyncio.Semaphore(100)

    async def guess(n: int) -> int | None:
        async with in_flight:
            return await guesses.retry_after(user, f"attempt-{n}", NOW, wrong=True)

    results = await asyncio.gather(*(guess(n) for n in range(1000)))
    assert results.count(None) == 10
    assert all(r == 900 for r in results if r is not None)


async def test_the_record_lasts_the_window_after_the_last_wrong_code(
    ceiling: tuple[GuessCeiling, RedisClient],
) -> None:
    """The subject's key expires one window after its last wrong code, and lives in the subject's
    hash-tagged family beside its last step."""
    guesses, client = ceiling
    user = subject()
    await guesses.retry_after(user, "a", NOW, wrong=True)
    ttl_ms = await client.pttl(guesses.key(user))
    assert 890_000 < ttl_ms <= 900_000
    assert guesses.key(user).endswith(":guesses") and ":totp:{" in guesses.key(user)
