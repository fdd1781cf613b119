"""A record's writes, undone alone when its use case refuses, at no cost for records that only read.

The records of a lane share one transaction. A use case that refuses (or fails) after writing
must leave nothing behind, so its writes go inside a savepoint; but a savepoint costs a round
trip, and most refusals, and many successes, write nothing. ``SavepointOnWrite`` is the lane's
connection as a use case sees it: it opens the savepoint just before the record's first
statement that is not a plain ``SELECT``.

Every record's savepoint has the same name and none is released: a new savepoint of a name
hides the older ones, so ``ROLLBACK TO`` undoes the newest record's writes and no earlier
record's, and a record that succeeds costs no second round trip. (A released savepoint is a
subtransaction all the same; the lane's record limit keeps their number small.)
"""

from __future__ import annotations

from typing import Any

import asyncpg

SAVEPOINT = "signgate_record"


def reads_only(query: str) -> bool:
    """Whether ``query`` is a plain SELECT (a CTE may write, so it counts as a write)."""
    return query.lstrip()[:6].upper() == "SELECT"


class SavepointOnWrite:
    """Wraps a connection inside a transaction for the handling of one record."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection
        self.wrote = False
        """Whether the record has written (and so opened its savepoint)."""

    async def _before(self, query: str) -> None:
        if not self.wrote and not reads_only(query):
            await self._connection.execute(f"SAVEPOINT {SAVEPOINT}")
            self.wrote = True

    async def execute(self, query: str, *args: Any, **kwargs: Any) -> str:
        await self._before(query)
        return await self._connection.execute(query, *args, **kwargs)

    async def executemany(self, query: str, args: Any, **kwargs: Any) -> None:
        await self._before(query)
        return await self._connection.executemany(query, args, **kwargs)

    async def fetch(self, query: str, *args: Any, **kwargs: Any) -> list[asyncpg.Record]:
        await self._before(query)
        return await self._connection.fetch(query, *args, **kwargs)

    async def fetchrow(self, query: str, *args: Any, **kwargs: Any) -> asyncpg.Record | None:
        await self._before(query)
        return await self._connection.fetchrow(query, *args, **kwargs)

    async def fetchval(self, query: str, *args: Any, **kwargs: Any) -> Any:
        await self._before(query)
        return await self._connection.fetchval(query, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name in {"transaction", "cursor", "copy_records_to_table", "copy_to_table", "prepare"}:
            raise AttributeError(f"{name} is not available to a use case inside a lane")
        return getattr(self._connection, name)

    async def rollback(self) -> None:
        """Undo the record's writes, if it made any."""
        if self.wrote:
            await self._connection.execute(f"ROLLBACK TO SAVEPOINT {SAVEPOINT}")
