"""Rules of OTP dispatch, without I/O: codes, what a delivery is handed (its text from
`message_templates`), what each request's outcome is (sent, failed, interrupted, refused), and
which code is withdrawn with it."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TypedDict
from uuid import UUID

from libs.security.masking import mask_destination
from libs.security.otp_store import Issued, SendLimit, SendRefused
from services.otp_dispatch.message_templates import MessageTemplates
from services.otp_dispatch.providers import Delivery, DeliveryFailed, Receipt
from signgate_contracts import CommandRejected
from signgate_contracts.otp import (
    Channel,
    OtpDeliveryFailed,
    OtpDeliveryRequested,
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
class Settlement:
    """The outcome to record (and publish) for a request, and the challenge to withdraw with it."""

    outcome: OtpSent | OtpDeliveryFailed
    withdraw: UUID | None
    """An undelivered code's challenge: it must not verify."""


def delivery_outcome(
    request: OtpDeliveryRequested, provider: str, issued: Issued, result: Receipt | DeliveryFailed
) -> Settlement:
    """A delivered code is `OtpSent` (when it expires, when a resend is allowed, sends left); an
    undelivered one is `OtpDeliveryFailed` with the provider's reason, and is withdrawn."""
    if isinstance(result, DeliveryFailed):
        failed = OtpDeliveryFailed(
            **_about(request, provider),
            reason=result.reason,
            resend_available_at=issued.resend_available_at,
        )
        return Settlement(failed, withdraw=request.challenge_id)
    sent = OtpSent(
        **_about(request, provider),
        provider_message_id=result.message_id,
        expires_at=issued.expires_at,
        resend_available_at=issued.resend_available_at,
        sends_remaining=issued.sends_remaining,
    )
    return Settlement(sent, withdraw=None)


def interrupted_outcome(
    request: OtpDeliveryRequested, provider: str, pending: UUID | None
) -> Settlement:
    """A redelivered request whose code was issued but whose outcome was never recorded: whether the
    provider took the message is unknown, and sending again could double it, so the code is
    withdrawn instead (fail closed) and the caller may ask anew."""
    failed = OtpDeliveryFailed(**_about(request, provider), reason=INTERRUPTED)
    return Settlement(failed, withdraw=pending or request.challenge_id)


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
