"""Rules of OTP dispatch, without I/O: codes, what a delivery says, and how limits are refused."""

from __future__ import annotations

import math
import secrets
from datetime import timedelta

from libs.security.otp_store import SendLimit

MIN_CODE_LENGTH, MAX_CODE_LENGTH, DEFAULT_CODE_LENGTH = 6, 9, 6


def generate_code(length: int = DEFAULT_CODE_LENGTH) -> str:
    """A uniformly random code of ``length`` decimal digits (leading zeros kept), from the OS CSPRNG."""
    if not MIN_CODE_LENGTH <= length <= MAX_CODE_LENGTH:
        raise ValueError(f"a code has {MIN_CODE_LENGTH} to {MAX_CODE_LENGTH} digits, not {length}")
    return f"{secrets.randbelow(10**length):0{length}d}"


_PURPOSE_TEXT = {
    "document_opening": "to open your document",
    "signing": "to sign your document",
}


def delivery_text(code: str, purpose: str, ttl: timedelta) -> str:
    """The SMS or email body: the code, what it is for, how long it lasts, and not to share it."""
    minutes = max(1, math.ceil(ttl.total_seconds() / 60))
    unit = "minute" if minutes == 1 else "minutes"
    return (
        f"Your signgate code {_PURPOSE_TEXT.get(purpose, '')} is {code}. "
        f"It expires in {minutes} {unit}. Do not share it with anyone."
    ).replace("  ", " ")


def email_subject(purpose: str) -> str:
    """The subject line; never the code (subjects show on lock screens and in mail lists)."""
    return "Your signgate code to sign" if purpose == "signing" else "Your signgate code"


_REFUSALS: dict[str, tuple[str, str]] = {
    "cooldown": (
        "otp_resend_cooldown",
        "A code was sent a moment ago; a new one can be requested in {seconds} seconds.",
    ),
    "recipient": (
        "otp_recipient_send_limit",
        "Too many codes were sent to this recipient; a new one can be requested in {seconds} seconds.",
    ),
    "destination": (
        "otp_destination_send_limit",
        "Too many codes were sent to this phone number or email address; "
        "a new one can be requested in {seconds} seconds.",
    ),
}


def send_refusal(limit: SendLimit, retry_after_seconds: int) -> tuple[str, str]:
    """The stable rejection code and the 429 message for a spent send limit."""
    code, text = _REFUSALS[limit]
    return code, text.format(seconds=retry_after_seconds)
