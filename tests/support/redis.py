"""Redis clients for tests, on one server or a cluster as the connections say."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from libs.runtime.redis_client import RedisClient, open_redis
from libs.runtime.settings import ConnectionSettings


@asynccontextmanager
async def redis_client(connections: ConnectionSettings) -> AsyncIterator[RedisClient]:
    """The services' own kind of client on the connections' Redis (a cluster client on a cluster)."""
    client = await open_redis(connections.redis_url, cluster=connections.redis_cluster)
    try:
        yield client
    finally:
        await client.aclose()
