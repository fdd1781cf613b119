"""Messages of the workflow service: packages, recipients and their authentication settings."""

from __future__ import annotations

from signgate_contracts.envelope import Command, Event
from signgate_contracts.rejection import CommandRejected

COMMANDS: tuple[type[Command], ...] = ()
EVENTS: tuple[type[Event], ...] = (CommandRejected,)
