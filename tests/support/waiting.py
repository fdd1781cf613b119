"""Waiting for a condition that another process makes true, with a deadline instead of a sleep."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T]], *, timeout: float = 20.0,
                     interval: float = 0.05) -> T:
    """Call ``probe`` until it returns a truthy value; fail with the last value at the deadline."""
    last: T | None = None
    try:
        async with asyncio.timeout(timeout):
            while not (last := await probe()):
                await asyncio.sleep(interval)
    except TimeoutError:
        raise AssertionError(f"condition not met within {timeout}s; last probe gave {last!r}") from None
    return last
