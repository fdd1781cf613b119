"""Migrations, the outbox relay and Lua scripts against the session's real Postgres and Redis."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import asyncpg
import pytest

from libs.runtime.messaging.outbox import CLAIM_OLDEST, OutboxRelay, insert_outbox_records
from libs.runtime.messaging.outgoing import Outgoing
from libs.runtime.messaging.processed import claim_processed_messages
from libs.runtime.messaging.publisher import Publication, headers
from libs.runtime.messaging.savepoint import SavepointOnWrite
from libs.runtime.migrations import MigrationError, migrate, read_track
from libs.runtime.postgres import create_pool
from libs.runtime.redis_scripts import LuaScripts
from libs.runtime.settings import ConnectionSettings
from signgate_contracts import CommandRejected
from tests.support.redis import redis_client


class Outlet:
    """The relay's way out, in memory: ``send_many`` takes a batch or raises for all of it."""

    def __init__(self, send_many) -> None:
        self.send_many = send_many

    async def send_each(self, records: list[Publication]) -> list[Exception | None]:
        try:
            await self.send_many(records)
        except Exception as error:
            return [error] * len(records)
        return [None] * len(records)

    async def absent(self, _topics: set[str]) -> set[str]:
        return set()

    def unpublishable(self, record: Publication, reason: str) -> Publication:
        raise AssertionError(f"nothing here is unpublishable: {reason}")


def write_track(folder: Path, *sqls: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for number, sql in enumerate(sqls, start=1):
        (folder / f"{number:03d}_step_{number}.sql").write_text(sql)
    return folder


def schema_name() -> str:
    return f"m_{uuid.uuid4().hex[:8]}"


async def test_migrations_apply_once_in_order(database_url: str, tmp_path: Path) -> None:
    """Numbered migrations are applied in order and a second run applies nothing."""
    schema = schema_name()
    track = read_track(schema, write_track(tmp_path, "CREATE TABLE a (id int)", "ALTER TABLE a ADD b text"))

    first = await migrate(database_url, schema, [track])
    second = await migrate(database_url, schema, [track])

    assert [m.version for m in first] == [1, 2] and second == []
    connection = await asyncpg.connect(database_url)
    try:
        columns = await connection.fetch(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = $1 AND table_name = 'a' ORDER BY ordinal_position",
            schema,
        )
    finally:
        await connection.close()
    assert [c["column_name"] for c in columns] == ["id", "b"]


async def test_concurrent_migrations_serialise_on_the_advisory_lock(database_url: str, tmp_path: Path) -> None:
    """Three replicas migrating at once apply each migration exactly once."""
    schema = schema_name()
    track = read_track(schema, write_track(tmp_path, "CREATE TABLE t (id int)", "CREATE TABLE u (id int)"))

    results = await asyncio.gather(*(migrate(database_url, schema, [track]) for _ in range(3)))

    assert sorted(len(applied) for applied in results) == [0, 0, 2]


async def test_a_database_ahead_of_the_code_is_refused(database_url: str, tmp_path: Path) -> None:
    """A schema with a migration the code does not know is refused, and nothing is applied."""
    schema = schema_name()
    newer = read_track(schema, write_track(tmp_path / "new", "CREATE TABLE x (id int)", "CREATE TABLE y (id int)"))
    older = newer[:1]
    await migrate(database_url, schema, [newer])

    with pytest.raises(MigrationError, match="ahead of this code"):
        await migrate(database_url, schema, [older])


async def test_an_edited_applied_migration_is_refused(database_url: str, tmp_path: Path) -> None:
    """Changing a migration after it was applied is caught by its checksum."""
    schema = schema_name()
    await migrate(database_url, schema, [read_track(schema, write_track(tmp_path / "a", "CREATE TABLE x (id int)"))])
    edited = read_track(schema, write_track(tmp_path / "b", "CREATE TABLE x (id bigint)"))

    with pytest.raises(MigrationError, match="was changed"):
        await migrate(database_url, schema, [edited])


def test_gaps_in_numbering_are_refused(tmp_path: Path) -> None:
    """A migration folder that skips a number is refused before touching the database."""
    (tmp_path / "001_a.sql").write_text("SELECT 1")
    (tmp_path / "003_c.sql").write_text("SELECT 1")

    with pytest.raises(MigrationError, match="expected version 002"):
        read_track("t", tmp_path)


async def test_processed_message_claim_is_once_per_consumer(provisioned: ConnectionSettings) -> None:
    """An event id is claimed once per consumer, even when a batch repeats it; another consumer may
    claim it too."""
    pool = await create_pool(provisioned.database_url, "identity")
    first, second = uuid.uuid4(), uuid.uuid4()
    try:
        async with pool.acquire() as connection:
            claims = [
                await claim_processed_messages(connection, "identity", [first, first]),
                await claim_processed_messages(connection, "identity", [first, second]),
                await claim_processed_messages(connection, "other", [first]),
                await claim_processed_messages(connection, "other", []),
            ]
    finally:
        await pool.close()
    assert claims == [{first}, {second}, {first}, set()]


async def test_outbox_relay_publishes_in_order_and_forgets_what_it_sent(provisioned: ConnectionSettings) -> None:
    """Queued messages are sent in insertion order, deleted once sent, and a failed send leaves
    them queued for the next flush."""
    pool = await create_pool(provisioned.database_url, "workflow")
    sent: list[tuple[str, bytes]] = []
    broken = True

    async def send(records: list[Publication]) -> None:
        if broken:
            raise ConnectionError("broker away")
        sent.extend((topic, payload) for topic, _key, payload, _headers in records)

    messages = [
        Outgoing("signgate.workflow.events", "p1", CommandRejected(status=404, code="c", message=f"m{n}"))
        for n in range(3)
    ]
    try:
        async with pool.acquire() as connection, connection.transaction():
            await insert_outbox_records(connection, map(as_published, messages))
        relay = OutboxRelay(pool, Outlet(send))
        with pytest.raises(ConnectionError):
            await relay.flush()
        assert await pool.fetchval("SELECT count(*) FROM outbox") == 3

        broken = False
        assert await relay.flush() == 3
        assert await pool.fetchval("SELECT count(*) FROM outbox") == 0
    finally:
        await pool.close()
    assert [payload for _, payload in sent] == [m.payload for m in messages]


async def test_concurrent_flushes_share_the_work_and_publish_each_message_once(
    provisioned: ConnectionSettings,
) -> None:
    """Handlers finishing together share flushes: every message committed before a flush call
    is published by the time that call returns, once, through batched sends (the order of rows is
    the sequential test's above)."""
    pool = await create_pool(provisioned.database_url, "authentication")
    batches: list[list[bytes]] = []
    callers = 20
    flushing = 0
    all_flushing = asyncio.Event()

    async def send_many(records) -> None:
        # The broker holds the first batch until every caller has asked for a flush, so the
        # callers pile up behind the one in progress.
        await asyncio.wait_for(all_flushing.wait(), timeout=20)
        batches.append([payload for _topic, _key, payload, _headers in records])

    relay = OutboxRelay(pool, Outlet(send_many))

    async def handler(n: int) -> None:
        message = Outgoing("signgate.authentication.events", "p", CommandRejected(status=404, code="c", message=f"m{n}"))
        async with pool.acquire() as connection, connection.transaction():
            await insert_outbox_records(connection, [as_published(message)])
        nonlocal flushing
        flushing += 1
        if flushing == callers:
            all_flushing.set()
        await relay.flush()
        sent = [payload for batch in batches for payload in batch]
        assert message.payload in sent  # published before flush returned

    try:
        await pool.execute("DELETE FROM outbox")
        await asyncio.gather(*(handler(n) for n in range(callers)))
        left = await pool.fetchval("SELECT count(*) FROM outbox")
    finally:
        await pool.close()
    sent = [payload for batch in batches for payload in batch]
    assert left == 0 and len(sent) == len(set(sent)) == callers
    assert len(batches) < callers  # shared: fewer flushes than callers


async def test_the_relays_claim_stays_one_pass_over_an_outbox_analysed_while_empty(
    provisioned: ConnectionSettings,
) -> None:
    """Planned on statistics that say the outbox is empty (autovacuum's usual view of a queue), the
    relay's claim of a backlog is one index scan, not a join that runs the claim again per row."""
    connection = await asyncpg.connect(provisioned.database_url)
    try:
        await connection.execute("SET search_path TO authentication")
        await connection.execute("CREATE TEMP TABLE outbox (LIKE authentication.outbox INCLUDING ALL)")
        await connection.execute("INSERT INTO pg_temp.outbox (topic, payload) SELECT 't', 'x' FROM generate_series(1, 2000)")
        await connection.execute("DELETE FROM pg_temp.outbox")
        await connection.execute("ANALYZE pg_temp.outbox")
        await connection.execute("INSERT INTO pg_temp.outbox (topic, payload) SELECT 't', 'x' FROM generate_series(1, 300)")
        await connection.execute("SET plan_cache_mode = force_generic_plan")
        await connection.execute(f"PREPARE claim(int) AS {CLAIM_OLDEST.replace('outbox', 'pg_temp.outbox')}")
        async with connection.transaction():
            [plan] = json.loads(await connection.fetchval("EXPLAIN (FORMAT JSON) EXECUTE claim(500)"))
    finally:
        await connection.close()

    def node_types(node: dict) -> list[str]:
        return [node["Node Type"], *(t for child in node.get("Plans", []) for t in node_types(child))]

    types = node_types(plan["Plan"])
    assert not [t for t in types if "Join" in t or "Loop" in t], types
    assert types.count("Index Scan") == 2  # the claim, once; the delete, by the claimed ids


async def test_lua_scripts_load_from_files_and_survive_a_script_flush(redis_connections: ConnectionSettings) -> None:
    """A script from a .lua file runs atomically by SHA and is reloaded after the server (every
    master of a cluster) forgets it."""
    async with redis_client(redis_connections) as client:
        script = LuaScripts(str(Path(__file__).parent / "lua" / "x.py"), "bounded_counter").bind(client)["bounded_counter"]
        key = f"{redis_connections.redis_prefix}counter:{uuid.uuid4().hex}"
        results = await asyncio.gather(*(script(keys=[key], args=[3, 60]) for _ in range(10)))
        await client.script_flush()
        after_flush = await script(keys=[key], args=[5, 60])
        ttl = await client.ttl(key)
    assert sorted(results) == [-1] * 7 + [1, 2, 3]
    assert after_flush == 4 and 0 < ttl <= 60


async def test_a_record_that_refuses_after_writing_leaves_nothing_and_a_reader_opens_no_savepoint(
    database_url: str,
) -> None:
    """In a lane's transaction, a record's writes are undone alone when it fails (however many
    records wrote before it), a record that only reads opens no savepoint, and a record that
    succeeds keeps its writes."""
    connection = await asyncpg.connect(database_url)
    table = f"lane_{uuid.uuid4().hex[:8]}"
    try:
        await connection.execute(f"CREATE TEMP TABLE {table} (n int)")
        async with connection.transaction():
            kept = SavepointOnWrite(connection)
            await kept.execute(f"INSERT INTO {table} VALUES (1)")

            refused = SavepointOnWrite(connection)
            with pytest.raises(RuntimeError):
                try:
                    await refused.execute(f"INSERT INTO {table} VALUES (2)")
                    raise RuntimeError("refused after writing")
                except BaseException:
                    await refused.rollback()
                    raise

            reader = SavepointOnWrite(connection)
            assert await reader.fetchval(f"SELECT count(*) FROM {table}") == 1
            assert not reader.wrote
            await reader.rollback()  # nothing to undo: the lane's transaction goes on

            later = SavepointOnWrite(connection)  # savepoints share a name: each undoes only its own
            await later.execute(f"INSERT INTO {table} VALUES (3)")
            last = SavepointOnWrite(connection)
            await last.execute(f"INSERT INTO {table} VALUES (4)")
            await last.rollback()
        assert sorted(r["n"] for r in await connection.fetch(f"SELECT n FROM {table}")) == [1, 3]
    finally:
        await connection.close()


def as_published(outgoing: Outgoing) -> Publication:
    """The outbox row of ``outgoing`` on an unprefixed deployment."""
    return Publication(outgoing.topic, outgoing.key.encode(), outgoing.payload, headers(outgoing))
