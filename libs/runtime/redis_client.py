"""The Redis client every service opens: one that rides out a Redis restart by itself.

``redis.asyncio.Redis.from_url`` gives its pooled connections no retries (the client's default
``Retry`` is applied only when the client builds its own pool), so after a restart every idle
pooled connection fails its next command with "Connection closed by server" before it is
replaced. Retrying connection errors on a fresh connection, with a short backoff, makes the
first command after a restart succeed; a Redis that stays away still fails within a second,
so the message pipeline's own retries and dead letters decide what happens next.

With ``SIGNGATE_REDIS_CLUSTER=true`` the URL names one node of a Redis Cluster (or Valkey
cluster): the client learns the others from it, sends each command (a script's ``EVALSHA``
too, by its first key) to the master of its keys' slot, follows ``MOVED``/``ASK`` redirections,
and retries connection errors and timeouts the same number of times with the same backoff.
Every script of the house keeps its keys in one slot (hash tags), so none spans masters.
`open_redis` learns the cluster's layout before the first command: redis-py 8.1's async cluster
client, left to learn it on first use, fails commands that arrive together while it does
('NoneType' object has no attribute 'writelines').
"""

from __future__ import annotations

from typing import TypeAlias

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError, TimeoutError

RETRIES = 3
"""Tries after the first: a restart's dead connections are replaced on the first of them."""

RedisClient: TypeAlias = aioredis.Redis | RedisCluster
"""One Redis server's client or a cluster's: the house uses only what both offer alike."""


def create_redis(url: str, *, cluster: bool = False) -> RedisClient:
    """A client whose connections retry connection errors and timeouts on a new connection;
    a cluster client when ``cluster`` (``url`` then names any one node of the cluster)."""
    retry = Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), RETRIES)
    if cluster:
        return RedisCluster.from_url(
            url, retry=retry, retry_on_error=[ConnectionError, TimeoutError]
        )
    return aioredis.Redis.from_url(url, retry=retry, retry_on_error=[ConnectionError, TimeoutError])


async def open_redis(url: str, *, cluster: bool = False) -> RedisClient:
    """`create_redis`'s client, a cluster's with its slots and masters learnt already (so a
    cluster that does not answer fails the start, as Postgres does)."""
    client = create_redis(url, cluster=cluster)
    if isinstance(client, RedisCluster):
        try:
            await client.initialize()
        except BaseException:
            await client.aclose()
            raise
    return client


async def ping(client: RedisClient) -> bool:
    """Whether Redis answers: on a cluster, every master (a master that is down leaves its slots'
    keys unreachable however well the others answer)."""
    if isinstance(client, RedisCluster):
        return bool(await client.ping(target_nodes=RedisCluster.PRIMARIES))
    return bool(await client.ping())
