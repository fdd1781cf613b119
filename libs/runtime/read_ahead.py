"""What a lane reads at once for all its records, before handling them one by one.

A service that reads ahead gives its ``ServiceDefinition`` a ``read_ahead`` factory; each lane
transaction makes one, lets it ``load`` what the lane's messages will look up (one query instead
of one per record), and hands it to every handler as ``Scope.read_ahead``. The repository consults it
before querying for itself. What was read for a package stays valid until a record about that
package writes: the lane then calls ``forget`` with that record's message. (Records about one
package are handled in one lane, in order; no record writes another package's state.)
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, Generic, Protocol, TypeVar

import asyncpg

from signgate_contracts import Message

V = TypeVar("V")


class ReadAhead(Protocol):
    async def load(self, connection: asyncpg.Connection, messages: Sequence[Message]) -> None: ...

    def forget(self, message: Message) -> None: ...


class ByPackage(Generic[V]):
    """Read-ahead entries filed under the package they belong to; ``None`` records a look-up that
    found nothing."""

    def __init__(self) -> None:
        self._known: dict[str, dict[Hashable, V | None]] = {}

    def remember(self, package_id: str, key: Hashable, value: V | None) -> None:
        self._known.setdefault(package_id, {})[key] = value

    def recall(self, package_id: str, key: Hashable) -> tuple[bool, V | None]:
        """(whether it was read ahead, what was found)."""
        known = self._known.get(package_id, {})
        return key in known, known.get(key)

    def forget(self, message: Message) -> None:
        """A record wrote: what was read for its package may have changed (for a message about no
        one package, anything may have)."""
        package_id: Any = getattr(message, "package_id", None)
        if isinstance(package_id, str):
            self._known.pop(package_id, None)
        else:
            self._known.clear()
