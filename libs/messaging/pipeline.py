"""The consume pipeline: one middleware that decides what happens when handling a record fails.

- a domain refusal            -> `command.rejected` to the caller, ack;
- an undecodable record       -> `<topic>.dlq` with the reason (and a rejection if the caller
                                 can be told), ack;
- an invalid command body     -> `command.rejected` 400 naming the field, ack;
- a transient fault           -> bounded retries with backoff, then the DLQ and a 500 rejection;
- any other error             -> the DLQ and a 500 rejection, ack.

The partition keeps moving in every case. Only when the DLQ or the rejection cannot be
written does the error escape, and the subscriber's NACK_ON_ERROR policy seeks back so the
record is delivered again: nothing is skipped.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import structlog
from aiokafka.structs import ConsumerRecord
from faststream import BaseMiddleware
from pydantic import ValidationError

from libs.errors import Refusal, is_transient
from libs.logging import get_logger
from libs.messaging.dead_letters import dead_letter_record
from libs.messaging.outgoing import Outgoing, caused_by
from libs.messaging.publisher import Publisher
from libs.observability import Metrics, Progress
from libs.settings import ConnectionSettings
from signgate_contracts import CommandRejected, Topic, UndecodableMessage, UnknownMessageType
from signgate_contracts.codec import read_object
from signgate_contracts.envelope import Message

log = get_logger(__name__)

INTERNAL_ERROR = "An internal server error occurred while processing the request"

CURRENT_RECORD: ContextVar[ConsumerRecord] = ContextVar("signgate_current_record")
"""The record the pipeline is handling, for the subscriber function: cheaper than FastStream's
``Context`` injection, which resolves each message in a worker thread."""


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


RecordRejection = Callable[[Envelope, Outgoing], Awaitable[None]]
"""Deliver a rejection; Postgres-backed services record it with the processed message."""


class Pipeline:
    """Maps the outcome of handling one record to acks, rejections and dead letters."""

    def __init__(
        self,
        *,
        service: str,
        settings: ConnectionSettings,
        publisher: Publisher,
        outcome_topics: dict[str, Topic],
        retry: RetryPolicy = RetryPolicy(),
        metrics: Metrics | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.service = service
        self.settings = settings
        self.publisher = publisher
        self.outcome_topics = outcome_topics
        """Registry name of a command topic -> the topic its rejections go to."""
        self.retry = retry
        self.metrics = metrics
        self.progress = progress
        self.record_rejection: RecordRejection = self._publish_rejection

    async def consume(self, call_next: Callable[[Any], Awaitable[Any]], message: Any) -> Any:
        record: ConsumerRecord = message.raw_message
        current = CURRENT_RECORD.set(record)
        envelope = read_envelope(record)
        structlog.contextvars.bind_contextvars(
            correlation_id=str(envelope.correlation_id),
            event_id=str(envelope.event_id),
            message_type=envelope.type,
            topic=record.topic,
        )
        try:
            return await self._handle(call_next, message, record, envelope)
        finally:
            CURRENT_RECORD.reset(current)
            structlog.contextvars.clear_contextvars()
            if self.progress:
                self.progress.handled()

    async def _handle(self, call_next, message, record: ConsumerRecord, envelope: Envelope) -> Any:
        delays = self.retry.delays()
        while True:
            try:
                return await call_next(message)
            except Refusal as refusal:
                log.info("command refused", status=refusal.status, rejection_code=refusal.code)
                await self._reject(record, envelope, refusal.status, refusal.code, refusal.message,
                                   refusal.field, refusal.retry_after_seconds)
            except UndecodableMessage as error:
                log.warning("undecodable record dead-lettered", reason=str(error))
                await self._dead_letter(record, f"undecodable: {error}")
                if envelope.type is not None:
                    await self._reject(record, envelope, 400, "undecodable_message", str(error))
            except UnknownMessageType as error:
                log.warning("unknown message type dead-lettered", reason=str(error))
                await self._dead_letter(record, f"unknown type: {error}")
                await self._reject(record, envelope, 400, "unknown_message_type", str(error))
            except ValidationError as error:
                field, text = describe_validation_error(error, envelope.type)
                if self._answers(record):
                    log.info("invalid command rejected", field=field)
                    await self._reject(record, envelope, 400, "invalid_command", text, field)
                else:
                    log.warning("invalid record dead-lettered", field=field)
                    await self._dead_letter(record, f"invalid: {text}")
            except Exception as error:
                if is_transient(error) and delays:
                    delay = delays.pop(0)
                    log.warning("transient failure; retrying", error=type(error).__name__, retry_in=delay)
                    await asyncio.sleep(delay)
                    continue
                log.exception("handling failed; dead-lettered")
                await self._dead_letter(record, f"failed: {describe_error(error)}")
                await self._reject(record, envelope, 500, "internal_error", INTERNAL_ERROR)
            return None

    def _answers(self, record: ConsumerRecord) -> bool:
        return self.settings.registry_name(record.topic) in self.outcome_topics

    async def _reject(
        self,
        record: ConsumerRecord,
        envelope: Envelope,
        status: int,
        code: str,
        text: str,
        field: str | None = None,
        retry_after_seconds: int | None = None,
    ) -> None:
        registry_name = self.settings.registry_name(record.topic)
        outcome_topic = self.outcome_topics.get(registry_name)
        if outcome_topic is None:
            if status != 500:  # a refused event is a defect; the DLQ keeps it visible
                await self._dead_letter(record, f"refused ({status} {code}): {text}")
            return
        rejection = caused_by(
            envelope,
            CommandRejected(
                status=status, code=code, message=text, field=field,
                command_type=envelope.type, command_event_id=envelope.event_id,
                retry_after_seconds=retry_after_seconds,
            ),
        )
        key = record.key.decode(errors="replace") if record.key else str(envelope.correlation_id)
        if self.metrics:
            self.metrics.rejected.labels(self.service, code).inc()
        await self.record_rejection(envelope, Outgoing(outcome_topic.name, key, rejection))

    async def _publish_rejection(self, _envelope: Envelope, outgoing: Outgoing) -> None:
        await self.publisher.publish(outgoing)

    async def _dead_letter(self, record: ConsumerRecord, reason: str) -> None:
        if self.metrics:
            self.metrics.dead_lettered.labels(self.service, record.topic).inc()
        await self.publisher.send(
            f"{record.topic}.dlq",
            record.key,
            dead_letter_record(record, service=self.service, reason=reason),
            {"content-type": "application/json", "reason": reason[:200]},
        )


def read_envelope(record: ConsumerRecord) -> Envelope:
    """Read ids and type leniently; stand-ins derived from the record's position fill the gaps,
    so a redelivered record yields the same ids."""
    position = uuid.uuid5(uuid.NAMESPACE_URL, f"kafka:{record.topic}/{record.partition}/{record.offset}")
    try:
        document = read_object(record.value or b"")
    except UndecodableMessage:
        document = {}
    return Envelope(
        event_id=_uuid(document.get("event_id")) or position,
        correlation_id=_uuid(document.get("correlation_id")) or position,
        type=document.get("type") if isinstance(document.get("type"), str) else None,
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


def pipeline_middleware(pipeline: Pipeline) -> type[BaseMiddleware]:
    """The FastStream middleware class that runs every consumed record through ``pipeline``."""

    class PipelineMiddleware(BaseMiddleware):
        async def consume_scope(self, call_next, msg):  # type: ignore[override]
            return await pipeline.consume(call_next, msg)

    return PipelineMiddleware


__all__ = ["CURRENT_RECORD", "Envelope", "Message", "Pipeline", "RetryPolicy", "pipeline_middleware", "read_envelope"]
