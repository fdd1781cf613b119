"""Concurrency at scale: a thousand recipients, twenty guessers each firing at once.

On the session's real Redis with the real Lua scripts (fakeredis runs another Lua), through
several clients, each with a pool of its own, as replicas of the authentication service would
be: the twenty submissions of one recipient are in flight together on different connections,
so the server interleaves them. What must hold for every recipient: exactly its retry count of
failures is counted before the lock and none after it; a correct code is accepted at most once;
after an acceptance or the lock nothing else is accepted.

The same for the wrong-secret counter of passwords and access codes, and once through the
real authentication service over Kafka. There a package's commands are handled one at a
time, in order (they share a key, so a partition), so the concurrency is across packages;
the interleaving of one recipient's guesses is what the Redis-level tests prove.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from aiokafka import ConsumerRecord

from libs.runtime.settings import ConnectionSettings
from libs.security.otp_store import (
    Issued,
    OtpRecipient,
    OtpStore,
    SendLimits,
    Verification,
    VerifyOutcome,
)
from services.authentication.failures import SecretFailures
from signgate_contracts import authentication as auth
from signgate_contracts import encode
from signgate_contracts import workflow as wf
from tests.e2e.steps import SharedPackage, owner_token, shared_package
from tests.support.chaos_scale import report, scaled
from tests.support.kafka import producer
from tests.support.system import System

RECIPIENTS = 1000
"""OTP guessing, both forms: the full thousand takes some 6 s on real Redis (15 s on a busy machine)."""
SECRET_RECIPIENTS = scaled(500, 1000)
E2E_RECIPIENTS = scaled(20, 100)
GUESSERS = 20
REPLICAS = 4
"""Clients, as replicas of the authentication service: each has a connection pool of its own."""
CONNECTIONS_PER_REPLICA = 16
PEPPER = "concurrency-pepper-0123456789"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
NO_LIMITS = SendLimits(resend_cooldown=timedelta(0), per_recipient=1000, per_destination=1000)

pytestmark = pytest.mark.timeout(300)


@dataclass(frozen=True)
class Target:
    """One recipient under attack: its code, its retry count and what its twenty guessers submit."""

    recipient: OtpRecipient
    retry_count: int
    code: str
    guesses: tuple[str, ...]

    @property
    def holders(self) -> int:
        """How many of the guessers hold the right code."""
        return sum(guess == self.code for guess in self.guesses)


def plan(count: int, rng: random.Random) -> list[Target]:
    """Retry counts 1-10 (the seed's range) across recipients; six in ten get only wrong codes
    (one of them another recipient's right code), three in ten have three guessers holding the
    right code, one in ten has all twenty holding it."""
    package = f"pkg-{uuid.uuid4().hex[:8]}"
    codes = [f"{rng.randrange(10**6):06d}" for _ in range(count)]
    targets = []
    for i, code in enumerate(codes):
        wrong = [f"{(int(code) + k) % 10**6:06d}" for k in range(1, GUESSERS + 1)]
        neighbour = codes[(i + 1) % count]
        if neighbour != code:
            wrong[0] = neighbour  # right for the next recipient, wrong here: codes are bound to recipients
        holders = {9: GUESSERS, 6: 3, 7: 3, 8: 3}.get((i // 10) % 10, 0)
        guesses = [code] * holders + wrong[: GUESSERS - holders]
        rng.shuffle(guesses)
        targets.append(Target(OtpRecipient.document_opening(f"{package}-{i // 50}", i % 50 + 1),
                              1 + i % 10, code, tuple(guesses)))
    return targets


@pytest.fixture
async def replicas(connections: ConnectionSettings) -> AsyncIterator[list[aioredis.Redis]]:
    """Several clients on the real Redis, each with a blocking pool of its own (named, so the
    server can be asked how many connections it saw)."""
    name = f"guess-{uuid.uuid4().hex[:8]}"
    clients = [
        aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(
            connections.redis_url, max_connections=CONNECTIONS_PER_REPLICA, timeout=60, client_name=name))
        for _ in range(REPLICAS)
    ]
    yield clients
    for client in clients:
        await client.aclose()


@pytest.fixture
def prefix(connections: ConnectionSettings) -> str:
    return f"{connections.redis_prefix}guessing-{uuid.uuid4().hex[:8]}:"


async def connections_seen(client: aioredis.Redis) -> int:
    """How many connections of the replicas' pools the server has open now."""
    name = (await client.client_getname()) or ""
    return sum(1 for entry in await client.client_list() if entry.get("name") == name)


def judge_otp(target: Target, results: list[tuple[str, Verification]]) -> list[str]:
    """What went wrong for one recipient, if anything (empty when every guarantee held)."""
    r = target.retry_count
    counted = sorted(v.attempts_used for _, v in results if v.outcome is VerifyOutcome.WRONG or v.locked_now)
    accepted = [guess for guess, v in results if v.ok]
    locked_now = [v for _, v in results if v.locked_now]
    refused = [v for _, v in results if v.outcome is VerifyOutcome.LOCKED and not v.locked_now]
    no_pending = [v for _, v in results if v.outcome is VerifyOutcome.NO_PENDING]
    others = [v for _, v in results if v.outcome is VerifyOutcome.EXPIRED]
    problems = []
    if accepted and any(guess != target.code for guess in accepted):
        problems.append("a wrong code was accepted")
    if len(accepted) > 1:
        problems.append(f"the right code was accepted {len(accepted)} times")
    if len(accepted) + len(locked_now) != 1:
        problems.append(f"{len(accepted)} acceptances and {len(locked_now)} lockouts (exactly one of them expected)")
    if counted != list(range(1, len(counted) + 1)):
        problems.append(f"failure counts {counted} are not 1..n, each once")
    if others:
        problems.append(f"{len(others)} unexpected outcomes {others}")
    if locked_now:
        if len(counted) != r or locked_now[0].attempts_used != r:
            problems.append(f"{len(counted)} failures counted before the lock, retry count {r}")
        if no_pending or any(v.attempts_used != r for v in refused):
            problems.append("a failure was counted, or the code looked at, after the lock")
    if accepted:
        if len(counted) >= r or refused:
            problems.append(f"accepted after {len(counted)} failures with retry count {r}")
        if len(no_pending) != GUESSERS - 1 - len(counted):
            problems.append("after the acceptance something other than 'no pending code' was answered")
    if target.holders == 0 and not locked_now:
        problems.append("only wrong codes, yet no lockout")
    if target.holders == GUESSERS and (not accepted or counted):
        problems.append("only right codes, yet not exactly one acceptance with no failure")
    return problems


async def test_twenty_concurrent_otp_guessers_per_recipient_get_exactly_the_retry_count(
    replicas: list[aioredis.Redis], prefix: str
) -> None:
    """With twenty guessers per recipient submitting at once through several pools, every recipient
    counts exactly its retry count of wrong codes and then locks, or accepts its code once before
    that, and afterwards nothing (not even the right code) is accepted or counted."""
    seed = random.randrange(2**32)
    targets = plan(RECIPIENTS, random.Random(seed))
    stores = [OtpStore(client, prefix=prefix, pepper=PEPPER, clock=lambda: T0) for client in replicas]
    issued = await asyncio.gather(*(
        stores[i % REPLICAS].issue(uuid.uuid4(), t.recipient, challenge_id=uuid.uuid4(), code=t.code,
                                   channel="sms", destination=f"+4477009{i:05d}", ttl=timedelta(minutes=5),
                                   limits=NO_LIMITS, now=T0)
        for i, t in enumerate(targets)
    ))
    assert all(isinstance(i, Issued) for i in issued)

    async def guess(target: Target, j: int, code: str) -> tuple[str, Verification]:
        store = stores[j % REPLICAS]
        return code, await store.verify_and_consume(target.recipient, code, retry_count=target.retry_count, now=T0)

    started = time.perf_counter()
    outcomes = await asyncio.gather(*(
        asyncio.gather(*(guess(t, j, code) for j, code in enumerate(t.guesses))) for t in targets
    ))
    seconds = time.perf_counter() - started
    pool_connections = await connections_seen(replicas[0])

    problems = {i: p for i, (t, results) in enumerate(zip(targets, outcomes, strict=True))
                if (p := judge_otp(t, results))}
    after = await asyncio.gather(*(
        stores[i % REPLICAS].verify_and_consume(t.recipient, t.code, retry_count=t.retry_count, now=T0)
        for i, t in enumerate(targets)
    ))
    status = await asyncio.gather(*(stores[0].status(t.recipient, now=T0) for t in targets))

    reordered = sum(1 for results in outcomes if (seen := [v.attempts_used for _, v in results
                    if v.outcome is VerifyOutcome.WRONG or v.locked_now]) != sorted(seen))
    tally = Counter(v.outcome.value + ("_now" if v.locked_now else "") for results in outcomes for _, v in results)
    locked = {i for i, results in enumerate(outcomes) if any(v.locked_now for _, v in results)}
    accepted = {i for i, results in enumerate(outcomes) if any(v.ok for _, v in results)}
    report("concurrent OTP guessing", seed=seed, recipients=len(targets), guessers_each=GUESSERS,
           guesses=sum(len(t.guesses) for t in targets), replicas=REPLICAS, connections=pool_connections,
           right_code_submissions=sum(t.holders for t in targets), accepted_codes=len(accepted),
           locked=len(locked), failures_counted=tally["wrong"] + tally["locked_now"],
           failures_counted_by_locked=sum(targets[i].retry_count for i in locked),
           refused_after_lock=tally["locked"], no_pending_after_acceptance=tally["no_pending"],
           recipients_counted_out_of_submission_order=reordered, seconds=round(seconds, 2),
           guesses_per_second=round(len(targets) * GUESSERS / seconds))

    assert not problems, f"{len(problems)} recipients broke a guarantee (seed {seed}), e.g. " + "; ".join(
        f"#{i} retry {targets[i].retry_count}, {targets[i].holders} holders: {p}"
        for i, p in list(problems.items())[:5])
    assert pool_connections > GUESSERS, "the guesses must have had many connections to interleave on"
    assert [v.outcome for v in after] == [
        VerifyOutcome.LOCKED if i in locked else VerifyOutcome.NO_PENDING for i in range(len(targets))
    ], "after the burst the right code must not be accepted, nor counted"
    assert [(s.failures, s.pending) for s in status] == [
        (t.retry_count if i in locked else 0, None) for i, t in enumerate(targets)
    ]


async def test_twenty_concurrent_wrong_secrets_per_recipient_count_exactly_the_retry_count(
    replicas: list[aioredis.Redis], prefix: str
) -> None:
    """With twenty wrong passwords or access codes per recipient counted at once through several pools,
    every recipient's counter counts exactly its retry count, exactly one of them reaches the limit
    (the one that takes the lock), and every later one is refused with the count unchanged."""
    counters = [SecretFailures(client, prefix) for client in replicas]
    package = f"pkg-{uuid.uuid4().hex[:8]}"
    recipients = [(f"{package}-{i // 50}", i % 50 + 1, 1 + i % 10) for i in range(SECRET_RECIPIENTS)]

    started = time.perf_counter()
    outcomes = await asyncio.gather(*(
        asyncio.gather(*(counters[j % REPLICAS].count(package_id, order, retry) for j in range(GUESSERS)))
        for package_id, order, retry in recipients
    ))
    seconds = time.perf_counter() - started
    pool_connections = await connections_seen(replicas[0])
    again = await asyncio.gather(*(counters[0].count(p, o, r) for p, o, r in recipients))
    stored = await asyncio.gather(*(counters[0].used(p, o) for p, o, _ in recipients))

    problems = []
    for (package_id, order, retry), results in zip(recipients, outcomes, strict=True):
        counted = sorted(used for used, was_counted in results if was_counted)
        refused = [used for used, was_counted in results if not was_counted]
        takes_lock = [used for used, was_counted in results if was_counted and used >= retry]
        if counted != list(range(1, retry + 1)) or refused != [retry] * (GUESSERS - retry) or takes_lock != [retry]:
            problems.append(f"{package_id}/{order} retry {retry}: counted {counted}, refused at {refused}")
    report("concurrent secret guessing", recipients=len(recipients), guessers_each=GUESSERS,
           guesses=len(recipients) * GUESSERS, replicas=REPLICAS, connections=pool_connections,
           failures_counted=sum(w for results in outcomes for _, w in results),
           retry_counts=sum(r for *_, r in recipients),
           refused_after_lock=sum(not w for results in outcomes for _, w in results),
           seconds=round(seconds, 2), guesses_per_second=round(len(recipients) * GUESSERS / seconds))

    assert not problems, f"{len(problems)} recipients broke a guarantee, e.g. " + "; ".join(problems[:5])
    assert again == [(r, False) for *_, r in recipients], "no failure may be counted after the lock"
    assert stored == [r for *_, r in recipients]


RECIPIENTS_PER_PACKAGE = 5


async def test_twenty_concurrent_wrong_access_codes_through_the_service_lock_each_recipient_once(
    system: System,
) -> None:
    """Through the real authentication service over Kafka, twenty wrong access codes per recipient
    published at once give each recipient exactly retry count - 1 failure events, one lockout
    event carrying its retry count, and a 403 for every later attempt, the right code included."""
    rng = random.Random()
    token = await owner_token(system)
    packages = E2E_RECIPIENTS // RECIPIENTS_PER_PACKAGE
    codes = {(p, o): f"Code-{rng.randrange(10**8):08d}" for p in range(packages)
             for o in range(1, RECIPIENTS_PER_PACKAGE + 1)}
    retry = {key: 1 + n % 10 for n, key in enumerate(codes)}

    async def package(p: int) -> SharedPackage:
        emails = {o: f"r{o}-{uuid.uuid4().hex[:6]}@example.com" for o in range(1, RECIPIENTS_PER_PACKAGE + 1)}
        return await shared_package(
            system, token, [wf.RecipientSpec(order=o, email=e, name=f"R{o}") for o, e in emails.items()],
            *({"body": {"accessCode": codes[p, o], "authenticationType": "AccessCode", "emailId": e,
                        "authenticationRetryCount": retry[p, o]}} for o, e in emails.items()),
        )

    shared = await asyncio.gather(*(package(p) for p in range(packages)))
    package_ids = [s.package_id for s in shared]
    commands = [auth.OpenDocumentWithPassword(package_id=package_ids[p], order=o, invitation=shared[p].invitations[o],
                                              password=f"{codes[p, o]}-wrong-{j}")
                for j in range(GUESSERS) for (p, o) in codes]
    rng.shuffle(commands)
    events = system.connections.topic("signgate.authentication.events")
    commands_topic = system.connections.topic("signgate.authentication.commands")
    correlation = _Correlations()
    started = time.perf_counter()
    async with producer(system.connections.kafka_bootstrap) as client:
        sent = [await client.send(commands_topic, encode(c), key=c.package_id.encode())
                for c in commands]
        await asyncio.gather(*sent)
        ids = {str(c.correlation_id) for c in commands}
        await system.watch.wait_for(lambda r: r.topic == events and correlation(r) in ids,
                                    count=len(commands), timeout=120)
        seconds = time.perf_counter() - started
        # The right code afterwards: refused, and, as it is handled after every guess of its
        # package, a fence behind which any second outcome of a guess would already be seen.
        fences = [auth.OpenDocumentWithPassword(package_id=package_ids[p], order=o, invitation=shared[p].invitations[o],
                                                password=code)
                  for (p, o), code in codes.items()]
        for fence in fences:
            await client.send_and_wait(commands_topic, encode(fence),
                                       key=fence.package_id.encode())
        fence_ids = {str(f.correlation_id) for f in fences}
        await system.watch.wait_for(lambda r: r.topic == events and correlation(r) in fence_ids,
                                    count=len(fences), timeout=60)

    outcomes = [json.loads(r.value) for r in system.watch.records
                if r.topic == events and correlation(r) in ids | fence_ids]
    per_command = Counter(o["correlation_id"] for o in outcomes)
    by_recipient: dict[tuple[str, int], Counter[str]] = {}
    lockouts: dict[tuple[str, int], list[int]] = {}
    command_of = {str(c.correlation_id): (c.package_id, c.order) for c in [*commands, *fences]}
    for o in outcomes:
        who = command_of[o["correlation_id"]]
        kind = o["type"] if o["type"] != "command.rejected" else f"rejected {o['status']} {o['code']}"
        by_recipient.setdefault(who, Counter())[kind] += 1
        if o["type"] == "authentication.recipient_locked_out":
            lockouts.setdefault(who, []).append(o["failures"])
    expected = {
        (package_ids[p], o): Counter({k: v for k, v in {
            "authentication.recipient_authentication_failed": r - 1,
            "authentication.recipient_locked_out": 1,
            "rejected 403 recipient_locked": GUESSERS - r + 1,  # the later guesses and the right code
        }.items() if v})
        for (p, o), r in retry.items()
    }
    report("concurrent guessing through the service", recipients=len(codes), guessers_each=GUESSERS,
           guesses=len(commands), outcomes=sum(per_command[i] for i in ids),
           failure_events=sum(c["authentication.recipient_authentication_failed"] for c in by_recipient.values()),
           lockout_events=sum(len(v) for v in lockouts.values()),
           failures_counted=sum(c["authentication.recipient_authentication_failed"]
                                + c["authentication.recipient_locked_out"] for c in by_recipient.values()),
           retry_counts=sum(retry.values()), accepted=sum(c["authentication.recipient_authenticated"]
                                                        for c in by_recipient.values()),
           seconds=round(seconds, 2), guesses_per_second=round(len(commands) / seconds))

    assert set(per_command.values()) == {1}, "every command has exactly one outcome"
    assert by_recipient == expected
    assert lockouts == {(package_ids[p], o): [r] for (p, o), r in retry.items()}


class _Correlations:
    """The correlation id of a watched record, parsed once (the watcher asks after every record)."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, int, int], str | None] = {}

    def __call__(self, record: ConsumerRecord) -> str | None:
        where = (record.topic, record.partition, record.offset)
        if where not in self._known:
            try:
                self._known[where] = json.loads(record.value).get("correlation_id")
            except (ValueError, AttributeError, RecursionError):  # hostile records share the topics
                self._known[where] = None
        return self._known[where]


async def test_a_wrong_secret_counted_again_by_its_command_id_counts_once(
    replicas: list[aioredis.Redis], prefix: str
) -> None:
    """A wrong password counted again under its command's id (a redelivery) gets its first answer
    and leaves the count unchanged; another command's wrong password counts."""
    counter = SecretFailures(replicas[0], prefix)
    package, attempt = f"pkg-{uuid.uuid4().hex[:8]}", uuid.uuid4()

    first = await counter.count(package, 1, 3, attempt)
    again = await counter.count(package, 1, 3, attempt)
    other = await counter.count(package, 1, 3, uuid.uuid4())

    assert first == again == (1, True)
    assert other == (2, True)
    assert await counter.used(package, 1) == 2
