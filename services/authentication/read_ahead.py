"""The recipients a lane's commands will look up, read in one query before the lane handles them."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from services.authentication import repository as db
from signgate_contracts import Message
from signgate_contracts import authentication as auth

RECIPIENT_COMMANDS = (
    auth.OpenDocumentWithPassword, auth.RequestDocumentOtp, auth.VerifyDocumentOtp,
    auth.GetRecipientAuthenticationStatus,
)
"""Commands that name one recipient by package and order (a lookup by email is not read ahead)."""


class RecipientsAhead:
    """A lane's read-ahead of recipients (see ``libs.service.ReadAhead``), by package and order."""

    def __init__(self) -> None:
        self._known: dict[str, dict[int, db.StoredRecipient | None]] = {}
        """package id -> order -> the recipient, or None for one that does not exist."""

    async def load(self, connection: asyncpg.Connection, messages: Sequence[Message]) -> None:
        wanted = {(m.package_id, m.order) for m in messages if isinstance(m, RECIPIENT_COMMANDS) and m.order is not None}
        if not wanted:
            return
        found = await db.select_recipients(connection, wanted)
        for package_id, order in wanted:
            self._known.setdefault(package_id, {})[order] = found.get((package_id, order))

    def recipient(self, package_id: str, order: int) -> tuple[bool, db.StoredRecipient | None]:
        """(whether it was read ahead, the recipient it found)."""
        known = self._known.get(package_id, {})
        return order in known, known.get(order)

    def forget(self, message: Message) -> None:
        """A record wrote: what was read for its package may have changed (for a message about no
        one package, anything may have)."""
        package_id = getattr(message, "package_id", None)
        if isinstance(package_id, str):
            self._known.pop(package_id, None)
        else:
            self._known.clear()
