"""The outbox relays of several replicas of one service, draining one outbox onto the real broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import uuid
from collections import defaultdict

import asyncpg

from libs.runtime.messaging.broker import create_broker
from libs.runtime.messaging.outbox import OutboxRelay, insert_outbox_records
from libs.runtime.messaging.publisher import Publication, Publisher
from libs.runtime.postgres import create_pool
from libs.runtime.settings import ConnectionSettings
from libs.tools.topics_admin import create_topics
from signgate_contracts.topics import WORKFLOW_EVENTS
from tests.support.kafka import TopicWatcher

RELAYS = 3
KEYS = 40
ROWS_PER_KEY = 40


OVERSIZED = 2 * 1024 * 1024
"""Bytes of a record no broker here takes (the producer's and Kafka's default limit is 1 MiB)."""


async def test_relays_of_several_replicas_publish_each_keys_rows_in_the_order_of_the_rows(
    provisioned: ConnectionSettings,
) -> None:
    """Three relays, each with its own pool and producer, draining a backlog of one outbox at once (as
    the replicas of a service do after a broker outage), put each key's records on the broker in
    the order of their rows, every row once at least, and leave the outbox empty; a record too
    large for the broker among them is dead-lettered, with its reason and without its payload."""
    schema = f"relay_{uuid.uuid4().hex[:8]}"
    connections = provisioned.model_copy(update={"topic_prefix": f"{provisioned.topic_prefix}{schema}."})
    await create_topics(connections, [WORKFLOW_EVENTS])  # six partitions, keyed like a package's events
    topic = connections.topic(WORKFLOW_EVENTS.name)
    setup = await asyncpg.connect(provisioned.database_url)
    try:
        await setup.execute(f"CREATE SCHEMA {schema}")
        await setup.execute(f"CREATE TABLE {schema}.outbox (LIKE workflow.outbox INCLUDING ALL)")
    finally:
        await setup.close()
    rng = random.Random(16)
    rows = [f"k{key:02d}" for key in range(KEYS) for _ in range(ROWS_PER_KEY)]
    rng.shuffle(rows)
    numbered: dict[str, int] = defaultdict(int)
    backlog = []
    for key in rows:
        backlog.append(Publication(topic, key.encode(), json.dumps({"key": key, "n": numbered[key]}).encode(),
                                   {"type": "test.row"}))
        numbered[key] += 1
    backlog.insert(RELAYS * 10, Publication(topic, b"big", b'{"big": "' + b"x" * OVERSIZED + b'"}',
                                            {"type": "test.big", "correlation_id": "c-big"}))
    pools = [await create_pool(provisioned.database_url, schema, max_size=2) for _ in range(RELAYS)]
    async with contextlib.AsyncExitStack() as stack:
        for pool in pools:
            stack.push_async_callback(pool.close)
        async with pools[0].acquire() as connection, connection.transaction():
            await insert_outbox_records(connection, backlog)
        relays = []
        for n in range(RELAYS):
            broker = create_broker(f"relay-{n}", connections)
            await broker.connect()
            stack.push_async_callback(broker.stop)
            relays.append(OutboxRelay(pools[n], Publisher(broker, connections, service="workflow"), batch=200))
        dlq = connections.topic(WORKFLOW_EVENTS.dlq)
        watch = await stack.enter_async_context(TopicWatcher(connections.kafka_bootstrap, topic, dlq))
        for _ in range(3):  # a relay whose flush failed tries again on its next tick
            failures = await asyncio.gather(*(relay.flush() for relay in relays), return_exceptions=True)
        left = await pools[0].fetchval("SELECT count(*) FROM outbox")
        await watch.wait_for(lambda r: r.topic == topic, count=len(backlog) - 1, timeout=30)
        records = [r for r in watch.records if r.topic == topic]
        dead = [json.loads(r.value) for r in watch.records if r.topic == dlq]

    seen: dict[str, list[int]] = defaultdict(list)
    for record in records:
        body = json.loads(record.value)
        if body["n"] not in seen[body["key"]]:
            seen[body["key"]].append(body["n"])
    out_of_order = {key: ns for key, ns in seen.items() if ns != sorted(ns)}
    assert [f for f in failures if isinstance(f, BaseException)] == []
    assert left == 0
    assert [(d["reason"], d["type"], d["correlation_id"], d["payload"], d["payload_size"]) for d in dead] == [
        ("the record is larger than the broker accepts", "test.big", "c-big", None, OVERSIZED + len(b"{\"big\": \"\"}"))]
    assert {key: len(ns) for key, ns in seen.items()} == {f"k{key:02d}": ROWS_PER_KEY for key in range(KEYS)}
    assert out_of_order == {}
