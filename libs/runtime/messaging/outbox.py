"""Transactional outbox: messages written with the state they describe, published by a relay."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable
from typing import Protocol

import asyncpg

from libs.runtime.logging import get_logger
from libs.runtime.messaging.publisher import Publication, unpublishable_reason

log = get_logger(__name__)


class Outlet(Protocol):
    """Where the relay publishes: `libs.runtime.messaging.publisher.Publisher` on a real broker."""

    async def send_each(self, records: list[Publication]) -> list[Exception | None]:
        """Publish in order without waiting for each; each record's failure, or None once the broker has it."""
        ...

    async def absent(self, topics: set[str]) -> set[str]:
        """Which of ``topics`` the broker says do not exist (asking it creates none)."""
        ...

    def unpublishable(self, record: Publication, reason: str) -> Publication:
        """The dead letter of a record that can never be published."""
        ...


LOCK_OUTBOX = (
    "SELECT pg_advisory_xact_lock(hashtext('signgate.outbox'), hashtext(current_schema()))"
)
"""One relay at a time claims and publishes this schema's outbox, until its transaction ends. With
SKIP LOCKED alone, replicas claimed consecutive batches and published them at once, so a key's later
row could reach the broker before its earlier one (or be published while the earlier one's send
failed and was rolled back). Blocking, not a try-lock: a relay that waits claims, once the other
commits, what was committed meanwhile, so no kick is lost."""

CLAIM_OLDEST = (
    "DELETE FROM outbox WHERE id = ANY(ARRAY(SELECT id FROM outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED))"
    " RETURNING id, topic, key, payload, headers"
)
"""Delete and return the oldest rows no other relay holds. The ids are gathered once, as an array:
written as ``id IN (SELECT ...)``, an outbox analysed while empty (a queue usually is) was planned
as a nested loop that ran the subquery again for every row, quadratic in the backlog (20 ms for
300 rows instead of 1.7 ms), just when a backlog needs clearing."""


async def insert_outbox_records(
    connection: asyncpg.Connection, records: Iterable[Publication]
) -> None:
    """Queue ``records`` inside the caller's transaction (they are signed when the relay publishes them)."""
    await connection.executemany(
        "INSERT INTO outbox (topic, key, payload, headers) VALUES ($1, $2, $3, $4)",
        [(r.topic, r.key, r.payload, json.dumps(r.headers)) for r in records],
    )


class OutboxRelay:
    """Publishes queued messages in order and deletes them once the broker has them.

    ``run`` flushes whenever a handler has committed rows and says so with ``kick`` (the fast
    path: the consumer commits its offsets and goes on to the next batch while the relay
    publishes), and at least every ``interval`` for rows left by a crash or a broker outage.
    A process-wide lock keeps one process's flushes in order, and an advisory lock
    (`LOCK_OUTBOX`) one replica's batch at a time, so the broker gets every key's rows in
    their order whichever replica's relay publishes them.

    A record the broker can never take (its topic does not exist, it is too large) is replaced
    by its dead letter (`Outlet.unpublishable`) and the rest go on; a broker that does not
    answer fails the batch, which is rolled back and published again on the next flush.
    """

    def __init__(self, pool: asyncpg.Pool, outlet: Outlet, *, batch: int = 500) -> None:
        self._pool = pool
        self._outlet = outlet
        self._batch = batch
        self._lock = asyncio.Lock()
        self._requested = 0
        """Flush calls so far, numbered."""
        self._covered = 0
        """Every call numbered up to this was answered by a flush that began after it."""
        self._kicked = asyncio.Event()
        self.running = False
        """Whether ``run`` is looping: if not, whoever commits rows flushes them itself."""

    def kick(self) -> None:
        """Rows were committed: have ``run`` flush now rather than at its next tick."""
        self._kicked.set()

    async def flush(self) -> int:
        """Publish everything queued now; returns how many records were published.

        Concurrent callers share flushes: a caller that finds a flush running waits for it and
        then needs no flush of its own if another one began after its call (rows committed
        before the call are visible to that flush's DELETE), so N handlers finishing together
        cost about two flushes, not N.
        """
        self._requested += 1
        ticket = self._requested
        published = 0
        async with self._lock:
            if self._covered >= ticket:
                return 0
            covers = self._requested
            while True:
                count = await self._publish_batch()
                published += count
                if count < self._batch:
                    self._covered = covers
                    return published

    async def _publish_batch(self) -> int:
        """Claim (delete) the oldest rows, publish them, and commit only once the broker has them
        all: a failed send rolls the delete back and the rows wait for the next flush."""
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(LOCK_OUTBOX)
            rows = await connection.fetch(CLAIM_OLDEST, self._batch)
            if rows:
                rows = sorted(rows, key=lambda r: r["id"])
                await self._publish(
                    [
                        Publication(r["topic"], r["key"], r["payload"], json.loads(r["headers"]))
                        for r in rows
                    ]
                )
            return len(rows)

    async def _publish(self, records: list[Publication]) -> None:
        """Publish ``records`` in order; those the broker can never take are dead-lettered instead."""
        absent = await self._outlet.absent({r.topic for r in records})
        sending = [r for r in records if r.topic not in absent]
        refused = [(r, f"topic {r.topic} does not exist") for r in records if r.topic in absent]
        failure: Exception | None = None
        for record, error in zip(sending, await self._outlet.send_each(sending), strict=True):
            reason = unpublishable_reason(error) if error is not None else None
            if reason is not None:
                refused.append((record, reason))
            elif error is not None and failure is None:
                failure = error
        if failure is not None:
            raise failure  # the broker is away (or the topic is only just gone): all again, later
        if not refused:
            return
        for error in await self._outlet.send_each([self._dead(r, why) for r, why in refused]):
            if error is not None:
                raise error  # a dead letter must not be lost: the rows wait for the next flush

    def _dead(self, record: Publication, reason: str) -> Publication:
        log.error(
            "an outbox record can never be published; dead-lettered",
            reason=reason,
            message_type=record.headers.get("type"),
            correlation_id=record.headers.get("correlation_id"),
        )
        return self._outlet.unpublishable(record, reason)

    async def run(self, interval: float = 0.5) -> None:
        """Flush on every kick, and every ``interval`` anyway; failures are logged and retried on the
        next tick."""
        self.running = True
        try:
            await self._loop(interval)
        finally:
            self.running = False

    async def _loop(self, interval: float) -> None:
        while True:
            self._kicked.clear()  # a kick during the flush below starts another one straight after
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay failed; will retry")
                await asyncio.sleep(interval)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._kicked.wait()


@contextlib.asynccontextmanager
async def running_relay(relay: OutboxRelay, interval: float = 0.5):
    """Run the relay's poll loop for the duration of the block."""
    task = asyncio.create_task(relay.run(interval), name="outbox-relay")
    try:
        yield relay
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        try:  # what was committed since the last flush goes out now, not at the next start
            await relay.flush()
        except Exception:
            log.exception("final outbox flush failed; the rows wait for the next start")
