"""Messages between the authentication and OTP-dispatch services."""

from __future__ import annotations

from signgate_contracts.envelope import Command, Event
from signgate_contracts.rejection import CommandRejected

REQUESTS: tuple[type[Command], ...] = ()
EVENTS: tuple[type[Event], ...] = (CommandRejected,)
