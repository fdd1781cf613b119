"""The Redis client every service opens: one that rides out a Redis restart by itself.

``redis.asyncio.Redis.from_url`` gives its pooled connections no retries (the client's default
``Retry`` is applied only when the client builds its own pool), so after a restart every idle
pooled connection fails its next command with "Connection closed by server" before it is
replaced. Retrying connection errors on a fresh connection, with a short backoff, makes the
first command after a restart succeed; a Redis that stays away still fails within a second,
so the message pipeline's own retries and dead letters decide what happens next.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError, TimeoutError

RETRIES = 3
"""Tries after the first: a restart's dead connections are replaced on the first of them."""


def create_redis(url: str) -> aioredis.Redis:
    """A client whose connections retry connection errors and timeouts on a new connection."""
    return aioredis.Redis.from_url(
        url,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), RETRIES),
        retry_on_error=[ConnectionError, TimeoutError],
    )
