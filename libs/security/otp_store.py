"""The shared OTP store: issued by otp-dispatch, verified and consumed by authentication.

This module and its Lua scripts (``otp_*.lua`` beside it) are the only code that touches these
keys. Redis holds only an HMAC-SHA256 digest of each code, keyed with a pepper both services share
(``SIGNGATE_OTP_PEPPER``), so a copy of Redis does not give the codes away. Losing Redis
loses every pending code: they no longer verify (fail closed); durable lockouts are the
authentication service's, in Postgres.

Every time is passed in by the caller (``now``, default: the store's clock) rather than read
from Redis's clock, so tests inject time. Key layout, all under the deployment's Redis
prefix ``P`` (``signgate:``); ``R`` is a recipient's id (`OtpRecipient.id`), ``D`` an HMAC of
a normalised destination and, for voice, its channel (no phone number or address appears in a
key; a number's texts and calls are counted apart, each against the destination limit). The part in braces is
the key's hash tag: on Redis Cluster only it decides the slot, so every key of one recipient
sits in one slot (``{R}``) and a destination's count in its own (``{D}``):

==================================  ======  ===========================================  ==================
key                                 type    value                                        TTL
==================================  ======  ===========================================  ==================
``P otp:{R}:challenge``             hash    challenge_id, digest, issued_at, expires_at  the code's TTL
                                            (epoch ms), channel, destination (masked)    (<= 10 min)
``P otp:{R}:failures``              string  wrong codes since the last success or        failure memory
                                            reset; a new code does not reset it          (7 d), refreshed
``P otp:{R}:cooldown``              string  epoch ms when the recipient may be sent      the cooldown
                                            again
``P otp:{R}:sends``                 zset    challenge id -> sent at (ms), sliding window recipient window
``P otp:{R}:request:<event id>``    hash    state (claimed | refused | settled), the     1 d
                                            challenge id, the refusal or the outcome
``P otp:{R}:attempt:<event id>``    string  the answer a verification got (JSON), so     attempt memory
                                            the command delivered again gets it again    (1 h)
``P otp:dest:{D}:sends``            zset    request id -> sent at (ms), sliding window   destination window
==================================  ======  ===========================================  ==================

A request and an attempt name one recipient (a redelivery is the same message), so their
records live in that recipient's slot. Every script but one touches one recipient's keys only.
The destination's limit spans recipients, so issuing a code is two atomic steps, one per slot:

1. ``otp_reserve.lua`` (slot ``{D}``): the request takes a place in the destination's window
   (its id is the member), unless the window is full (the refusal carries when a place frees)
   or the request holds a place already (an earlier delivery of it got this far);
2. ``otp_issue.lua`` (slot ``{R}``): claim the request, check the cooldown and the recipient's
   window, then the first step's verdict, and issue; a request seen before changes nothing.

Why the send limit still holds: a code is issued only by step 2, only after step 1 gave its
request a place, and step 1 admits at most ``per_destination`` requests per window, atomically.
A request whose step 2 refuses (or finds it refused before) gives its place back (a ``ZREM``):
it can never issue, since its refusal is recorded and every later delivery of it reads that
record. A request that issued keeps its place (a redelivery finds it held and does not count it
again). What the split costs: between the two steps a request that is then refused (cooldown,
recipient limit) holds a place, so a concurrent request to the same destination may be refused
for a place that is given back a moment later; a crash between a refusal and its give-back
leaves the place taken until it leaves the window, and so does a request delivered again after
its place left the window. All err on the side of sending less (fail closed). The refusal order
is as it was: cooldown, then the recipient's window, then the destination's.

Verifying stays one script on one slot, the recipient's (its code, its failures, the attempt's
memo), so a code is still used once and concurrent guesses still get no more than the ceiling.
Until the keys had hash tags they were ``P otp:R:...``, ``P otp:dest:D:sends``,
``P otp:request:<id>`` and ``P otp:attempt:<id>``; those are not read, and expire: an upgrade
starts with no pending code and empty windows, as a flushed Redis does.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Literal
from uuid import UUID

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from libs.runtime.redis_client import RedisClient
from libs.runtime.redis_scripts import LuaScripts
from libs.security.masking import mask_destination
from signgate_contracts.envelope import Clock, utc_now  # one clock for every module
from signgate_contracts.otp import MAX_TTL_SECONDS, OtpDeliveryRequested, Purpose

MAX_TTL = timedelta(seconds=MAX_TTL_SECONDS)
"""No code verifies more than ten minutes after it was issued, whatever TTL it was given."""

_SCRIPTS = LuaScripts(
    __file__, "otp_reserve", "otp_issue", "otp_verify", "otp_settle", "otp_status", "otp_reset"
)


class OtpStoreSettings(BaseSettings):
    """The secret both OTP services share; set ``SIGNGATE_OTP_PEPPER`` to the same value in both."""

    model_config = SettingsConfigDict(env_prefix="SIGNGATE_OTP_", extra="ignore")

    pepper: SecretStr | None = Field(
        None,
        description="HMAC key of OTP digests, at least 32 random bytes; the services that "
        "use it refuse to start without it (there is no default).",
    )

    @field_validator("pepper")
    @classmethod
    def _long_enough(cls, pepper: SecretStr | None) -> SecretStr | None:
        if pepper is not None and len(pepper.get_secret_value()) < 16:
            raise ValueError("the OTP pepper must be at least 16 characters")
        return pepper


@dataclass(frozen=True)
class OtpRecipient:
    """Whom a code is for: a recipient opening a package, or a user signing one field.

    Use the constructors; the request and the verification must name the recipient alike.
    """

    package_id: str
    purpose: Purpose
    order: int | None = None
    user_id: str | None = None
    document_id: str | None = None
    field_name: str | None = None

    @classmethod
    def document_opening(cls, package_id: str, order: int) -> OtpRecipient:
        return cls(package_id, "document_opening", order=order)

    @classmethod
    def signing(
        cls, package_id: str, user_id: str, document_id: str, field_name: str
    ) -> OtpRecipient:
        return cls(
            package_id, "signing", user_id=user_id, document_id=document_id, field_name=field_name
        )

    @classmethod
    def of(cls, request: OtpDeliveryRequested) -> OtpRecipient:
        """The recipient a delivery request is for."""
        if request.purpose == "signing":
            assert request.user_id and request.document_id and request.field_name
            return cls.signing(
                request.package_id, request.user_id, request.document_id, request.field_name
            )
        assert request.order is not None
        return cls.document_opening(request.package_id, request.order)

    @property
    def id(self) -> str:
        """A fixed-length, key-safe name of the recipient (whatever characters its ids hold)."""
        canonical = json.dumps(
            [
                self.purpose,
                self.package_id,
                self.order,
                self.user_id,
                self.document_id,
                self.field_name,
            ],
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class SendLimits:
    """How often codes may be sent: to one recipient, and to one phone or mailbox overall."""

    resend_cooldown: timedelta = timedelta(seconds=30)
    per_recipient: int = 5
    recipient_window: timedelta = timedelta(hours=24)
    per_destination: int = 10
    """Across every package: the guard against SMS pumping."""
    destination_window: timedelta = timedelta(hours=1)


@dataclass(frozen=True)
class Issued:
    """A new code is pending for the recipient; any earlier one is gone."""

    challenge_id: UUID
    issued_at: datetime
    expires_at: datetime
    resend_available_at: datetime
    sends_used: int
    sends_remaining: int


SendLimit = Literal["cooldown", "recipient", "destination"]


@dataclass(frozen=True)
class SendRefused:
    """A send limit is spent; ``retry_at`` is when that limit allows a send again."""

    limit: SendLimit
    retry_at: datetime
    refused_at: datetime

    @property
    def retry_after_seconds(self) -> int:
        """Whole seconds from the refusal until ``retry_at``, rounded up (at least 1)."""
        return max(1, math.ceil((self.retry_at - self.refused_at).total_seconds()))


@dataclass(frozen=True)
class SeenBefore:
    """The request was handled before (a redelivery); nothing was issued or counted now.

    ``state`` is ``refused`` (``refusal`` says why), ``settled`` (``outcome`` is the event
    recorded with `OtpStore.settle`), or ``claimed``: a code was issued but no outcome
    recorded, so an earlier attempt stopped midway (or is still running elsewhere).
    """

    state: Literal["claimed", "refused", "settled"]
    challenge_id: UUID | None = None
    outcome: str | None = None
    refusal: SendRefused | None = None


_EARLIER_OUTCOMES = {"locked": "spent", "locked_now": "wrong"}
"""What `otp_verify.lua` answered before it left the lockout to its caller, as an attempt's memo
(kept an hour) may still hold it."""


class VerifyOutcome(StrEnum):
    OK = "ok"
    WRONG = "wrong"
    EXPIRED = "expired"
    NO_PENDING = "no_pending"
    LOCKED = "locked"


@dataclass(frozen=True)
class Verification:
    """The result of one submitted code.

    ``attempts_used`` counts wrong codes since the last success or reset, across codes.
    ``outcome`` is LOCKED both when the retry count was already spent (nothing was checked
    or counted) and when this wrong code spent the last attempt: ``locked_now`` tells them
    apart, so the caller records and publishes the lockout once.
    """

    outcome: VerifyOutcome
    attempts_used: int
    attempts_remaining: int
    locked_now: bool = False
    challenge_id: UUID | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is VerifyOutcome.OK

    @property
    def spent(self) -> bool:
        """The retry count was spent before this submission: nothing was checked or counted."""
        return self.outcome is VerifyOutcome.LOCKED and not self.locked_now


@dataclass(frozen=True)
class PendingChallenge:
    challenge_id: UUID
    issued_at: datetime
    expires_at: datetime
    channel: str
    destination: str
    """Masked."""


@dataclass(frozen=True)
class OtpStatus:
    """What the store knows of a recipient, for status queries; no digest, no destination in clear."""

    failures: int
    pending: PendingChallenge | None
    resend_available_at: datetime | None
    """When the cooldown ends, if it has not; the send-count limits may still refuse."""


class OtpStore:
    """The OTP keys of one deployment (one Redis prefix), under one pepper."""

    def __init__(
        self,
        redis: RedisClient,
        *,
        prefix: str,
        pepper: str | SecretStr | None,
        clock: Clock = utc_now,
        failure_memory: timedelta = timedelta(days=7),
        request_memory: timedelta = timedelta(days=1),
        attempt_memory: timedelta = timedelta(hours=1),
    ) -> None:
        if pepper is None:
            raise ValueError("SIGNGATE_OTP_PEPPER is not set")
        secret = pepper.get_secret_value() if isinstance(pepper, SecretStr) else pepper
        if len(secret) < 16:
            raise ValueError("the OTP pepper must be at least 16 characters")
        self._pepper = secret.encode()
        self._prefix = f"{prefix}otp:"
        self._redis = redis
        self._scripts = _SCRIPTS.bind(redis)
        self._clock = clock
        self._failure_memory_ms = _ms(failure_memory)
        self._request_memory_ms = _ms(request_memory)
        self._attempt_memory_ms = _ms(attempt_memory)

    def __repr__(self) -> str:
        return f"OtpStore(prefix={self._prefix!r})"

    # -- digests and keys --

    def digest(self, recipient: OtpRecipient, code: str) -> str:
        """HMAC-SHA256 of a code, bound to its recipient, under the pepper (hex)."""
        message = f"signgate-otp-v1\x00{recipient.id}\x00{code.strip()}".encode()
        return hmac.new(self._pepper, message, hashlib.sha256).hexdigest()

    def _destination_id(self, channel: str, destination: str) -> str:
        """A keyed name of one destination on one channel: a number's texts and its calls count
        apart (sms and email destinations never meet, so theirs keep the name they had)."""
        name = destination.strip().lower()
        if channel not in ("sms", "email"):
            name = f"{channel}\x00{name}"
        message = f"signgate-otp-destination-v1\x00{name}".encode()
        return hmac.new(self._pepper, message, hashlib.sha256).hexdigest()[:32]

    def _recipient_keys(self, recipient: OtpRecipient) -> tuple[str, str, str, str]:
        """challenge, failures, cooldown, sends: one slot, the recipient's."""
        base = self._recipient_base(recipient)
        return f"{base}:challenge", f"{base}:failures", f"{base}:cooldown", f"{base}:sends"

    def _recipient_base(self, recipient: OtpRecipient) -> str:
        return f"{self._prefix}{{{recipient.id}}}"

    def _request_key(self, recipient: OtpRecipient, request_id: UUID) -> str:
        return f"{self._recipient_base(recipient)}:request:{request_id}"

    def _attempt_key(self, recipient: OtpRecipient, attempt: UUID) -> str:
        return f"{self._recipient_base(recipient)}:attempt:{attempt}"

    def _destination_key(self, channel: str, destination: str) -> str:
        return f"{self._prefix}dest:{{{self._destination_id(channel, destination)}}}:sends"

    # -- otp-dispatch --

    async def issue(
        self,
        request_id: UUID,
        recipient: OtpRecipient,
        *,
        challenge_id: UUID,
        code: str,
        channel: str,
        destination: str,
        ttl: timedelta,
        limits: SendLimits = SendLimits(),
        now: datetime | None = None,
    ) -> Issued | SendRefused | SeenBefore:
        """Claim delivery request ``request_id`` and make ``code`` the recipient's pending code.

        Two atomic steps (the module's docstring says why that keeps the limits): a place in
        the destination's window, then, on the recipient's keys, the claim. A request seen
        before changes nothing (`SeenBefore`); a spent limit refuses (`SendRefused`, remembered
        for redeliveries); otherwise the code's digest replaces any pending code of the
        recipient, and the send is counted (`Issued`).
        """
        if not timedelta(0) < ttl <= MAX_TTL:
            raise ValueError(f"an OTP lives more than 0 s and at most {MAX_TTL_SECONDS} s")
        now = now or self._clock()
        now_ms = _ms_at(now)
        challenge, _failures, cooldown, sends = self._recipient_keys(recipient)
        destination_sends = self._destination_key(channel, destination)
        verdict, *when = _strings(
            await self._scripts["otp_reserve"](
                keys=[destination_sends],
                args=[
                    now_ms,
                    str(request_id),
                    limits.per_destination,
                    _ms(limits.destination_window),
                ],
            )
        )
        reply = await self._scripts["otp_issue"](
            keys=[self._request_key(recipient, request_id), challenge, cooldown, sends],
            args=[
                now_ms,
                str(challenge_id),
                self.digest(recipient, code),
                now_ms + _ms(ttl),
                _ms(ttl),
                _ms(limits.resend_cooldown),
                limits.per_recipient,
                _ms(limits.recipient_window),
                when[0] if verdict == "refused" else "",
                self._request_memory_ms,
                channel,
                mask_destination(channel, destination),
            ],
        )
        kind, *rest = _strings(reply)
        if kind == "duplicate":
            seen = _seen_before(dict(zip(rest[::2], rest[1::2], strict=True)))
            if seen.state == "refused" and verdict != "refused":
                await self._give_back(destination_sends, request_id)
            return seen
        if kind == "refused":
            if verdict != "refused":
                await self._give_back(destination_sends, request_id)
            limit, retry_at = rest
            return SendRefused(limit, _at_ms(retry_at), now)  # type: ignore[arg-type]
        sends_used = int(rest[0])
        return Issued(
            challenge_id=challenge_id,
            issued_at=now,
            expires_at=now + ttl,
            resend_available_at=now + limits.resend_cooldown,
            sends_used=sends_used,
            sends_remaining=max(0, limits.per_recipient - sends_used),
        )

    async def _give_back(self, destination_sends: str, request_id: UUID) -> None:
        """A refused request's place in the destination's window: it will never issue a code."""
        await self._redis.zrem(destination_sends, str(request_id))

    async def settle(
        self,
        request_id: UUID,
        recipient: OtpRecipient,
        outcome: str,
        *,
        withdraw: UUID | None = None,
    ) -> str:
        """Record the outcome of request ``request_id`` once; returns the outcome that stands.

        ``withdraw`` names a challenge to delete with it (an undelivered code), which happens
        only if that challenge is still the recipient's pending one and no outcome was
        recorded before. ``outcome`` must not contain the code.
        """
        challenge, *_ = self._recipient_keys(recipient)
        stored = await self._scripts["otp_settle"](
            keys=[self._request_key(recipient, request_id), challenge],
            args=[outcome, str(withdraw) if withdraw else "", self._request_memory_ms],
        )
        return _text(stored)

    # -- authentication --

    async def verify_and_consume(
        self,
        recipient: OtpRecipient,
        code: str | SecretStr,
        *,
        retry_count: int,
        now: datetime | None = None,
        attempt: UUID | None = None,
    ) -> Verification:
        """Check a submitted code against the recipient's pending one, atomically.

        A matching code is consumed (single use) and resets the failure count; a wrong one is
        counted, up to ``retry_count`` (the ceiling the caller works out: for a recipient who
        also has a password, what the password's failures have left; 0 refuses at once), and
        the one that reaches it signals the lockout (``locked_now``) and withdraws the code.
        Once ``retry_count`` failures are counted, every submission answers LOCKED without
        checking, until `reset`. Expired codes and submissions with no pending code are not
        counted as failures. ``attempt`` (the id of the command that submits the code) makes a
        repeat harmless: the same attempt again gets its first answer and changes nothing.
        """
        if retry_count < 0:
            raise ValueError("retry_count must not be negative")
        submitted = code.get_secret_value() if isinstance(code, SecretStr) else code
        challenge, failures, *_ = self._recipient_keys(recipient)
        reply = await self._scripts["otp_verify"](
            keys=[
                challenge,
                failures,
                *([self._attempt_key(recipient, attempt)] if attempt else []),
            ],
            args=[
                self.digest(recipient, submitted),
                retry_count,
                _ms_at(now or self._clock()),
                _ms(MAX_TTL),
                self._failure_memory_ms,
                self._attempt_memory_ms,
            ],
        )
        kind, used_text, challenge_text = _strings(reply)
        kind = _EARLIER_OUTCOMES.get(kind, kind)
        used = int(used_text)
        challenge_id = UUID(challenge_text) if challenge_text else None
        if kind == "spent":
            return Verification(VerifyOutcome.LOCKED, used, 0, challenge_id=challenge_id)
        if kind == "wrong" and used >= retry_count:
            return Verification(
                VerifyOutcome.LOCKED, used, 0, locked_now=True, challenge_id=challenge_id
            )
        return Verification(
            VerifyOutcome(kind), used, max(0, retry_count - used), challenge_id=challenge_id
        )

    async def failures(self, recipient: OtpRecipient) -> int:
        """The recipient's wrong codes since the last success or reset."""
        _challenge, failures, *_ = self._recipient_keys(recipient)
        return int(await self._redis.get(failures) or 0)

    async def status(self, recipient: OtpRecipient, *, now: datetime | None = None) -> OtpStatus:
        """The recipient's failure count, pending code (if still valid) and cooldown."""
        now = now or self._clock()
        challenge, failures, cooldown, _sends = self._recipient_keys(recipient)
        reply = await self._scripts["otp_status"](keys=[challenge, failures, cooldown], args=[])
        failures_text, cooldown_text, challenge_id, issued_at, expires_at, channel, destination = (
            _strings(reply)
        )
        pending = None
        if challenge_id and _at_ms(expires_at) > now and now - _at_ms(issued_at) < MAX_TTL:
            pending = PendingChallenge(
                UUID(challenge_id), _at_ms(issued_at), _at_ms(expires_at), channel, destination
            )
        resend_at = _at_ms(cooldown_text) if cooldown_text else None
        return OtpStatus(
            failures=int(failures_text),
            pending=pending,
            resend_available_at=resend_at if resend_at and resend_at > now else None,
        )

    async def reset(self, recipient: OtpRecipient) -> int:
        """Clear the recipient's pending code, failures, cooldown and send count (the sender's
        unlock); the destination's count stays. Returns the failures there were."""
        return int(
            await self._scripts["otp_reset"](keys=list(self._recipient_keys(recipient)), args=[])
        )


def _seen_before(record: dict[str, str]) -> SeenBefore:
    state = record.get("state", "claimed")
    challenge_id = UUID(record["challenge_id"]) if record.get("challenge_id") else None
    if state == "refused":
        refusal = SendRefused(record["limit"], _at_ms(record["retry_at"]), _at_ms(record["at"]))  # type: ignore[arg-type]
        return SeenBefore("refused", refusal=refusal)
    if state == "settled":
        return SeenBefore("settled", challenge_id, outcome=record.get("outcome"))
    return SeenBefore("claimed", challenge_id)


def _ms(duration: timedelta) -> int:
    return int(duration.total_seconds() * 1000)


def _ms_at(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return int(moment.timestamp() * 1000)


def _at_ms(text: str | int) -> datetime:
    return datetime.fromtimestamp(int(text) / 1000, UTC)


def _text(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _strings(reply: list[bytes | str | int]) -> list[str]:
    return [_text(item) for item in reply]
