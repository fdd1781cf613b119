"""A service process killed while handling a record gets that record again when it restarts."""

from __future__ import annotations

from pathlib import Path

import redis.asyncio as aioredis

from libs.runtime.settings import ConnectionSettings
from signgate_contracts import encode
from tests.integration.conftest import prepare_ledger
from tests.integration.ledger.app import COMMANDS, EVENTS, Deposit, armed_key, entered_key
from tests.support.kafka import TopicWatcher, producer
from tests.support.processes import ServiceProcess, service_env
from tests.support.waiting import until

FACTORY = "tests.integration.ledger.app:create_app"


async def test_record_unacknowledged_at_a_crash_is_handled_after_restart(
    provisioned: ConnectionSettings, tmp_path: Path
) -> None:
    """A SIGKILL in the middle of a handler loses nothing: after restart the record is handled,
    once, and the record behind it on the partition too."""
    connections = provisioned.model_copy(update={"topic_prefix": f"{provisioned.topic_prefix}crash."})
    await prepare_ledger(connections)
    env = service_env(connections, SIGNGATE_LEDGER_RETRY_FIRST_DELAY="0.01",
                      SIGNGATE_LEDGER_SESSION_TIMEOUT_MS="3000", SIGNGATE_LEDGER_HEARTBEAT_INTERVAL_MS="500")
    first = Deposit(account="crash", amount=1, behaviour="hang")
    second = Deposit(account="crash", amount=2)
    redis = aioredis.Redis.from_url(connections.redis_url)
    await redis.set(armed_key(connections.redis_prefix, first.event_id), 1)

    async with TopicWatcher(connections.kafka_bootstrap, connections.topic(EVENTS.name)) as watch:
        service = ServiceProcess(FACTORY, env, tmp_path / "first.log").start()
        try:
            async with producer(connections.kafka_bootstrap) as client:
                for command in (first, second):
                    await client.send_and_wait(connections.topic(COMMANDS.name), encode(command), key=b"crash")
            await until(lambda: redis.exists(entered_key(connections.redis_prefix, first.event_id)),
                        timeout=60, what="the service signalling, through Redis, that it is inside the handler")
            service.kill()
            assert not watch.records, "nothing may be published by a handler that never finished"

            restarted = ServiceProcess(FACTORY, env, tmp_path / "second.log").start()
            try:
                first_outcome = await watch.outcome(first.correlation_id, timeout=60)
                second_outcome = await watch.outcome(second.correlation_id, timeout=60)
            finally:
                restarted.stop()
        finally:
            service.stop()
            await redis.aclose()

    assert first_outcome["type"] == second_outcome["type"] == "ledger.deposited"
    deposits = [r for r in watch.records if b'"ledger.deposited"' in r.value]
    assert len(deposits) == 2
