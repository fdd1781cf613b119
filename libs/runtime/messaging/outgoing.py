"""Outgoing messages, stamped with the correlation and causation of the message that caused them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

from signgate_contracts import Message, encode


@dataclass(frozen=True)
class Outgoing:
    """A message bound for a registry topic (or, ``verbatim``, a caller's own reply topic)."""

    topic: str
    key: str
    message: Message
    verbatim: bool = False
    """The topic is a caller's `reply_to`, used as given: no deployment prefix."""

    @classmethod
    def reply(cls, topic: str, key: str, message: Message) -> Outgoing:
        return cls(topic, key, message, verbatim=True)

    @classmethod
    def answer(cls, command: Message, replies: str, key: str, message: Message) -> Outgoing:
        """The answer to ``command``: to the caller's ``reply_to`` (the handler has held it to
        `libs.runtime.messaging.replies`' rule), else to the service's own ``replies`` topic."""
        reply_to = getattr(command, "reply_to", None)
        return cls.reply(reply_to, key, message) if reply_to else cls(replies, key, message)

    @property
    def payload(self) -> bytes:
        return encode(self.message)


class Cause(Protocol):
    """What an effect takes from its cause: a message, or the envelope of a record that is none."""

    @property
    def event_id(self) -> uuid.UUID: ...

    @property
    def correlation_id(self) -> uuid.UUID: ...


def caused_by(cause: Cause, effect: Message, *, index: int = 0) -> Message:
    """``effect`` carrying ``cause``'s correlation id, with ``cause`` as its causation.

    The effect's event id is derived from the cause's (and its position among the cause's
    effects), so handling a redelivered message again produces the same ids and consumers
    that dedupe by event id see one message.
    """
    return effect.model_copy(
        update={
            "event_id": uuid.uuid5(cause.event_id, f"{index}:{effect.type}"),
            "correlation_id": cause.correlation_id,
            "causation_id": cause.event_id,
        }
    )
