"""Broker faults between the services and Kafka: latency, a hang, connection resets, a slow close.

A dedicated Tansu advertises a fault proxy's address, so every client (the ledger test service
on the real message spine, the caller publishing its commands, the watcher reading its outcomes)
reaches the broker only through the proxy. The caller behaves as an upstream system should:
it publishes a command again, with the same event id, until the broker acknowledges it. What
must hold: no publish hangs (each one times out within its bound), the service recovers by
itself once the fault ends, and every command the broker accepted gets exactly one outcome and
is applied once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from libs.runtime.service import Service, build_service
from libs.runtime.settings import ConnectionSettings
from signgate_contracts import encode
from tests.integration.conftest import prepare_ledger
from tests.integration.ledger import app as ledger
from tests.integration.ledger.app import COMMANDS, EVENTS, Deposit
from tests.support.chaos_scale import LONG, report, scaled
from tests.support.fault_proxy import FaultProxy, proxied_tansu
from tests.support.kafka import TopicWatcher
from tests.support.waiting import until

pytestmark = pytest.mark.timeout(900 if LONG else 180)

SERVICE_REQUEST_TIMEOUT = 15.0
"""The services' producer request timeout (``request_timeout_ms`` in libs/runtime/messaging/broker.py)."""
CALLER_REQUEST_TIMEOUT_MS = 3_000
HANG = scaled(19, 40)
"""Longer than the service's request timeout, so a publish of its own times out in the hang."""
CALLER_BOUND = 6 * CALLER_REQUEST_TIMEOUT_MS / 1000
"""The longest a caller's failed publish may take: aiokafka expires an unsent batch once it is
``request_timeout_ms`` old, at the end of the attempt then running (a request, or a connection
attempt whose first request goes unanswered), and retries in between, so a publish caught in a
long hang may fail several timeouts late (seen: 12.0 s, and 14.8 s on a busy machine, for 3 s)."""
UNBOUNDED = 2 * CALLER_BOUND
"""A caller's publish still waiting after this long is taken as hanging (aiokafka issue #1101)."""


@dataclass
class Publishes:
    """Every publish the service made: how long it took and how it ended."""

    ended: list[tuple[float, float, str | None]] = field(default_factory=list)
    """(started, seconds, error type or None), monotonic clock."""
    pending: dict[int, float] = field(default_factory=dict)

    def failed_between(self, start: float, end: float) -> list[tuple[float, float, str | None]]:
        return [p for p in self.ended if p[2] is not None and start <= p[0] + p[1] <= end]


def instrument(service: Service) -> Publishes:
    """Time every publish of the service's broker (a delivery future counts until it resolves)."""
    publishes = Publishes()
    original = service.broker.publish

    def ended(key: int, started: float, error: BaseException | None) -> None:
        publishes.pending.pop(key, None)
        publishes.ended.append((started, time.monotonic() - started, type(error).__name__ if error else None))

    async def publish(*args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        key = id(object())
        publishes.pending[key] = started
        try:
            result = await original(*args, **kwargs)
        except Exception as error:
            ended(key, started, error)
            raise
        if isinstance(result, asyncio.Future):
            result.add_done_callback(lambda f: ended(key, started, None if f.cancelled() else f.exception()))
        else:
            ended(key, started, None)
        return result

    service.broker.publish = publish  # type: ignore[method-assign]
    return publishes


class Caller:
    """An upstream system: publishes each command until the broker acknowledges it, same bytes each
    time; remembers how long every failed attempt took."""

    def __init__(self, connections: ConnectionSettings) -> None:
        self.connections = connections
        self.producer = AIOKafkaProducer(bootstrap_servers=connections.kafka_bootstrap, acks="all",
                                         request_timeout_ms=CALLER_REQUEST_TIMEOUT_MS, retry_backoff_ms=100)
        self.accepted: dict[str, Deposit] = {}
        self.failures: list[tuple[float, float, str]] = []
        """(started, seconds, error type) of every attempt that did not get an acknowledgement."""
        self.tasks: set[asyncio.Task[None]] = set()

    async def submit(self, command: Deposit) -> None:
        payload = encode(command)
        while True:
            started = time.monotonic()
            try:
                async with asyncio.timeout(UNBOUNDED):
                    await self.producer.send_and_wait(self.connections.topic(COMMANDS.name), payload,
                                                      key=command.account.encode())
            except (KafkaError, TimeoutError) as error:
                seconds = time.monotonic() - started
                kind = "unbounded" if seconds >= UNBOUNDED else type(error).__name__
                self.failures.append((started, seconds, kind))
                continue
            self.accepted[str(command.correlation_id)] = command
            return

    def submit_soon(self, command: Deposit) -> None:
        task = asyncio.create_task(self.submit(command))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def drained(self, timeout: float) -> None:
        """Until every command submitted so far has been accepted."""
        async with asyncio.timeout(timeout):
            while self.tasks:
                await asyncio.gather(*self.tasks)


@dataclass
class Spine:
    proxy: FaultProxy
    connections: ConnectionSettings
    service: Service
    publishes: Publishes
    caller: Caller
    watch: TopicWatcher
    accounts: list[str] = field(default_factory=lambda: [f"acct-{uuid.uuid4().hex[:8]}" for _ in range(6)])
    sequence: int = 0

    def command(self, **fields: Any) -> Deposit:
        self.sequence += 1
        fields.setdefault("account", self.accounts[self.sequence % len(self.accounts)])
        return Deposit(amount=self.sequence, **fields)

    def outcomes(self) -> dict[str, set[str]]:
        """Correlation id -> event ids of its outcomes seen so far."""
        seen: dict[str, set[str]] = defaultdict(set)
        for record in self.watch.records:
            body = json.loads(record.value)
            if record.topic == self.connections.topic(EVENTS.name):
                seen[body["correlation_id"]].add(body["event_id"])
        return seen

    async def answered(self, commands: list[Deposit], timeout: float) -> float:
        """Wait until every one of ``commands`` has an outcome; returns the seconds it took."""
        started = time.monotonic()
        owed = {str(c.correlation_id) for c in commands}

        async def all_there() -> bool:
            return owed <= set(self.outcomes())

        await until(all_there, timeout=timeout, what=f"outcomes of {len(owed)} commands")
        return time.monotonic() - started


@contextlib.asynccontextmanager
async def load(spine: Spine, every: float) -> AsyncIterator[list[Deposit]]:
    """Submit a new command every ``every`` seconds for the duration of the block."""
    sent: list[Deposit] = []

    async def run() -> None:
        while True:
            command = spine.command()
            sent.append(command)
            spine.caller.submit_soon(command)
            await asyncio.sleep(every)  # the load's pace, not a synchronisation

    task = asyncio.create_task(run())
    try:
        yield sent
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture(scope="module")
async def spine(connections: ConnectionSettings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Spine]:
    async with FaultProxy() as proxy:
        with proxied_tansu(proxy, tmp_path_factory.mktemp("broker-faults")):
            proxied = connections.model_copy(update={
                "kafka_bootstrap": proxy.address, "kafka_idempotence": False,
                "topic_prefix": f"{connections.topic_prefix}faults."})
            await prepare_ledger(proxied)
            settings = ledger.LedgerSettings(connections=proxied, retry_first_delay=0.4, outbox_poll_interval=0.2,
                                             session_timeout_ms=6_000, heartbeat_interval_ms=1_000)
            service = build_service(ledger.DEFINITION, settings)
            publishes = instrument(service)
            caller = Caller(proxied)
            await caller.producer.start()
            try:
                async with service.app, TopicWatcher(proxied.kafka_bootstrap, proxied.topic(EVENTS.name),
                                                     proxied.topic(COMMANDS.dlq)) as watch:
                    spine = Spine(proxy, proxied, service, publishes, caller, watch)
                    yield spine
                    proxy.resume()
                    await caller.drained(60)
                    await final_check(spine)
            finally:
                proxy.resume()
                await caller.producer.stop()


async def settled(spine: Spine, commands: list[Deposit]) -> dict[str, int]:
    """Every command accepted has exactly one outcome, a deposit applied once; returns the counts."""
    await spine.caller.drained(60)
    assert {str(c.correlation_id) for c in commands} <= set(spine.caller.accepted)
    await spine.answered(commands, timeout=60)
    outcomes = spine.outcomes()
    owed = [str(c.correlation_id) for c in commands]
    twice = {c: outcomes[c] for c in owed if len(outcomes[c]) != 1}
    assert twice == {}
    types = {json.loads(r.value)["type"] for r in spine.watch.records
             if json.loads(r.value)["correlation_id"] in set(owed)}
    assert types == {"ledger.deposited"}
    assert spine.service.resources.pool is not None
    rows = await spine.service.resources.pool.fetch(
        "SELECT event_id, count(*) AS n FROM entries WHERE event_id = ANY($1::uuid[]) GROUP BY event_id",
        [c.event_id for c in commands])
    applied = {row["event_id"]: row["n"] for row in rows}
    assert {c.event_id: applied.get(c.event_id, 0) for c in commands} == {c.event_id: 1 for c in commands}
    records = [json.loads(r.value) for r in spine.watch.records if r.topic == spine.connections.topic(EVENTS.name)]
    republished = sum(1 for b in records if b["correlation_id"] in set(owed)) - len(owed)
    return {"commands_accepted": len(commands), "outcomes": len(owed), "lost": 0, "applied_twice": 0,
            "outcome_records_republished": republished}


async def final_check(spine: Spine) -> None:
    """After every fault: the events topic read from its start holds one outcome per accepted
    command, the service's group has committed everything, and nothing was dead-lettered."""
    owed = set(spine.caller.accepted)
    reader = AIOKafkaConsumer(bootstrap_servers=spine.connections.kafka_bootstrap, enable_auto_commit=False,
                              auto_offset_reset="earliest")
    await reader.start()
    try:
        topic = spine.connections.topic(EVENTS.name)
        reader.assign([TopicPartition(topic, p) for p in range(EVENTS.partitions)])
        seen: dict[str, set[str]] = defaultdict(set)

        async def complete() -> bool:
            for records in (await reader.getmany(timeout_ms=500)).values():
                for record in records:
                    body = json.loads(record.value)
                    seen[body["correlation_id"]].add(body["event_id"])
            return owed <= set(seen)

        await until(complete, timeout=60, what="every accepted command's outcome on the events topic")
    finally:
        await reader.stop()
    assert {c: len(seen[c]) for c in owed if len(seen[c]) != 1} == {}
    dead = [r for r in spine.watch.records if r.topic == spine.connections.topic(COMMANDS.dlq)]
    assert dead == []
    report("broker faults: total", commands_accepted=len(owed), outcomes=len(owed & set(seen)), lost=0,
           applied_twice=0, dead_letters=0, connections_accepted=spine.proxy.accepted,
           connections_reset=spine.proxy.resets)


async def round_trips(spine: Spine, count: int) -> list[float]:
    """Send ``count`` commands one after another; seconds from submitting each to its outcome."""
    seconds = []
    for _ in range(count):
        command = spine.command()
        started = time.monotonic()
        await spine.caller.submit(command)
        await spine.answered([command], timeout=30)
        seconds.append(time.monotonic() - started)
    return seconds


async def test_commands_are_answered_under_latency(spine: Spine) -> None:
    """With 100 ms added to every chunk each way between clients and broker, every command is still
    answered, once, only later."""
    baseline = await round_trips(spine, 3)
    spine.proxy.latency(0.1)
    try:
        slowed = await round_trips(spine, scaled(3, 10))
        async with load(spine, every=0.05) as burst:
            await asyncio.sleep(scaled(2, 10))  # the load runs under latency for this long
        await spine.caller.drained(30)
        answer_seconds = await spine.answered(burst, timeout=60)
    finally:
        spine.proxy.resume()

    figures = await settled(spine, burst)
    assert statistics.median(slowed) > statistics.median(baseline) + 0.2  # the latency was really there
    assert [f for f in spine.caller.failures if f[2] == "unbounded"] == []
    report("broker faults: latency", added_latency_ms=100, round_trip_median_s=round(statistics.median(baseline), 3),
           round_trip_median_under_latency_s=round(statistics.median(slowed), 3),
           burst_answered_within_s=round(answer_seconds, 2), **figures)


async def test_publishing_times_out_during_a_hang_and_the_service_recovers_by_itself(spine: Spine) -> None:
    """While the broker's connections are held open but silent, the caller's and the service's
    publishes fail within their request timeouts instead of hanging, and once the hang ends the
    service answers every accepted command, once, without being restarted."""
    redis = spine.service.resources.redis
    assert redis is not None
    prefix = spine.connections.redis_prefix
    # failing three times, applied on the fourth try 1.6 s after the third: its outcome is
    # published while the broker hangs
    slow = spine.command(behaviour="transient", transient_failures=3)
    await spine.caller.submit(slow)

    async def third_try() -> bool:
        return int(await redis.get(f"{prefix}ledger:attempts:{slow.event_id}") or 0) >= 3

    await until(third_try, timeout=20, what="the service trying the slow command a third time")
    failures_before = len(spine.caller.failures)
    async with load(spine, every=0.1) as sent:
        hung_at = time.monotonic()
        spine.proxy.hang()
        await asyncio.sleep(HANG)  # the fault: the broker silent for this long
        spine.proxy.resume()
        resumed_at = time.monotonic()
        during = list(sent)
        recovery = await spine.answered([slow, *during], timeout=90)
        after = spine.command()
        sent.append(after)
        spine.caller.submit_soon(after)
        fresh = await spine.answered([after], timeout=30)

    figures = await settled(spine, [slow, *sent])
    caller_failures = spine.caller.failures[failures_before:]
    service_failures = spine.publishes.failed_between(hung_at, resumed_at + 1)
    assert caller_failures, "no publish of the caller was caught in the hang"
    assert [f for f in caller_failures if f[2] == "unbounded"] == []
    assert max(f[1] for f in caller_failures) <= CALLER_BOUND + 1
    assert service_failures, "no publish of the service was caught in the hang"
    assert max(f[1] for f in service_failures) <= 2 * SERVICE_REQUEST_TIMEOUT + 1
    assert not [p for p in spine.publishes.pending.values() if p < resumed_at]  # none still waiting
    report("broker faults: hang", hang_s=HANG, commands_submitted_during_hang=len(during),
           caller_publish_timeouts=len(caller_failures),
           caller_timeout_s_max=round(max(f[1] for f in caller_failures), 2),
           caller_errors=sorted({f[2] for f in caller_failures}),
           service_publish_timeouts=len(service_failures),
           service_timeout_s_max=round(max(f[1] for f in service_failures), 2),
           service_errors=sorted({f[2] for f in service_failures}),
           all_answered_s_after_hang=round(recovery, 2), new_command_answered_s=round(fresh, 2), **figures)


async def test_service_reconnects_after_connection_resets(spine: Spine) -> None:
    """After every connection to the broker is reset, the service and its callers reconnect by
    themselves and every accepted command is answered once."""
    reconnects = []
    resets = scaled(3, 10)
    async with load(spine, every=0.05) as sent:
        for _ in range(resets):
            accepted_before = spine.proxy.accepted
            aborted = spine.proxy.reset()
            reset_at = time.monotonic()
            probe = spine.command()
            sent.append(probe)
            spine.caller.submit_soon(probe)
            await spine.answered([probe], timeout=60)
            reconnects.append((aborted, spine.proxy.accepted - accepted_before, time.monotonic() - reset_at))

    figures = await settled(spine, sent)
    assert all(aborted > 0 and made > 0 for aborted, made, _ in reconnects)
    report("broker faults: resets", resets=resets, connections_aborted=sum(r[0] for r in reconnects),
           connections_made_again=sum(r[1] for r in reconnects),
           answered_s_after_reset=[round(r[2], 2) for r in reconnects], **figures)


async def test_connections_closed_slowly_are_replaced(spine: Spine) -> None:
    """When every open connection goes silent and is closed only seconds later, the clients notice
    the close, connect again, and every accepted command is answered once."""
    linger = scaled(5, 12)
    async with load(spine, every=0.05) as sent:
        closing = spine.proxy.close_slowly(linger)
        closed_at = time.monotonic()
        probe = spine.command()
        sent.append(probe)
        spine.caller.submit_soon(probe)
        answered = await spine.answered([probe], timeout=60)

    figures = await settled(spine, sent)
    assert closing > 0
    assert answered <= linger + SERVICE_REQUEST_TIMEOUT  # noticed by the close or a request timeout
    report("broker faults: slow close", linger_s=linger, connections_closed_slowly=closing,
           probe_answered_s=round(answered, 2), since_close_s=round(time.monotonic() - closed_at, 2), **figures)
