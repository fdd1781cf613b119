"""Rules of OTP dispatch, without I/O: codes, what a delivery is handed (its text from
`message_templates`), what each request's outcome is (sent, failed, interrupted, refused, fallen
back), which code is withdrawn with it, and which channel a failed delivery falls back to."""

from __future__ import annotations

import dataclasses
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import TypedDict
from uuid import UUID

from libs.security.masking import mask_destination
from libs.security.otp_store import Issued, SendLimit, SendLimits, SendRefused
from services.otp_dispatch.message_templates import MessageTemplates
from services.otp_dispatch.providers import Delivery, DeliveryFailed, Receipt
from signgate_contracts import CommandRejected
from signgate_contracts.otp import (
    Channel,
    FallbackReason,
    OtpDeliveryFailed,
    OtpDeliveryRequested,
    OtpFallbackStarted,
    OtpSent,
    Purpose,
)

MIN_CODE_LENGTH, MAX_CODE_LENGTH, DEFAULT_CODE_LENGTH = 6, 9, 6


def generate_code(length: int = DEFAULT_CODE_LENGTH) -> str:
    """A uniformly random code of ``length`` decimal digits (leading zeros kept), from the OS CSPRNG."""
    if not MIN_CODE_LENGTH <= length <= MAX_CODE_LENGTH:
        raise ValueError(f"a code has {MIN_CODE_LENGTH} to {MAX_CODE_LENGTH} digits, not {length}")
    return f"{secrets.randbelow(10**length):0{length}d}"


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


def refusal(request: OtpDeliveryRequested, refused: SendRefused) -> CommandRejected:
    """The 429 answering a request refused by a send limit, with the seconds to wait."""
    seconds = refused.retry_after_seconds
    code, text = send_refusal(refused.limit, seconds)
    return CommandRejected(
        status=429,
        code=code,
        message=text,
        command_type=request.type,
        command_event_id=request.event_id,
        retry_after_seconds=seconds,
    )


def delivery_of(
    request: OtpDeliveryRequested,
    code: str,
    ttl: timedelta,
    issued: Issued,
    templates: MessageTemplates,
) -> Delivery:
    """What the channel's provider is handed for a code just issued: the message of the request's
    channel and purpose, in the recipient's locale, with the sender's brand."""
    message = templates.render(
        request.channel,
        request.purpose,
        code=code,
        ttl=ttl,
        locale=request.locale,
        brand=request.brand_name,
    )
    return Delivery(
        challenge_id=request.challenge_id,
        channel=request.channel,
        destination=request.destination,
        code=code,
        text=message.text,
        subject=message.subject,
        purpose=request.purpose,
        expires_at=issued.expires_at,
        html=message.html,
    )


INTERRUPTED = "delivery interrupted; outcome unknown"


@dataclass(frozen=True)
class FallbackOf:
    """What makes a request a fallback's, and what its code's outcome says of it: the challenge whose
    delivery failed, why, and whether the request was answered already (an earlier code of the
    chain was `OtpSent`, then not delivered): then the outcome is a fact, not a second answer."""

    failed_challenge_id: UUID
    reason: FallbackReason
    answered_before: bool


def fallback_after(
    failed: UUID, reason: FallbackReason, of: FallbackOf | None, *, answered: bool
) -> FallbackOf:
    """The mark of the fallback of a delivery (itself a fallback's when ``of``): ``answered`` when
    that delivery was the request's `OtpSent` (a missing or undelivered receipt), so the request was
    answered whatever comes next; a delivery refused at once leaves it as the one before it did."""
    return FallbackOf(failed, reason, answered or (of is not None and of.answered_before))


def _marks(of: FallbackOf | None) -> _Marks:
    """The fallback fields of a code's outcome; their defaults for a request's own code."""
    if of is None:
        return {"fallback_of": None, "fallback_reason": None, "answered_before": False}
    return {
        "fallback_of": of.failed_challenge_id,
        "fallback_reason": of.reason,
        "answered_before": of.answered_before,
    }


@dataclass(frozen=True)
class Settlement:
    """The outcome to record (and publish) for a request, and the challenge to withdraw with it."""

    outcome: OtpSent | OtpDeliveryFailed | OtpFallbackStarted
    withdraw: UUID | None
    """An undelivered code's challenge: it must not verify."""
    fallback: OtpDeliveryRequested | None = None
    """The request that delivers a new code by the next channel, when this one fell back."""


def delivery_outcome(
    request: OtpDeliveryRequested,
    provider: str,
    issued: Issued,
    result: Receipt | DeliveryFailed,
    fallback_provider: str | None = None,
    of: FallbackOf | None = None,
) -> Settlement:
    """A delivered code is `OtpSent` (when it expires, when a resend is allowed, sends left); an
    undelivered one is withdrawn, and is `OtpFallbackStarted` when the request names a channel to
    fall back to (``fallback_provider`` delivers by it), else `OtpDeliveryFailed` with the
    provider's reason. A fallback's (``of``) outcome says so."""
    if isinstance(result, DeliveryFailed):
        after = fallback_request(request)
        if after is not None and fallback_provider is not None:
            started = fallback_started(request, after, fallback_provider, "provider_refused")
            return Settlement(started, withdraw=request.challenge_id, fallback=after)
        failed = OtpDeliveryFailed(
            **_about(request, provider),
            **_marks(of),
            reason=result.reason,
            resend_available_at=issued.resend_available_at,
        )
        return Settlement(failed, withdraw=request.challenge_id)
    sent = OtpSent(
        **_about(request, provider),
        **_marks(of),
        provider_message_id=result.message_id,
        expires_at=issued.expires_at,
        resend_available_at=issued.resend_available_at,
        sends_remaining=issued.sends_remaining,
    )
    return Settlement(sent, withdraw=None)


def interrupted_outcome(
    request: OtpDeliveryRequested,
    provider: str,
    pending: UUID | None,
    of: FallbackOf | None = None,
) -> Settlement:
    """A redelivered request whose code was issued but whose outcome was never recorded: whether the
    provider took the message is unknown, and sending again could double it, so the code is
    withdrawn instead (fail closed) and the caller may ask anew."""
    failed = OtpDeliveryFailed(**_about(request, provider), **_marks(of), reason=INTERRUPTED)
    return Settlement(failed, withdraw=pending or request.challenge_id)


# -- fallback --


def fallback_request(failed: OtpDeliveryRequested) -> OtpDeliveryRequested | None:
    """The request that delivers a new code by the first channel ``failed`` names to fall back to
    (and the rest after it), or None when it names none. Its ids are derived from the failed
    request's, so deriving it again (a redelivery, a second replica) gives the same request, and
    the OTP store sends it once."""
    if not failed.fallback:
        return None
    step, *rest = failed.fallback
    return failed.model_copy(
        update={
            "event_id": uuid.uuid5(failed.event_id, f"fallback:{step.channel}"),
            "challenge_id": uuid.uuid5(failed.challenge_id, f"fallback:{step.channel}"),
            "causation_id": failed.event_id,
            "channel": step.channel,
            "destination": step.destination,
            "fallback": rest,
        }
    )


def fallback_started(
    failed: OtpDeliveryRequested,
    after: OtpDeliveryRequested,
    provider: str,
    reason: FallbackReason,
) -> OtpFallbackStarted:
    """The step from ``failed``'s channel to ``after``'s, its destination masked."""
    return OtpFallbackStarted(
        **_about(after, provider),
        failed_challenge_id=failed.challenge_id,
        from_channel=failed.channel,
        reason=reason,
    )


NO_PROVIDER = "none"
"""The provider of an outcome no provider was asked for (a fallback a send limit stopped)."""


def fallback_refused(
    request: OtpDeliveryRequested, refused: SendRefused, of: FallbackOf
) -> OtpDeliveryFailed:
    """A fallback a send limit stopped: its delivery failed (nobody asked for it, so there is no
    caller to answer 429), and the recipient may ask anew once the limit allows."""
    code, _ = send_refusal(refused.limit, refused.retry_after_seconds)
    return OtpDeliveryFailed(
        **_about(request, NO_PROVIDER),
        **_marks(of),
        reason=f"send limit ({code})",
        resend_available_at=refused.retry_at,
    )


def fallback_limits(limits: SendLimits) -> SendLimits:
    """The limits a fallback's code is sent under: the recipient's and the destination's counts
    as for any code, but no resend cooldown (the failed code just set it, and the recipient did
    not ask again: the service is keeping its word to deliver)."""
    return dataclasses.replace(limits, resend_cooldown=timedelta(0))


def awaits_receipt(request: OtpDeliveryRequested, result: Receipt | DeliveryFailed) -> bool:
    """Whether a delivery goes on the fallback schedule until its receipt comes: it was taken,
    its provider reports delivery later, and the request has somewhere to fall back to."""
    return isinstance(result, Receipt) and result.awaits_receipt and bool(request.fallback)


class _Marks(TypedDict):
    fallback_of: UUID | None
    fallback_reason: FallbackReason | None
    answered_before: bool


class _About(TypedDict):
    challenge_id: UUID
    purpose: Purpose
    package_id: str
    order: int | None
    user_id: str | None
    document_id: str | None
    field_name: str | None
    channel: Channel
    destination: str
    provider: str


def _about(request: OtpDeliveryRequested, provider: str) -> _About:
    """What every outcome says of its request: whom it is for, by which channel, the destination
    masked, and the provider."""
    return {
        "challenge_id": request.challenge_id,
        "purpose": request.purpose,
        "package_id": request.package_id,
        "order": request.order,
        "user_id": request.user_id,
        "document_id": request.document_id,
        "field_name": request.field_name,
        "channel": request.channel,
        "destination": mask_destination(request.channel, request.destination),
        "provider": provider,
    }
