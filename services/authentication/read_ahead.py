"""The recipients a lane's commands will look up, read in one query before the lane handles them."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from libs.runtime.read_ahead import ByPackage
from services.authentication import repository as db
from signgate_contracts import Message
from signgate_contracts import authentication as auth

RECIPIENT_COMMANDS = (
    auth.OpenDocumentWithPassword,
    auth.RequestDocumentOtp,
    auth.VerifyDocumentOtp,
    auth.GetRecipientAuthenticationStatus,
)
"""Commands that name one recipient by package and order (a lookup by email is not read ahead)."""


class RecipientsAhead(ByPackage[db.StoredRecipient]):
    """A lane's read-ahead (``libs.runtime.read_ahead``) of recipients, by package and order."""

    async def load(self, connection: asyncpg.Connection, messages: Sequence[Message]) -> None:
        wanted = {
            (m.package_id, m.order)
            for m in messages
            if isinstance(m, RECIPIENT_COMMANDS) and m.order is not None
        }
        if not wanted:
            return
        found = await db.select_recipients(connection, wanted)
        for package_id, order in wanted:
            self.remember(package_id, order, found.get((package_id, order)))
