"""Rate limits per credential and per client address: one fixed-window counter each, in Redis.

Counted by `rate_limit.lua` atomically (increment, set the window's expiry, say how long is left).
A credential is named in its key only by a digest: no token or API key is written to Redis.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from libs.runtime.redis_client import RedisClient
from libs.runtime.redis_scripts import LuaScripts, hash_tag

SCRIPTS = LuaScripts(__file__, "rate_limit")


@dataclass(frozen=True)
class Limit:
    """At most ``requests`` per ``window_seconds`` for one subject of one kind."""

    kind: str
    requests: int
    window_seconds: int


def limit_key(prefix: str, kind: str, subject: str) -> str:
    """The counter of one subject: its digest in a hash tag (one slot on a cluster)."""
    digest = hashlib.sha256(subject.encode()).hexdigest()
    return f"{prefix}gateway:rate:{kind}:{hash_tag(digest)}"


def retry_after(milliseconds: int) -> int:
    """Whole seconds until the window ends, at least 1 (Retry-After's unit)."""
    return max(math.ceil(milliseconds / 1000), 1)


class RateLimiter:
    """Counts a request against each of its subjects' limits."""

    def __init__(self, redis: RedisClient, prefix: str) -> None:
        self.prefix = prefix
        self._count = SCRIPTS.bind(redis)["rate_limit"]

    async def exceeded(self, checks: list[tuple[Limit, str]]) -> int | None:
        """Seconds to wait when a limit is exceeded (the first one found), else None."""
        for limit, subject in checks:
            allowed, value = await self._count(
                keys=[limit_key(self.prefix, limit.kind, subject)],
                args=[limit.requests, limit.window_seconds * 1000],
            )
            if not int(allowed):
                return retry_after(int(value))
        return None
