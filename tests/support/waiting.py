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
