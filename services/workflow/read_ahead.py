"""The packages a lane's authentication facts are about, read (and locked) in one go."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from libs.runtime.read_ahead import ByPackage
from services.workflow import repository
from services.workflow.domain import Package
from signgate_contracts import Message


class PackagesAhead(ByPackage[Package]):
    """A lane's read-ahead (``libs.runtime.read_ahead``) of the packages its authentication facts record
    history on, locked for update as recording a fact locks them."""

    def __init__(self, facts: frozenset[type[Message]]) -> None:
        super().__init__()
        self._facts = facts

    async def load(self, connection: asyncpg.Connection, messages: Sequence[Message]) -> None:
        wanted = sorted({m.package_id for m in messages if type(m) in self._facts})  # type: ignore[attr-defined]
        if not wanted:
            return
        found = await repository.select_packages(connection, wanted, for_update=True)
        for package_id in wanted:
            self.remember(package_id, None, found.get(package_id))
