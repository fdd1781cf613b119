"""The embedded stack itself: real servers from wheels, restartable on the same data, leaving nothing."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import psutil
import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient

from libs.devstack.embedded import EmbeddedStack


async def test_servers_answer_and_postgres_data_survives_a_restart(tmp_path: Path) -> None:
    """All three servers answer on loopback; Postgres keeps its data across a stop and start; a stopped
    stack leaves no process behind."""
    stack = EmbeddedStack(tmp_path)
    urls = stack.start()
    pids = [server.process.pid for server in stack.servers if server.process]
    try:
        connection = await asyncpg.connect(urls["postgres"])
        await connection.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")
        await connection.close()
        client = aioredis.Redis.from_url(urls["redis"])
        assert await client.ping()
        await client.aclose()
        admin = AIOKafkaAdminClient(bootstrap_servers=urls["kafka"])
        await admin.start()
        assert isinstance(await admin.list_topics(), list)
        await admin.close()
        hosts = {urlsplit(url if "//" in url else f"//{url}").hostname for url in urls.values()}
        assert hosts == {"127.0.0.1"}
    finally:
        stack.stop()
    assert not [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]

    with EmbeddedStack(tmp_path, kafka=False, redis=False) as again:
        connection = await asyncpg.connect(again.urls["postgres"])
        assert await connection.fetchval("SELECT n FROM kept") == 42
        await connection.close()
