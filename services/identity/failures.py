"""Failed-authentication counters of the identity service, in Redis.

Key layout (this module is the only code that touches these keys), under the deployment's
Redis prefix ``P``; ``{N}`` is the hash tag of a normalised user name
(`libs.runtime.redis_scripts.hash_tag`), so on Redis Cluster both keys of one name sit in one
slot and the script that touches them runs on one master:

    P identity:{N}:failures
        hash: run   failures since the last lock (or success, or unlock)
              total failures in a row
        TTL:  the failure memory (renewed by every failure)

    P identity:{N}:failure_answer:<attempt id>
        string, JSON [run, total, lock]: what counting this attempt answered, so a redelivered
        attempt counts once and gets the same answer. TTL: one day. (An attempt names one user
        name, so its answer lives in that name's slot.)

Until the keys had hash tags they were ``P identity:failures:<name>`` and
``P identity:failure_answer:<attempt>``; those are not read, and expire: an upgrade starts every
name's run of failures again, as a flushed Redis does (the total in a row has its floor in
Postgres, and the lock is Postgres's).

Counting and deciding a lock is one Lua script, so concurrent attempts can never slip
past the threshold. Unknown user names are counted the same way as known ones (nothing
about the answer or its cost may tell them apart). Redis is not the record of a lock:
Postgres is (a flushed Redis unlocks nobody); the total in a row is mirrored there too.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from libs.runtime.redis_client import RedisClient
from libs.runtime.redis_scripts import LuaScripts, hash_tag

SCRIPTS = LuaScripts(__file__, "record_failure")
ATTEMPT_MEMORY_SECONDS = 86_400


@dataclass(frozen=True)
class FailureCount:
    run: int
    total: int
    locks: bool
    """This failure reached the threshold (or the cap of failures in a row)."""


class FailureCounters:
    """The failure counters of one deployment (its Redis key prefix)."""

    def __init__(self, redis: RedisClient, prefix: str, memory: timedelta) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl = max(1, int(memory.total_seconds()))
        self._record = SCRIPTS.bind(redis)["record_failure"]

    def key(self, user_name: str) -> str:
        return f"{self._prefix}identity:{hash_tag(user_name)}:failures"

    def answer_key(self, user_name: str, attempt: uuid.UUID) -> str:
        return f"{self._prefix}identity:{hash_tag(user_name)}:failure_answer:{attempt}"

    async def record_failure(
        self,
        user_name: str,
        attempt: uuid.UUID,
        *,
        threshold: int,
        hard_after: int,
        durable_total: int = 0,
    ) -> FailureCount:
        """Count the failed ``attempt`` (its event id) once, and say whether it locks."""
        run, total, locks = await self._record(
            keys=[self.key(user_name), self.answer_key(user_name, attempt)],
            args=[threshold, hard_after, durable_total, self._ttl, ATTEMPT_MEMORY_SECONDS],
        )
        return FailureCount(int(run), int(total), bool(locks))

    async def clear(self, user_name: str) -> None:
        """A success or an unlock: the run of failures is over."""
        await self._redis.delete(self.key(user_name))
