"""Redis Cluster's rule for the house's scripts: every key one script (or multi-key command)
touches hashes to one slot, and the slots of different recipients spread over the masters."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.crc import key_slot

from libs.runtime.redis_client import RedisClient
from libs.runtime.redis_scripts import LuaScripts
from libs.runtime.settings import ConnectionSettings
from libs.security import otp_store, totp
from libs.security.otp_store import Issued, OtpRecipient, OtpStore, SendLimits, SendRefused
from services.authentication import failures as authentication_failures
from services.authentication.failures import SecretFailures
from services.identity import failures as identity_failures
from services.identity.failures import FailureCounters
from tests.support.redis import redis_client

PEPPER = "test-pepper-0123456789abcdef"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
EVERY_SCRIPT: dict[str, LuaScripts] = {
    "otp store": otp_store._SCRIPTS,
    "identity failures": identity_failures.SCRIPTS,
    "authentication failures": authentication_failures._SCRIPTS,
    "totp steps": totp.SCRIPTS,
}


@dataclass(frozen=True)
class Call:
    """One script (by SHA) or multi-key command (by name) and the keys it was given."""

    what: str
    keys: tuple[str, ...]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Call]]:
    """Every script run and every DEL made from now on, with its keys."""
    seen: list[Call] = []
    run = AsyncScript.__call__

    async def recorded(self: AsyncScript, keys: Any = None, args: Any = None, client: Any = None) -> Any:
        seen.append(Call(self.sha, tuple(_text(k) for k in keys or ())))
        return await run(self, keys=keys, args=args, client=client)

    monkeypatch.setattr(AsyncScript, "__call__", recorded)
    yield seen


@pytest.fixture
async def client(redis_connections: ConnectionSettings) -> AsyncIterator[RedisClient]:
    async with redis_client(redis_connections) as opened:
        yield opened


def watch_deletes(client: RedisClient, calls: list[Call], monkeypatch: pytest.MonkeyPatch) -> None:
    delete = client.delete

    async def recorded(*names: Any) -> Any:
        calls.append(Call("DEL", tuple(_text(n) for n in names)))
        return await delete(*names)

    monkeypatch.setattr(client, "delete", recorded)


async def test_every_key_of_every_script_call_hashes_to_one_slot(
    client: RedisClient, redis_connections: ConnectionSettings, calls: list[Call],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issuing (allowed, refused, repeated), verifying, settling, status, reset, and the identity
    and authentication counters run every script of the house, and each call's keys share one
    slot (on a cluster: the slot the server itself computes)."""
    watch_deletes(client, calls, monkeypatch)
    prefix = f"{redis_connections.redis_prefix}slots-{uuid.uuid4().hex[:8]}:"
    store = OtpStore(client, prefix=prefix, pepper=PEPPER, clock=lambda: T0)
    who, request = OtpRecipient.document_opening(f"pkg-{uuid.uuid4().hex[:8]}", 1), uuid.uuid4()
    issued = await store.issue(request, who, challenge_id=uuid.uuid4(), code="123456", channel="sms",
                               destination="+447700900123", ttl=timedelta(minutes=5), now=T0)
    refused = await store.issue(uuid.uuid4(), who, challenge_id=uuid.uuid4(), code="654321", channel="sms",
                                destination="+447700900123", ttl=timedelta(minutes=5), now=T0)
    await store.issue(request, who, challenge_id=uuid.uuid4(), code="123456", channel="sms",
                      destination="+447700900123", ttl=timedelta(minutes=5), now=T0)
    await store.verify_and_consume(who, "000000", retry_count=3, attempt=uuid.uuid4())
    await store.status(who)
    await store.settle(request, who, '{"sent": true}')
    await store.reset(who)
    counters = FailureCounters(client, prefix, timedelta(days=1))
    await counters.record_failure("Some}{User", uuid.uuid4(), threshold=5, hard_after=100)
    await counters.clear("Some}{User")
    secrets = SecretFailures(client, prefix)
    await secrets.count("pkg-}{", 1, 3, uuid.uuid4())
    await secrets.satisfy("pkg-}{", 1, "password")
    await secrets.reset("pkg-}{", 1)
    await totp.UsedSteps(client, prefix).claim("user:}{", 7, "attempt-1")
    await totp.GuessCeiling(client, prefix, totp.TotpSettings()).retry_after(
        "user:}{", "attempt-2", T0, wrong=True
    )

    assert isinstance(issued, Issued) and isinstance(refused, SendRefused)
    every_sha = {script.sha for scripts in EVERY_SCRIPT.values() for script in scripts.bind(client).values()}
    assert {call.what for call in calls} >= every_sha | {"DEL"}
    for call in calls:
        assert len({key_slot(key.encode()) for key in call.keys}) == 1, call
    if isinstance(client, RedisCluster):
        for key in {key for call in calls for key in call.keys}:
            assert await client.cluster_keyslot(key) == key_slot(key.encode()), key


async def test_the_keys_of_different_recipients_spread_over_the_three_masters(
    cluster_connections: ConnectionSettings, calls: list[Call],
) -> None:
    """On the cluster, forty recipients' codes sit on all three masters, each recipient's keys on
    the master the client routes its slot to: the cluster is really spread, not one slot."""
    async with redis_client(cluster_connections) as client:
        assert isinstance(client, RedisCluster)
        prefix = f"{cluster_connections.redis_prefix}spread-{uuid.uuid4().hex[:8]}:"
        store = OtpStore(client, prefix=prefix, pepper=PEPPER, clock=lambda: T0)
        for n in range(40):
            who = OtpRecipient.document_opening(f"pkg-{uuid.uuid4().hex[:8]}", n)
            issued = await store.issue(uuid.uuid4(), who, challenge_id=uuid.uuid4(), code="123456",
                                       channel="sms", destination=f"+4477009{n:05d}", ttl=timedelta(minutes=5),
                                       limits=SendLimits(), now=T0)
            assert isinstance(issued, Issued)
        issue_sha = otp_store._SCRIPTS.bind(client)["otp_issue"].sha
        challenges = [call.keys[1] for call in calls if call.what == issue_sha]
        masters = {node.name for node in client.get_primaries()}
        holders: set[str] = set()
        for key in challenges:
            node = client.get_node_from_key(key)
            direct = aioredis.Redis(host=node.host, port=node.port)
            try:
                assert await direct.exists(key) == 1, key
            finally:
                await direct.aclose()
            holders.add(node.name)

    assert len(challenges) == 40 and len(masters) == 3
    assert holders == masters


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
