"""The batch executor: a fetched batch split into lanes by key, each lane one Postgres transaction,
each record settled alone when it fails (dead letter, rejection), its effects queued in the outbox."""

from __future__ import annotations

import asyncio
import collections
import heapq
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any
from uuid import UUID

import asyncpg
from aiokafka.structs import ConsumerRecord

from libs.runtime.definition import Resources, Scope, ServiceDefinition
from libs.runtime.errors import is_transient
from libs.runtime.logging import get_logger
from libs.runtime.messaging.outbox import insert_outbox_records
from libs.runtime.messaging.outgoing import Outgoing, caused_by
from libs.runtime.messaging.pipeline import (
    DeliveriesExhausted,
    Envelope,
    Pipeline,
    position_id,
    read_envelope,
)
from libs.runtime.messaging.processed import claim_processed_messages
from libs.runtime.messaging.publisher import Publication
from libs.runtime.messaging.replies import ReplyRule
from libs.runtime.messaging.savepoint import SavepointOnWrite
from libs.runtime.observability import UNKNOWN_TYPE
from libs.runtime.postgres import ping
from libs.runtime.read_ahead import ReadAhead
from libs.runtime.redis_client import ping as redis_ping
from libs.security.record_signatures import (
    RecordVerifier,
    Unauthenticated,
)
from signgate_contracts import Message, UnknownMessageType, decode
from signgate_contracts.codec import decode_object
from signgate_contracts.topics import TOPICS, TopicKind

log = get_logger(__name__)


@dataclass
class DecodedRecord:
    """One record of a batch, decoded as far as it could be."""

    record: ConsumerRecord
    envelope: Envelope
    message: Message | None = None
    error: Exception | None = None
    """Why the record could not be decoded; it is settled (dead letter, rejection), not handled."""

    @property
    def event_id(self) -> UUID:
        return self.message.event_id if self.message is not None else self.envelope.event_id


TRANSACTION_RECORDS = 48
"""Most records in one lane transaction: each writing record's savepoint is a subtransaction,
and past 64 of them Postgres overflows its subtransaction cache, which slows every session."""

DELIVERIES_REMEMBERED = 10_000
"""Records whose failed deliveries are counted at once (the oldest are forgotten first)."""


class LaneAborted(Exception):
    """The lane's transaction cannot go on (its connection broke, or Postgres picked it as a
    deadlock victim): the batch is delivered again, and records already handled are skipped."""


class TransactionAborted(Exception):
    """A record's statement failed outside its savepoint, so Postgres aborted the lane's transaction:
    the lane's records are handled again, each in a transaction of its own."""


class BatchExecutor:
    """Handles a fetched batch: its records split into lanes by key, each lane one transaction.

    In a lane every record claims its event id (one statement for the lane), what the records will
    look up is read at once (if the service reads ahead), and each record runs its handler with
    a savepoint opened at its first write (so that a refusal undoes only its own writes) and
    queues what it returns, or its rejection and dead letter, in the outbox. Lanes run
    concurrently. Once they have committed, the batch's outcomes are durable, so its offsets are
    committed while the outbox relay publishes them. A service without Postgres publishes each
    batch's effects, and waits for the broker to have them, before its offsets are committed.

    A record that breaks its lane's transaction (a failure in the claim, the read-ahead, the
    outbox insert, or a statement outside its savepoint) costs the others nothing: the lane's
    transaction is rolled back and its records are handled again one by one, each in its own
    transaction, and the one that fails alone is settled alone (dead letter, 500) in one more.
    """

    def __init__(
        self,
        definition: ServiceDefinition,
        resources: Resources,
        pipeline: Pipeline,
        verifier: RecordVerifier,
    ) -> None:
        self.definition = definition
        self.verifier = verifier
        self.resources = resources
        self.pipeline = pipeline
        self.handled_types = {m.model_fields["type"].default: m for m in definition.handlers}
        self.topics = {topic.name: topic for topic in definition.consumes}
        connections = resources.settings.connections
        self.reply_rule = ReplyRule(
            own_replies=[
                connections.topic(t.name)
                for t in TOPICS
                if t.kind is TopicKind.REPLIES and t.writer == definition.name
            ],
            caller_prefix=connections.topic(connections.caller_reply_prefix),
        )
        self._deliveries: collections.OrderedDict[tuple[str, int, int], int] = (
            collections.OrderedDict()
        )
        """(topic, partition, offset) -> deliveries that failed transiently while dependencies answered."""

    async def batch(
        self, records: Sequence[ConsumerRecord], envelopes: Sequence[Envelope] | None = None
    ) -> None:
        """Handle a fetched batch; ``envelopes``: its records' envelopes, if they were read already."""
        read = {
            (r.topic, r.partition, r.offset): e
            for r, e in zip(records, envelopes or map(read_envelope, records), strict=True)
        }
        lanes = balanced_lanes(records, self.resources.settings.lanes)
        results = await asyncio.gather(
            *(self._lane(lane, read) for lane in lanes), return_exceptions=True
        )
        effects = [o for result in results if not isinstance(result, BaseException) for o in result]
        relay = self.resources.relay
        if relay is not None and relay.running:
            relay.kick()  # what the lanes committed is durable: publishing need not hold the batch
        elif relay is not None:
            await relay.flush()
        elif effects:
            await self.resources.publisher.send_many(effects)
            self._count_dead_letters(effects)
        for result in results:
            if isinstance(result, BaseException):
                if self.pipeline.metrics:
                    self.pipeline.metrics.redelivered.labels(self.definition.name).inc(len(records))
                raise result

    async def _lane(
        self, records: list[ConsumerRecord], envelopes: Mapping[tuple[str, int, int], Envelope]
    ) -> list[Publication]:
        """Handle one lane's records in order; returns what to publish (nothing: it is in the outbox)."""
        decoded = (self._decode(r, envelopes[(r.topic, r.partition, r.offset)]) for r in records)
        items = [item for item in decoded if item is not None]
        pool = self.resources.pool
        if pool is None:
            effects: list[Publication] = []
            for item in items:
                effects += await self._outcome(
                    item, partial(self._apply, item, Scope(self.resources.dependencies))
                )
            return effects
        for start in range(0, len(items), TRANSACTION_RECORDS):
            chunk = items[start : start + TRANSACTION_RECORDS]
            try:
                await self._transaction(pool, chunk, reading_ahead=True)
            except Exception as error:
                if isinstance(error, LaneAborted) or is_transient(error):
                    raise
                log.warning(
                    "a record broke its lane's transaction; the lane's records are handled "
                    "again, each alone",
                    error=type(error).__name__,
                    records=len(chunk),
                )
                for item in chunk:
                    await self._alone(pool, item)
        return []

    async def _transaction(
        self, pool: asyncpg.Pool, items: list[DecodedRecord], *, reading_ahead: bool
    ) -> None:
        """Handle ``items`` in one transaction: claim their event ids, read ahead, apply each, queue
        what they yield."""
        async with pool.acquire() as connection, connection.transaction():
            fresh = await claim_processed_messages(
                connection, self.definition.name, [i.event_id for i in items]
            )
            lookups = (
                await self._read_ahead(connection, [i for i in items if i.event_id in fresh])
                if reading_ahead
                else None
            )
            queued: list[Publication] = []
            for item in items:
                if item.event_id not in fresh:
                    with self.pipeline.bound(item.record, item.envelope):
                        log.info("duplicate message ignored")
                    continue
                fresh.discard(item.event_id)  # a second copy in this very batch is a duplicate too
                queued += await self._outcome(
                    item, partial(self._apply_guarded, item, connection, lookups)
                )
            await insert_outbox_records(connection, queued)
        self._count_dead_letters(queued)

    async def _alone(self, pool: asyncpg.Pool, item: DecodedRecord) -> None:
        """Handle ``item`` in a transaction of its own; if it breaks that one too, settle its failure
        (dead letter, 500) in another."""
        try:
            await self._transaction(pool, [item], reading_ahead=False)
        except Exception as error:
            if isinstance(error, LaneAborted) or is_transient(error):
                raise
            cause = (
                error.__cause__
                if isinstance(error, TransactionAborted) and error.__cause__
                else error
            )
            with self.pipeline.bound(item.record, item.envelope):
                settled = self.pipeline.settle(item.record, item.envelope, cause)  # type: ignore[arg-type]
            async with pool.acquire() as connection, connection.transaction():
                if await claim_processed_messages(
                    connection, self.definition.name, [item.event_id]
                ):
                    await insert_outbox_records(connection, settled)
            self._count_dead_letters(settled)

    def _count_dead_letters(self, published: Sequence[Publication]) -> None:
        metrics = self.pipeline.metrics
        if metrics:
            for record in published:
                if record.topic.endswith(".dlq"):
                    metrics.dead_lettered.labels(
                        self.definition.name, record.topic.removesuffix(".dlq")
                    ).inc()

    async def _read_ahead(
        self, connection: asyncpg.Connection, items: list[DecodedRecord]
    ) -> ReadAhead | None:
        if self.definition.read_ahead is None:
            return None
        lookups = self.definition.read_ahead()
        await lookups.load(connection, [item.message for item in items if item.message is not None])
        return lookups

    def _decode(self, record: ConsumerRecord, envelope: Envelope) -> DecodedRecord | None:
        """The record's message; None for another service's fact this one does not need."""
        try:
            topic = self.topics[self.resources.settings.connections.registry_name(record.topic)]
            body = record.value or b""
            if (
                not topic.answers_commands
                and envelope.type is not None
                and envelope.type not in self.handled_types
            ):
                return None  # (a record without a readable type is decoded, and so dead-lettered)
            if topic.writer is not None:
                self._authenticate(record, topic.writer)
            parsed = envelope.document  # None: not a JSON object with a type; decode says why
            message = decode_object(topic, parsed) if parsed is not None else decode(topic, body)
            if not {"event_id", "correlation_id"} <= message.model_fields_set:
                message = with_stand_in_ids(message, envelope)
            if type(message) not in self.definition.handlers:
                raise UnknownMessageType(message.type, topic.name)
            return DecodedRecord(record, envelope, message)
        except Unauthenticated as error:  # its ids are the forger's: it claims its position instead
            return DecodedRecord(
                record, replace(envelope, event_id=position_id(record)), error=error
            )
        except Exception as error:  # settled in the lane, like a failure of the handler
            return DecodedRecord(record, envelope, error=error)

    def _authenticate(self, record: ConsumerRecord, writer: str) -> None:
        """Raises `Unauthenticated` unless ``writer`` signed this very record."""
        self.verifier.verify(record.topic, record.key, record.value or b"", record.headers, writer)

    async def _outcome(
        self, item: DecodedRecord, attempt: Callable[[], Awaitable[list[Publication]]]
    ) -> list[Publication]:
        """What ``item`` yields: its effects, or the rejection and dead letter its failure maps to."""
        started = time.perf_counter()
        with self.pipeline.bound(item.record, item.envelope):
            try:
                if item.error is not None:
                    raise item.error
                return await self.pipeline.run(attempt)
            except (LaneAborted, TransactionAborted):
                raise
            except Exception as error:
                if is_transient(error):
                    error = await self._delivery_failed(item, error)
                return self.pipeline.settle(item.record, item.envelope, error)
            finally:
                if self.pipeline.metrics:
                    type_ = item.message.type if item.message is not None else UNKNOWN_TYPE
                    self.pipeline.metrics.handling.labels(self.definition.name, type_).observe(
                        time.perf_counter() - started
                    )

    async def _delivery_failed(self, item: DecodedRecord, error: Exception) -> Exception:
        """A transient failure that outlasted the retries: raised (the batch is delivered again) while
        a dependency is away or the record has deliveries left; returned as `DeliveriesExhausted`,
        to be settled, once the record has failed ``max_deliveries`` times with its dependencies up."""
        if not await self._dependencies_answer():
            log.warning(
                "dependency unavailable after retries; the batch will be delivered again",
                error=type(error).__name__,
            )
            raise error
        position = (item.record.topic, item.record.partition, item.record.offset)
        deliveries = self._deliveries.pop(position, 0) + 1
        if deliveries >= self.resources.settings.max_deliveries:
            return DeliveriesExhausted(deliveries, error)
        self._deliveries[position] = deliveries
        while len(self._deliveries) > DELIVERIES_REMEMBERED:
            self._deliveries.popitem(last=False)
        log.warning(
            "a record failed transiently with its dependencies up; the batch will be delivered again",
            error=type(error).__name__,
            deliveries=deliveries,
        )
        raise error

    async def _dependencies_answer(self) -> bool:
        """Whether Postgres and Redis (those the service uses) answer now."""
        try:
            async with asyncio.timeout(2.0):
                if self.resources.pool is not None:
                    await ping(self.resources.pool)
                if self.resources.redis is not None and not await redis_ping(self.resources.redis):
                    return False
            return True
        except Exception:
            return False

    async def _apply_guarded(
        self, item: DecodedRecord, connection: asyncpg.Connection, lookups: ReadAhead | None
    ) -> list[Publication]:
        """Apply ``item`` on the lane's connection, its writes undone alone if it fails."""
        guarded = SavepointOnWrite(connection)
        try:
            try:
                return await self._apply(item, Scope(self.resources.dependencies, guarded, lookups))
            except BaseException:
                await guarded.rollback()
                raise
            finally:
                if guarded.wrote and lookups is not None and item.message is not None:
                    lookups.forget(item.message)
        except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError) as error:
            raise LaneAborted(type(error).__name__) from error
        except Exception as error:
            if connection.is_closed():
                raise LaneAborted(type(error).__name__) from error
            if isinstance(error, asyncpg.PostgresError) and not guarded.wrote:
                raise TransactionAborted(
                    type(error).__name__
                ) from error  # no savepoint to roll back to
            raise

    async def _apply(self, item: DecodedRecord, scope: Scope[Any]) -> list[Publication]:
        assert item.message is not None
        self.reply_rule.check(getattr(item.message, "reply_to", None))
        handler = self.definition.handlers[type(item.message)]
        publication = self.resources.publisher.publication
        return [
            publication(o) for o in with_causation(item.message, await handler(item.message, scope))
        ]


def balanced_lanes(records: Sequence[ConsumerRecord], count: int) -> list[list[ConsumerRecord]]:
    """At most ``count`` lanes of records, each key's records in one lane in the order they came,
    keys spread so the lanes hold about as many records each (largest key first, to the emptiest
    lane): a batch takes as long as its fullest lane."""
    by_key: dict[bytes, list[ConsumerRecord]] = {}
    for record in records:
        by_key.setdefault(
            record.key if record.key is not None else b"%d" % record.partition, []
        ).append(record)
    lanes: list[list[ConsumerRecord]] = [[] for _ in range(min(count, len(by_key)))]
    emptiest = [(0, n) for n in range(len(lanes))]
    for group in sorted(by_key.values(), key=len, reverse=True):
        size, n = heapq.heappop(emptiest)
        lanes[n] += group
        heapq.heappush(emptiest, (size + len(group), n))
    return lanes


def with_stand_in_ids(message: Message, envelope: Envelope) -> Message:
    """A message sent without its ids takes the stand-ins derived from its record's position (as
    its rejections do): a redelivery is then recognised as one, and its outcome can be found."""
    missing = {
        name: getattr(envelope, name)
        for name in ("event_id", "correlation_id")
        if name not in message.model_fields_set
    }
    return message.model_copy(update=missing) if missing else message


def with_causation(cause: Message, outgoing: Sequence[Outgoing]) -> list[Outgoing]:
    """Give every effect of ``cause`` its correlation, causation and a replay-stable id."""
    return [
        replace(o, message=caused_by(cause, o.message, index=i)) for i, o in enumerate(outgoing)
    ]
