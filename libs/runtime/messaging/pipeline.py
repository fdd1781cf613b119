"""The consume pipeline: what happens to a record of a fetched batch when handling it fails.

- a domain refusal            -> `command.rejected` to the caller, ack;
- an undecodable record       -> `<topic>.dlq` with the reason (and a rejection if the caller
                                 can be told), ack;
- an invalid command body     -> `command.rejected` 400 naming the field, ack;
- an internal record without
  its writer's signature      -> `<topic>.dlq` as unauthenticated, no effect, ack;
- a transient fault           -> bounded retries with backoff; if it lasts, the error escapes;
- any other error             -> the DLQ and a 500 rejection, ack.

The partition keeps moving past bad records. A lasting transient fault (Redis or Postgres
away), or a dead letter that cannot be written, lets the error escape: the subscriber's
NACK_ON_ERROR policy seeks back and the batch is delivered again (records already handled are
recognised by event id), so an outage pauses consumption instead of dead-lettering good
commands, and nothing is skipped. A record that fails transiently while its dependencies
answer is delivered again at most ``max_deliveries`` times, then dead-lettered.

Dead letters and rejections are returned as `Publication`s, not sent: the handler queues them
in the outbox in the transaction that claims the record's event id, so each is written once.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import UUID

import structlog
from aiokafka.structs import ConsumerRecord
from faststream import BaseMiddleware, StreamMessage
from pydantic import ValidationError

from libs.runtime.errors import Refusal, is_transient
from libs.runtime.logging import about, get_logger
from libs.runtime.messaging.dead_letters import dead_letter_record
from libs.runtime.messaging.outgoing import Outgoing, caused_by
from libs.runtime.messaging.publisher import Publication, Publisher, dead_letter_headers
from libs.runtime.observability import Metrics
from libs.runtime.settings import ConnectionSettings
from libs.security.record_signatures import Unauthenticated
from signgate_contracts import CommandRejected, Topic, UndecodableMessage, UnknownMessageType
from signgate_contracts.codec import read_object
from signgate_contracts.envelope import Message
from signgate_contracts.rejection import RejectionStatus
from signgate_contracts.text import printable

log = get_logger(__name__)

INTERNAL_ERROR = "An internal server error occurred while processing the request"


T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and how patiently, a transient fault is retried before dead-lettering."""

    attempts: int = 4
    first_delay: float = 0.1
    factor: float = 2.0

    def delays(self) -> list[float]:
        return [self.first_delay * self.factor**n for n in range(self.attempts - 1)]


@dataclass(frozen=True)
class Envelope:
    """What can be read of a record's envelope even when the record itself is invalid."""

    event_id: UUID
    correlation_id: UUID
    type: str | None
    document: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    """The record parsed as a signgate message's JSON object, for decoding; None if it is not one."""


@dataclass(frozen=True)
class Batch:
    """A fetched batch: its records, and their envelopes (read once, for the logs and the executor)."""

    records: tuple[ConsumerRecord, ...]
    envelopes: tuple[Envelope, ...]


CURRENT_BATCH: ContextVar[Batch] = ContextVar("signgate_current_batch")
"""The batch being handled, for the subscriber function: cheaper than FastStream's ``Context``
injection, which resolves in a worker thread."""


class Pipeline:
    """Maps the outcome of handling one record to retries, rejections and dead letters."""

    def __init__(
        self,
        *,
        service: str,
        settings: ConnectionSettings,
        publisher: Publisher,
        outcome_topics: dict[str, Topic],
        retry: RetryPolicy = RetryPolicy(),
        metrics: Metrics | None = None,
        rejection_key: Callable[[str], str] | None = None,
    ) -> None:
        self.service = service
        self.settings = settings
        self.publisher = publisher
        self.outcome_topics = outcome_topics
        """Registry name of a command topic -> the topic its rejections go to."""
        self.retry = retry
        self.metrics = metrics
        self.rejection_key = rejection_key
        """The command's record key -> its rejection's; None: the same key."""

    def bound(
        self, record: ConsumerRecord, envelope: Envelope
    ) -> contextlib.AbstractContextManager[None]:
        """Log lines inside the block name the record's ids; after it, what was bound before."""
        return structlog.contextvars.bound_contextvars(
            service=self.service, **record_log_fields(record, envelope)
        )

    async def run(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """``attempt()``, retried with backoff while it fails transiently; the last error escapes."""
        delays = self.retry.delays()
        while True:
            try:
                return await attempt()
            except Exception as error:
                if isinstance(error, Refusal) or not is_transient(error) or not delays:
                    raise
                delay = delays.pop(0)
                log.warning(
                    "transient failure; retrying", error=type(error).__name__, retry_in=delay
                )
                await asyncio.sleep(delay)

    def settle(
        self, record: ConsumerRecord, envelope: Envelope, error: Exception
    ) -> list[Publication]:
        """What settles a record whose handling failed: the dead letter to keep and the rejection
        the caller is owed (either may be absent)."""
        match error:
            case Refusal() as refusal:
                log.info("command refused", status=refusal.status, rejection_code=refusal.code)
                return self._reject(
                    record,
                    envelope,
                    refusal.status,
                    refusal.code,
                    refusal.message,
                    refusal.field,
                    refusal.retry_after_seconds,
                )
            case Unauthenticated():
                log.warning("unauthenticated record dead-lettered", reason=str(error))
                if self.metrics:
                    self.metrics.unauthenticated.labels(self.service, record.topic).inc()
                return [self._dead_letter(record, f"unauthenticated: {error}")]
            case UndecodableMessage():
                log.warning("undecodable record dead-lettered", reason=str(error))
                dead = self._dead_letter(record, f"undecodable: {error}")
                if envelope.type is None:
                    return [dead]
                return [
                    dead,
                    *self._reject(record, envelope, 400, "undecodable_message", str(error)),
                ]
            case UnknownMessageType():
                log.warning("unknown message type dead-lettered", reason=str(error))
                dead = self._dead_letter(record, f"unknown type: {error}")
                return [
                    dead,
                    *self._reject(record, envelope, 400, "unknown_message_type", str(error)),
                ]
            case ValidationError():
                field, text = describe_validation_error(error, envelope.type)
                if self._answers(record):
                    log.info("invalid command rejected", field=field)
                    return self._reject(record, envelope, 400, "invalid_command", text, field)
                log.warning("invalid record dead-lettered", field=field)
                return [self._dead_letter(record, f"invalid: {text}")]
            case DeliveriesExhausted():
                log.error(
                    "a record kept failing while its dependencies answered; dead-lettered",
                    deliveries=error.deliveries,
                    error=describe_error(error.last),
                )
                return [
                    self._dead_letter(record, str(error)),
                    *self._reject(record, envelope, 500, "internal_error", INTERNAL_ERROR),
                ]
            case _:
                log.error("handling failed; dead-lettered", exc_info=error)
                return [
                    self._dead_letter(record, f"failed: {describe_error(error)}"),
                    *self._reject(record, envelope, 500, "internal_error", INTERNAL_ERROR),
                ]

    def _answers(self, record: ConsumerRecord) -> bool:
        return self.settings.registry_name(record.topic) in self.outcome_topics

    def _reject(
        self,
        record: ConsumerRecord,
        envelope: Envelope,
        status: RejectionStatus,
        code: str,
        text: str,
        field: str | None = None,
        retry_after_seconds: int | None = None,
    ) -> list[Publication]:
        registry_name = self.settings.registry_name(record.topic)
        outcome_topic = self.outcome_topics.get(registry_name)
        if outcome_topic is None:
            if status != 500:  # a refused event is a defect; the DLQ keeps it visible
                return [self._dead_letter(record, f"refused ({status} {code}): {text}")]
            return []
        rejection = caused_by(
            envelope,
            CommandRejected(
                status=status,
                code=code,
                message=printable(text),
                field=printable(field),
                command_type=printable(envelope.type),
                command_event_id=envelope.event_id,
                retry_after_seconds=retry_after_seconds,
            ),
        )
        key = record.key.decode(errors="replace") if record.key else str(envelope.correlation_id)
        if self.rejection_key is not None:
            key = self.rejection_key(key)
        if self.metrics:
            self.metrics.rejected.labels(self.service, code).inc()
        return [self.publisher.publication(Outgoing(outcome_topic.name, printable(key), rejection))]

    def _dead_letter(self, record: ConsumerRecord, reason: str) -> Publication:
        return Publication(
            f"{record.topic}.dlq",
            record.key,
            dead_letter_record(record, service=self.service, reason=printable(reason)),
            dead_letter_headers(reason, read_envelope(record).correlation_id),
        )


class DeliveriesExhausted(Exception):
    """A record failed transiently on every one of its deliveries while its dependencies answered:
    the fault is the record's, and it is dead-lettered so that its partition moves on."""

    def __init__(self, deliveries: int, last: BaseException) -> None:
        super().__init__(f"failed after {deliveries} deliveries: {describe_error(last)}")
        self.deliveries = deliveries
        self.last = last


def read_envelope(record: ConsumerRecord) -> Envelope:
    """Read ids and type leniently; stand-ins derived from the record's position fill the gaps,
    so a redelivered record yields the same ids."""
    try:
        document: dict[str, Any] | None = read_object(record.value or b"")
    except UndecodableMessage:
        document = None
    found = document or {}
    event_id, correlation_id = _uuid(found.get("event_id")), _uuid(found.get("correlation_id"))
    if event_id is None or correlation_id is None:
        position = position_id(record)
        event_id, correlation_id = event_id or position, correlation_id or position
    return Envelope(
        event_id=event_id,
        correlation_id=correlation_id,
        type=found.get("type") if isinstance(found.get("type"), str) else None,
        document=document,
    )


def position_id(record: ConsumerRecord) -> UUID:
    """An id derived from the record's place on its topic: the same on every delivery."""
    return uuid.uuid5(
        uuid.NAMESPACE_URL, f"kafka:{record.topic}/{record.partition}/{record.offset}"
    )


def _uuid(value: Any) -> UUID | None:
    try:
        return UUID(str(value)) if value is not None else None
    except ValueError:
        return None


def describe_validation_error(error: ValidationError, type_: str | None) -> tuple[str | None, str]:
    """The first offending field (dotted path, without the union tag) and a message without input values."""
    first = error.errors(include_input=False, include_url=False)[0]
    location = [str(part) for part in first["loc"]]
    if location and location[0] == type_:  # the discriminated union names the member first
        location = location[1:]
    field = ".".join(location) or None
    return field, f"{field}: {first['msg']}" if field else first["msg"]


def describe_error(error: BaseException) -> str:
    """A one-line reason that names the error but not the values it was raised with."""
    return type(error).__name__


def record_log_fields(record: ConsumerRecord, envelope: Envelope) -> dict[str, Any]:
    """What names a record on the log lines written while it is handled."""
    return {
        "correlation_id": str(envelope.correlation_id),
        "event_id": str(envelope.event_id),
        "message_type": envelope.type,
        "topic": record.topic,
    }


def batch_log_fields(service: str, batch: Batch) -> dict[str, Any]:
    """What names a batch on the lines about it as a whole: its one record's ids, or all its
    records' correlation ids (so a search for one finds the lines of its batch too)."""
    if len(batch.records) == 1:
        return {"service": service, **record_log_fields(batch.records[0], batch.envelopes[0])}
    return {
        "service": service,
        "correlation_ids": list(dict.fromkeys(str(e.correlation_id) for e in batch.envelopes)),
        "records": len(batch.records),
    }


def batch_middleware(service: str) -> type[BaseMiddleware]:
    """The FastStream middleware that hands each fetched batch to the subscriber, and names it on
    every line written while it is handled: FastStream's own ("Received", "Processed", a failure),
    the libraries', and ours that name no record of their own."""

    class BatchMiddleware(BaseMiddleware):
        fields: dict[str, Any] | None = None
        entered: contextlib.ExitStack | None = None

        async def on_receive(self) -> None:
            # Entered before FastStream writes "Received", left before it writes "Processed".
            raw = self.msg
            records = raw if isinstance(raw, tuple) else (raw,) if raw is not None else ()
            if not records:  # a publish, not a batch
                return
            batch = Batch(records, tuple(read_envelope(r) for r in records))
            self.fields = batch_log_fields(service, batch)
            self.entered = contextlib.ExitStack()
            self.entered.enter_context(about(self.fields))
            token = CURRENT_BATCH.set(batch)
            self.entered.callback(CURRENT_BATCH.reset, token)

        async def consume_scope(
            self, call_next: Callable[[Any], Awaitable[Any]], msg: StreamMessage[Any]
        ) -> Any:
            # FastStream writes "Processed" (and a batch's failure) with its log context as the
            # line's extras, once this middleware has been left: that context names the batch too.
            log_context = self.context.get_local("log_context")
            if isinstance(log_context, dict) and self.fields:
                log_context.update(self.fields)
            return await call_next(msg)

        async def after_processed(self, *_exc_info: Any) -> bool | None:
            if self.entered is not None:
                self.entered.close()
            return False

    return BatchMiddleware


__all__ = [
    "CURRENT_BATCH",
    "Batch",
    "DeliveriesExhausted",
    "Envelope",
    "Message",
    "Pipeline",
    "RetryPolicy",
    "batch_middleware",
    "read_envelope",
]
