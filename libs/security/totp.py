"""Authenticator-app codes (TOTP, RFC 6238, computed by pyotp): which time step a code matches,
and the record that lets each step be used once per subject.

Two services accept these codes: identity (an API user's second factor at AuthenticateUser) and
authentication (a recipient's ``totp`` method: an API user's enrolled authenticator, or a secret
the sender provisioned for the recipient). Both go through `matching_step` and `UsedSteps`, so one
rule decides a match and one Redis record, shared like the OTP store, makes a code single-use for
a subject across both services and all their replicas.

Why a match is a step, not a yes/no: a code is valid for its step and, with a drift window of
``d`` steps, for ``d`` steps either side (clocks of phones drift). Accepting it must spend that
step and every earlier one, or the same code (or an older one still in the window) opens twice.
So `matching_step` says which step matched, and `UsedSteps.claim` atomically raises the subject's
last accepted step, refusing any step at or below it (RFC 6238 section 5.2).

Key layout, under the deployment's Redis prefix ``P``; ``S`` is the subject (``user:<id>`` for an
API user, ``recipient:<package>/<order>`` for a provisioned recipient secret), inside a hash tag:

==============================  ======  ===============================================  =========================
key                             type    value                                            TTL
==============================  ======  ===============================================  =========================
``P totp:{S}:last_step``        string  ``<step>:<claim id>``: the last accepted step     until that step and every
                                        and the attempt that claimed it                  step below it is out of
                                                                                         any drift window
``P totp:{S}:guesses``          zset    attempt id -> when it was counted (ms): the      the guess window after
                                        subject's wrong codes within the guess window    the last one
                                        (`GuessCeiling`)
==============================  ======  ===============================================  =========================

A claim names its attempt (the command's event id), so the same command delivered again after a
crash gets its acceptance again instead of "used". Losing Redis forgets the last steps: a code
seen in the current window could then be accepted once more, within at most ``2d + 1`` steps.

Why a ceiling per subject as well as each party's retry budget: an owner may name any API user
as a recipient's signer, and every package (and every reset) brings a fresh retry budget, so
budgets alone leave a user's authenticator open to unlimited guessing. `GuessCeiling` admits at
most ``guess_ceiling`` codes per subject and ``guess_window_seconds`` that are not found right,
whichever service, package or login they come from; past it, every code for that subject, right or
wrong, is answered ``totp_guesses_exhausted`` (429 with the time to wait, counting nothing else)
until the oldest wrong code leaves the window, so no answer past the ceiling tells anything about
a code. The decision is one script run after the code was compared, so concurrent wrong codes
cannot overshoot; right codes take no place under the ceiling (a burst of one right code is
answered "used", not 429). The same attempt delivered again is admitted again. Losing Redis
forgets the wrong codes: the ceiling starts afresh, the retry budgets and identity's lockout hold.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

import pyotp
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from libs.runtime.errors import Refusal
from libs.runtime.redis_client import RedisClient
from libs.runtime.redis_scripts import LuaScripts, hash_tag
from signgate_contracts.identity import TotpAlgorithm

_DIGESTS = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}
SECRET_BYTES = 20
"""160 bits, RFC 4226's recommended key length and what authenticator apps expect."""

SCRIPTS = LuaScripts(__file__, "totp_claim", "totp_guess")


class TotpSettings(BaseSettings):
    """How authenticator-app codes are checked; shared by identity and authentication."""

    model_config = SettingsConfigDict(env_prefix="SIGNGATE_TOTP_", extra="ignore")

    drift_steps: int = Field(
        1,
        ge=0,
        le=2,
        description="Time steps accepted either side of the current one, for phone clocks that "
        "drift (1: a code is good for about 90 seconds).",
    )
    issuer: str = Field(
        "signgate",
        min_length=1,
        max_length=64,
        description="The issuer an authenticator app shows beside the account (the otpauth URI's).",
    )
    guess_ceiling: int = Field(
        10,
        ge=1,
        le=1000,
        description="Wrong authenticator-app codes answered as wrong per subject (an API user, "
        "or a provisioned recipient secret) within the guess window, from every package, login "
        "and service together; past it, every code for the subject is refused unchecked (429).",
    )
    guess_window_seconds: int = Field(
        900,
        ge=60,
        le=86_400,
        description="The window of the guess ceiling: a wrong code counts against it this long.",
    )


@dataclass(frozen=True)
class TotpParameters:
    """How a secret's codes are made; authenticator apps assume the defaults."""

    digits: int = 6
    algorithm: TotpAlgorithm = "SHA1"
    period: int = 30


def new_secret() -> str:
    """A fresh random secret, base32 (what otpauth URIs and authenticator apps take)."""
    return pyotp.random_base32(length=32)


def secret_from_bytes(raw: bytes) -> str:
    """The base32 text of a raw key (RFC 6238's test keys are given as bytes)."""
    return base64.b32encode(raw).decode()


def _totp(secret: str, parameters: TotpParameters) -> pyotp.TOTP:
    return pyotp.TOTP(
        secret,
        digits=parameters.digits,
        digest=_DIGESTS[parameters.algorithm],
        interval=parameters.period,
    )


def provisioning_uri(
    secret: str, *, account_name: str, issuer: str, parameters: TotpParameters = TotpParameters()
) -> str:
    """The ``otpauth://totp/...`` URI an authenticator app reads (as a QR code): a secret, so it
    goes only to the caller who asked for it."""
    uri: str = _totp(secret, parameters).provisioning_uri(name=account_name, issuer_name=issuer)
    return uri


def current_step(at: datetime, parameters: TotpParameters = TotpParameters()) -> int:
    """The RFC 6238 time step ``T`` at ``at``."""
    return int(at.timestamp()) // parameters.period


def matching_step(
    secret: str,
    code: str,
    at: datetime,
    *,
    parameters: TotpParameters = TotpParameters(),
    drift_steps: int = 1,
) -> int | None:
    """The time step within ``drift_steps`` of ``at`` whose code is ``code``, or None. Every step
    of the window is compared, in constant time, whichever matches."""
    if len(code) != parameters.digits or not code.isascii() or not code.isdigit():
        return None
    totp = _totp(secret, parameters)
    now = current_step(at, parameters)
    matched = None
    for step in range(now - drift_steps, now + drift_steps + 1):
        if hmac.compare_digest(totp.generate_otp(step), code) and matched is None:
            matched = step
    return matched


class UsedSteps:
    """Each subject's last accepted step, in Redis: a step is accepted once, and never again once a
    later one was (see the module's key layout)."""

    def __init__(self, redis: RedisClient, prefix: str) -> None:
        self._prefix = prefix
        self._redis = redis
        self._claim = SCRIPTS.bind(redis)["totp_claim"]

    def key(self, subject: str) -> str:
        return f"{self._prefix}totp:{hash_tag(subject)}:last_step"

    async def claim(
        self,
        subject: str,
        step: int,
        claim_id: str,
        *,
        parameters: TotpParameters = TotpParameters(),
        drift_steps: int = 1,
    ) -> bool:
        """Accept ``step`` for ``subject`` for the attempt ``claim_id``: True if it is later than
        every step accepted before, or if this same attempt accepted it already; False: used."""
        keep_ms = (2 * drift_steps + 2) * parameters.period * 1000
        accepted = await self._claim(keys=[self.key(subject)], args=[step, claim_id, keep_ms])
        return bool(accepted)

    async def used(self, subject: str, step: int) -> bool:
        """Whether ``step`` is at or below the subject's last accepted step: a code of it would be
        refused as used. Reads only; a claim is what accepts."""
        last = await self._redis.get(self.key(subject))
        if last is None:
            return False
        text = last.decode() if isinstance(last, bytes) else str(last)
        return step <= int(text.split(":", 1)[0])


GUESSES_EXHAUSTED = (
    "Too many wrong authenticator-app codes: no code is checked for {seconds} seconds"
)


class TotpGuessesExhausted(Refusal):
    """The subject's ceiling of wrong codes is reached: the code was not checked (so a guess
    learns nothing), whichever package or login it came for."""

    status, code = 429, "totp_guesses_exhausted"

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(
            GUESSES_EXHAUSTED.format(seconds=retry_after_seconds),
            retry_after_seconds=retry_after_seconds,
        )


class GuessCeiling:
    """At most ``guess_ceiling`` wrong codes per subject per window, across every service, package
    and login (see the module's key layout and why). `admit` each code once compared, before its
    answer is decided."""

    def __init__(self, redis: RedisClient, prefix: str, settings: TotpSettings) -> None:
        self._prefix = prefix
        self._settings = settings
        self._admit = SCRIPTS.bind(redis)["totp_guess"]

    def key(self, subject: str) -> str:
        return f"{self._prefix}totp:{hash_tag(subject)}:guesses"

    async def retry_after(
        self, subject: str, attempt_id: str, now: datetime, *, wrong: bool
    ) -> int | None:
        """Count the code of ``attempt_id`` if ``wrong``: None when admitted, else the seconds
        until the ceiling admits another (nothing counted; the answer must not depend on the
        code)."""
        admitted, retry_after_ms = await self._admit(
            keys=[self.key(subject)],
            args=[
                attempt_id,
                int(now.timestamp() * 1000),
                self._settings.guess_window_seconds * 1000,
                self._settings.guess_ceiling,
                1 if wrong else 0,
            ],
        )
        if admitted:
            return None
        return max(-(-int(retry_after_ms) // 1000), 1)

    async def admit(self, subject: str, attempt_id: str, now: datetime, *, wrong: bool) -> None:
        """`retry_after`, raising `TotpGuessesExhausted` (429) past the ceiling: call it after the
        code was compared and before anything is spent or counted, with whether it was wrong
        (``wrong=False`` for a code not compared: only the ceiling is consulted)."""
        seconds = await self.retry_after(subject, attempt_id, now, wrong=wrong)
        if seconds is not None:
            raise TotpGuessesExhausted(seconds)
