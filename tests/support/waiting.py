"""Waiting for a state no message announces (a projection row), by asking until it holds."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def until(probe: Callable[[], Awaitable[T]], *, timeout: float = 20.0, what: str = "condition") -> T:
    """Ask ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while not (result := await probe()):
                await asyncio.sleep(0.02)  # between two probes, not in place of one
            return result
    except TimeoutError:
        raise AssertionError(f"{what} did not hold within {timeout}s") from None


async def eventually(probe: Callable[[], Awaitable[T]], *, timeout: float = 20.0) -> T:
    """``until``, failing with the probe's last answer (the identity and workflow tests' name)."""
    last: list[T] = []

    async def remembered() -> T:
        last[:] = [await probe()]
        return last[0]

    try:
        return await until(remembered, timeout=timeout)
    except AssertionError:
        raise AssertionError(f"condition not met within {timeout}s; last probe gave {last!r}") from None
