"""The fallback schedule: deliveries that fall back to the next channel unless a receipt comes.

A delivery whose recipient's policy allows fallback is put here when its provider takes it but
reports delivery later (an SMS gateway's delivery receipt), due when the receipt timeout ends;
or, due at once, when its provider refuses it. Whoever claims a due entry (the request's handler
for a refusal, a replica's sweep for a missing receipt) runs the fallback; a claim is a lease,
so a replica that stops midway leaves the entry to be claimed again once the lease ends, and
the fallback's request (its event id derived from the failed one's) is idempotent in the OTP
store: a second run repeats the first run's outcome and sends nothing more. So a restart loses
no fallback, and two replicas never send two.

Key layout, under the deployment's Redis prefix ``P``; every key sits in one slot (``{fallback}``),
so each script stays atomic on Redis Cluster (fallbacks are rare: one slot carries them):

====================================  ======  ==========================================  =============
key                                   type    value                                       TTL
====================================  ======  ==========================================  =============
``P otp:{fallback}:due``              zset    challenge id -> when it falls back (ms)     none (entries
                                                                                          leave as done)
``P otp:{fallback}:<challenge id>``   hash    state (awaiting | delivered | claimed |     record memory
                                              done), reason, plan: the request, sealed    (1 d)
====================================  ======  ==========================================  =============

The plan is the failed delivery's request, destinations and all, so it is sealed (AES-GCM under a
key derived from the OTP pepper, bound to the challenge id): a copy of Redis holds no phone number
or address in clear. A plan that does not open (sealed under a pepper since rotated, which also
voids every pending code) is dropped: that delivery does not fall back (fail closed).
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr

from libs.runtime.logging import get_logger
from libs.runtime.redis_client import RedisClient
from libs.runtime.redis_scripts import LuaScripts
from signgate_contracts.otp import FallbackReason, OtpDeliveryRequested

log = get_logger(__name__)

_SCRIPTS = LuaScripts(
    __file__, "fallback_watch", "fallback_receipt", "fallback_claim", "fallback_done"
)


@dataclass(frozen=True)
class ClaimedFallback:
    """A due fallback this process holds the lease of: the failed request, and why it failed."""

    failed: OtpDeliveryRequested
    reason: FallbackReason


class FallbackSchedule:
    """The fallback schedule of one deployment (one Redis prefix)."""

    def __init__(
        self,
        redis: RedisClient,
        *,
        prefix: str,
        pepper: str | SecretStr,
        record_memory: timedelta = timedelta(days=1),
    ) -> None:
        secret = pepper.get_secret_value() if isinstance(pepper, SecretStr) else pepper
        key = HKDF(hashes.SHA256(), 32, salt=None, info=b"signgate-otp-fallback-plan-v1").derive(
            secret.encode()
        )
        self._aead = AESGCM(key)
        self._redis = redis
        self._scripts = _SCRIPTS.bind(redis)
        self._base = f"{prefix}otp:{{fallback}}:"
        self._record_memory_ms = _ms(record_memory)

    def __repr__(self) -> str:
        return f"FallbackSchedule(prefix={self._base!r})"

    def _keys(self, challenge_id: UUID) -> list[str]:
        return [f"{self._base}due", f"{self._base}{challenge_id}"]

    async def watch(
        self, failed: OtpDeliveryRequested, *, reason: FallbackReason, due: datetime
    ) -> str:
        """Schedule the fallback of ``failed``'s delivery at ``due``, unless it is scheduled or
        its receipt came already; returns the delivery's state (`fallback_watch.lua`)."""
        state = await self._scripts["fallback_watch"](
            keys=self._keys(failed.challenge_id),
            args=[
                str(failed.challenge_id),
                _ms_at(due),
                self._seal(failed),
                reason,
                self._record_memory_ms,
            ],
        )
        return _text(state)

    async def receipt(self, challenge_id: UUID, *, delivered: bool, now: datetime) -> str:
        """A provider's delivery receipt: a delivered message will not fall back, an undelivered
        one falls back now; returns the state before ('' when none)."""
        state = await self._scripts["fallback_receipt"](
            keys=self._keys(challenge_id),
            args=[
                str(challenge_id),
                "delivered" if delivered else "undelivered",
                _ms_at(now),
                self._record_memory_ms,
            ],
        )
        return _text(state)

    async def due(self, now: datetime, *, limit: int = 100) -> list[UUID]:
        """The challenges whose fallback is due (claimed ones whose lease ended too), oldest first."""
        members = await self._redis.zrangebyscore(
            f"{self._base}due", "-inf", _ms_at(now), start=0, num=limit
        )
        return [
            UUID(member.decode() if isinstance(member, bytes) else str(member))
            for member in members
        ]

    async def claim(
        self, challenge_id: UUID, *, now: datetime, lease: timedelta
    ) -> ClaimedFallback | None:
        """The fallback of ``challenge_id`` for this process until ``now + lease``, if it is due
        and nobody holds it."""
        reply = await self._scripts["fallback_claim"](
            keys=self._keys(challenge_id), args=[str(challenge_id), _ms_at(now), _ms(lease)]
        )
        if not reply:
            return None
        plan, reason = (_text(part) for part in reply)
        try:
            failed = self._open(challenge_id, plan)
        except (InvalidTag, ValueError) as error:  # sealed under an earlier pepper, or not a plan
            log.warning(
                "fallback plan unreadable; dropped",
                challenge_id=str(challenge_id),
                reason=type(error).__name__,
            )
            await self.done(challenge_id)
            return None
        return ClaimedFallback(failed, reason)  # type: ignore[arg-type]

    async def done(self, challenge_id: UUID) -> None:
        """The fallback of ``challenge_id`` has its outcome: off the schedule, its plan erased."""
        await self._scripts["fallback_done"](
            keys=self._keys(challenge_id), args=[str(challenge_id)]
        )

    def _seal(self, request: OtpDeliveryRequested) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(
            nonce, request.model_dump_json().encode(), str(request.challenge_id).encode()
        )
        return base64.b64encode(nonce + sealed).decode()

    def _open(self, challenge_id: UUID, plan: str) -> OtpDeliveryRequested:
        raw = base64.b64decode(plan)
        opened = self._aead.decrypt(raw[:12], raw[12:], str(challenge_id).encode())
        return OtpDeliveryRequested.model_validate_json(opened)


def _ms(duration: timedelta) -> int:
    return int(duration.total_seconds() * 1000)


def _ms_at(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _text(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
