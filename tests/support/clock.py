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
        self._frozen: datetime | None = None

    def __call__(self) -> datetime:
        if self._frozen is not None:
            return self._frozen
        self.offset += self.tick
        return (self._fixed or datetime.now(UTC)) + self.offset

    def advance(self, by: timedelta) -> None:
        self.offset += by
        if self._frozen is not None:
            self._frozen += by

    def freeze(self) -> datetime:
        """Stand still at the time it shows now (until `reset`), for what must all happen at one
        instant however long the machine takes; returns that time."""
        self._frozen = self()
        return self._frozen

    def reset(self) -> None:
        """Back to the wall clock (for when a test that moved it is done: tokens issued on a moved
        clock are not yet valid for services on the wall clock)."""
        self.offset = timedelta(0)
        self.tick = timedelta(0)
        self._frozen = None
