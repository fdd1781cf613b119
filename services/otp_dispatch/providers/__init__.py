"""Delivery providers behind one interface, and the bounded retry every delivery goes through.

A provider gets a `Delivery` (the code included: it is the only place the code leaves this
service) and returns a `Receipt`, or raises `DeliveryFailed` with a reason that never holds
the code. Errors from libraries are reduced to their type and status: their text may echo
what was sent.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol
from uuid import UUID

from libs.runtime.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class Delivery:
    """One code to deliver; ``code`` and ``destination`` stay out of ``repr``."""

    challenge_id: UUID
    channel: str
    destination: str = field(repr=False)
    code: str = field(repr=False)
    text: str = field(repr=False)
    """The message body, which contains the code."""
    subject: str
    purpose: str
    expires_at: datetime
    html: str | None = field(default=None, repr=False)
    """An email's HTML body (beside ``text``), when the locale's templates have one."""


@dataclass(frozen=True)
class Receipt:
    """The provider took the message (`message_id` names it: a message id, a call id)."""

    provider: str
    message_id: str
    awaits_receipt: bool = False
    """Whether it reached the phone is known later, from a delivery receipt (an SMS gateway's);
    False when taking it is all the provider will say."""


class DeliveryFailed(Exception):
    """The provider did not take the message; ``reason`` is safe to publish and log."""

    def __init__(self, reason: str, *, transient: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


class Provider(Protocol):
    name: str

    async def deliver(self, delivery: Delivery) -> Receipt:
        """Hand the message over, or raise DeliveryFailed."""
        ...

    async def aclose(self) -> None:
        """Close what the provider holds open (called once, at shut-down)."""
        ...


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard a delivery is tried: provider calls per code, the first retry's delay (doubling),
    and the time each call is given."""

    attempts: int
    first_delay: float
    timeout: float


async def deliver_with_retries(
    provider: Provider, delivery: Delivery, *, attempts: int, first_delay: float, timeout: float
) -> Receipt:
    """Deliver, retrying transient failures with doubling delays; at most ``attempts`` calls.

    A retry after a timeout may deliver the message twice; that is the same code, and better
    than none. Anything but DeliveryFailed is reduced to its type name.
    """
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            async with asyncio.timeout(timeout):
                return await provider.deliver(delivery)
        except DeliveryFailed as failure:
            error = failure
        except TimeoutError:
            error = DeliveryFailed("timeout", transient=True)
        except Exception as unexpected:  # a provider bug must not leak the code through its text
            error = DeliveryFailed(type(unexpected).__name__, transient=True)
        log.warning(
            "delivery attempt failed",
            provider=provider.name,
            challenge_id=str(delivery.challenge_id),
            attempt=attempt,
            reason=error.reason,
            transient=error.transient,
        )
        if not error.transient or attempt == attempts:
            raise error
        await asyncio.sleep(delay)
        delay *= 2
    raise AssertionError("unreachable")
