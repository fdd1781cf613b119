"""Messages of the identity service: API users, their accounts, and their authentication."""

from __future__ import annotations

from signgate_contracts.envelope import Command, Event
from signgate_contracts.rejection import CommandRejected

COMMANDS: tuple[type[Command], ...] = ()
EVENTS: tuple[type[Event], ...] = (CommandRejected,)
