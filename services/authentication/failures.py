"""Wrong passwords, access codes and authenticator-app codes counted per recipient, atomically in Redis.

Key layout, under the deployment's Redis prefix ``P``; ``{T}`` is the hash tag of a recipient
(`libs.runtime.redis_scripts.hash_tag` of its package id and order), so on Redis Cluster every
key of one recipient sits in one slot and each script or multi-key command runs on one master:

- ``P auth:{T}:failures``: a string counting wrong secrets since the last success or reset,
  kept for a week after the last failure. (Wrong one-time passwords are counted by the shared
  OTP store, with its code.) The lock itself is durable in Postgres; this count only decides
  when to take it.
- ``P auth:{T}:totp_failures``: the same for wrong authenticator-app codes (method totp): a
  right password does not clear it, nor a right code the password's.
- ``P auth:{T}:satisfied``: the set of methods the recipient has passed in the last ten
  minutes, for recipients who must pass several (a password and an SMS OTP).
- ``P auth:{T}:failure_attempt:<event id>``: the reply the counting of one command's wrong
  secret got (JSON, the memo format of every count-and-memo script), for an hour (the commands
  topic's retention): the command delivered again (after a crash, before its outcome was
  committed) gets it again and counts nothing. A command names one recipient, so its memo
  lives in that recipient's slot.

Until the keys had hash tags they were ``P auth:failures:<package>:<order>``,
``P auth:satisfied:<package>:<order>`` and ``P auth:failure_attempt:<event id>``; those are not
read, and expire: an upgrade forgets counts below the lock and methods passed, as a flushed
Redis does.

What a count means (the retry count it shares with wrong codes, when it locks) is
`domain.RecipientAttempts`'s; the script only counts up to the ceiling it is given.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal
from uuid import UUID

from libs.runtime.redis_client import RedisClient
from libs.runtime.redis_scripts import LuaScripts, hash_tag

_SCRIPTS = LuaScripts(__file__, "count_failure", "satisfy")
FAILURE_MEMORY = timedelta(days=7)
SATISFIED_MEMORY = timedelta(minutes=10)
ATTEMPT_MEMORY = timedelta(hours=1)
Counted = Literal["secret", "totp"]
"""The kinds of wrong attempt counted here (`domain.AttemptKind` less the OTP store's)."""
_COUNTERS: dict[Counted, str] = {"secret": "failures", "totp": "totp_failures"}


class SecretFailures:
    """The wrong-secret counters of one deployment."""

    def __init__(self, redis: RedisClient, prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{prefix}auth:"
        scripts = _SCRIPTS.bind(redis)
        self._count = scripts["count_failure"]
        self._satisfy = scripts["satisfy"]

    def _base(self, package_id: str, order: int) -> str:
        return f"{self._prefix}{hash_tag(package_id, str(order))}"

    def _key(self, package_id: str, order: int, kind: Counted = "secret") -> str:
        return f"{self._base(package_id, order)}:{_COUNTERS[kind]}"

    def _satisfied(self, package_id: str, order: int) -> str:
        return f"{self._base(package_id, order)}:satisfied"

    async def count(
        self,
        package_id: str,
        order: int,
        ceiling: int,
        attempt: UUID | None = None,
        kind: Counted = "secret",
    ) -> tuple[int, bool]:
        """Count one failure, unless the count holds ``ceiling`` already (what the recipient's
        retry count leaves it: `domain.RecipientAttempts.ceiling`), and once per ``attempt`` (the
        command's id); returns (failures, whether this one was counted)."""
        memo = [f"{self._base(package_id, order)}:failure_attempt:{attempt}"] if attempt else []
        used, counted = await self._count(
            keys=[self._key(package_id, order, kind), *memo],
            args=[ceiling, _ms(FAILURE_MEMORY), _ms(ATTEMPT_MEMORY)],
        )
        return int(used), bool(counted)

    async def used(self, package_id: str, order: int, kind: Counted = "secret") -> int:
        return int(await self._redis.get(self._key(package_id, order, kind)) or 0)

    async def succeeded(self, package_id: str, order: int, kind: Counted = "secret") -> None:
        """The right secret (or code): forget its failures, but not the methods passed (an OTP
        passed first still counts towards a grant that needs both)."""
        await self._redis.delete(self._key(package_id, order, kind))

    async def satisfy(self, package_id: str, order: int, method: str) -> set[str]:
        """Record a passed method; returns every method passed within the memory window."""
        members = await self._satisfy(
            keys=[self._satisfied(package_id, order)], args=[method, _ms(SATISFIED_MEMORY)]
        )
        return {m.decode() if isinstance(m, bytes) else m for m in members}

    async def reset(self, package_id: str, order: int) -> None:
        """The sender's unlock: forget failures and passed methods (one slot: one command)."""
        await self._redis.delete(
            self._key(package_id, order, "secret"),
            self._key(package_id, order, "totp"),
            self._satisfied(package_id, order),
        )


def _ms(duration: timedelta) -> int:
    return int(duration.total_seconds() * 1000)
