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
==============================  ======  ===============================================  =========================

A claim names its attempt (the command's event id), so the same command delivered again after a
crash gets its acceptance again instead of "used". Losing Redis forgets the last steps: a code
seen in the current window could then be accepted once more, within at most ``2d + 1`` steps.
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

from libs.runtime.redis_client import RedisClient
from libs.runtime.redis_scripts import LuaScripts, hash_tag
from signgate_contracts.identity import TotpAlgorithm

_DIGESTS = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}
SECRET_BYTES = 20
"""160 bits, RFC 4226's recommended key length and what authenticator apps expect."""

SCRIPTS = LuaScripts(__file__, "totp_claim")


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
