"""A clock tests can move forward, injected where code asks for the time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class MovableClock:
    """Wall-clock time plus an offset that only grows until reset; call it like ``datetime.now(UTC)``."""

    def __init__(self, start: datetime | None = None) -> None:
        self._fixed = start
        self.offset = timedelta(0)
        self.tick = timedelta(0)
        """Moved forward by every reading: each caller lives ``tick`` after the previous one."""

    def __call__(self) -> datetime:
        self.offset += self.tick
        return (self._fixed or datetime.now(UTC)) + self.offset

    def advance(self, by: timedelta) -> None:
        self.offset += by

    def reset(self) -> None:
        """Back to the wall clock (for when a test that moved it is done: tokens issued on a moved
        clock are not yet valid for services on the wall clock)."""
        self.offset = timedelta(0)
        self.tick = timedelta(0)
