"""Messages between the authentication and OTP-dispatch services.

The authentication service asks for a delivery on ``signgate.otp.requests`` (keyed by the
challenge id); the dispatcher answers each request with exactly one outcome on
``signgate.otp.events``: `OtpSent`, `OtpDeliveryFailed`, or `command.rejected` (429 when a
send limit is spent, with ``retry_after_seconds``). When the request names ``fallback`` channels and its
own delivery fails, `OtpFallbackStarted` comes first and the outcome is the fallback's. A code
that was sent and then not delivered (no receipt in time, or one saying undelivered) falls back
too, after its `OtpSent` answered the request: that fallback's `OtpSent` or `OtpDeliveryFailed`
says ``answered_before`` and is a fact about the recipient's code, not a second outcome. The
code itself never travels on Kafka:
the dispatcher generates it, stores only its HMAC digest in the shared OTP store
(``libs/security/otp_store.py``) and hands it to the delivery provider.
"""

from __future__ import annotations

import re
from typing import Literal
from uuid import UUID, uuid4

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from signgate_contracts.envelope import Command, Event
from signgate_contracts.localisation import BrandName, Locale
from signgate_contracts.rejection import CommandRejected

Channel = Literal["sms", "email", "voice"]
"""``voice``: a call to an E.164 number that reads the code out, digit by digit."""
PHONE_CHANNELS: frozenset[str] = frozenset({"sms", "voice"})
"""The channels that reach a phone number: a recipient with a mobile number may pick either."""
Purpose = Literal["document_opening", "signing"]
"""``document_opening``: a recipient opening a package's document (named by ``order``);
``signing``: an authenticated user signing a field (named by ``user_id``, document and field)."""

MAX_TTL_SECONDS = 600
"""An OTP is valid for at most ten minutes after it is issued."""

_E164 = re.compile(r"\+[1-9][0-9]{7,14}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def suited_destination(channel: object, destination: str) -> str:
    """``destination`` if it is what ``channel`` reaches: an E.164 number, or an email address."""
    if channel in PHONE_CHANNELS and not _E164.fullmatch(destination):
        raise ValueError(f"an {channel} destination is an E.164 number such as +447700908899")
    if channel == "email" and not _EMAIL.fullmatch(destination):
        raise ValueError("an email destination is an email address")
    return destination


# -- delivery fallback (voice, then email) --


class FallbackStep(BaseModel):
    """One channel to fall back to, and its destination in clear (as the request's own)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    channel: Channel
    destination: str = Field(max_length=254, repr=False)

    @field_validator("destination")
    @classmethod
    def _suits_channel(cls, destination: str, info: ValidationInfo) -> str:
        return suited_destination(info.data.get("channel"), destination)


FallbackReason = Literal["provider_refused", "undelivered", "no_receipt"]
"""Why a delivery fell back: the provider refused it (after the bounded retry), reported it
undelivered (a delivery receipt), or took it but no receipt came before the receipt timeout."""


# -- requests --


class OtpDeliveryRequested(Command):
    """Generate a one-time password for a recipient and deliver it to ``destination``.

    Answered like a command. This is the only message that carries the phone number or
    email address in clear; its topic keeps records for an hour.
    """

    type: Literal["otp.delivery_requested"] = "otp.delivery_requested"
    challenge_id: UUID = Field(
        default_factory=uuid4, description="Names this code; the record key."
    )
    purpose: Purpose = "document_opening"
    package_id: str = Field(min_length=1, max_length=100)
    order: int | None = Field(
        default=None,
        ge=1,
        le=50,
        description="The recipient's place in the workflow; required for document_opening.",
    )
    user_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="The signing user; required for signing.",
    )
    document_id: str | None = Field(default=None, min_length=1, max_length=100)
    field_name: str | None = Field(default=None, min_length=1, max_length=200)
    channel: Channel
    destination: str = Field(
        max_length=254,
        repr=False,
        description="E.164 phone number (`+447700908899`) for sms and voice, email address for "
        "email; in clear.",
    )
    code_length: int = Field(
        default=6,
        ge=6,
        le=9,
        description="Deprecated and ignored: OTP dispatch takes the length from its own settings.",
    )
    ttl_seconds: int = Field(
        default=300,
        ge=30,
        le=MAX_TTL_SECONDS,
        description="Deprecated and ignored: OTP dispatch takes the lifetime from its own settings.",
    )

    # -- how the message reads (the recipient's policy; additions with defaults) --
    locale: Locale | None = Field(
        default=None,
        description="The recipient's language, a BCP 47 tag: OTP dispatch picks the template of "
        "the tag, else of its language (`fr` for `fr-CA`), else its default locale.",
    )
    brand_name: BrandName | None = Field(
        default=None,
        description="The sender's brand in the message; OTP dispatch's own when left out.",
    )
    fallback: list[FallbackStep] = Field(
        default_factory=list,
        max_length=2,
        description="Where the code goes next, in order, when this channel fails (the provider "
        "refuses, or no delivery receipt comes in time): the channels the recipient's policy "
        "allows after this one. Empty: a failure is final.",
    )

    @field_validator("destination")
    @classmethod
    def _suits_channel(cls, destination: str, info: ValidationInfo) -> str:
        return suited_destination(info.data.get("channel"), destination)

    @model_validator(mode="after")
    def _recipient_named(self) -> OtpDeliveryRequested:
        if self.purpose == "document_opening" and self.order is None:
            raise ValueError("order: required for document_opening")
        if self.purpose == "signing" and not (
            self.user_id and self.document_id and self.field_name
        ):
            raise ValueError("user_id, document_id and field_name are required for signing")
        return self


class _OtpOutcome(Event):
    """What every outcome of a delivery request repeats from it; the destination masked."""

    challenge_id: UUID
    purpose: Purpose
    package_id: str
    order: int | None = None
    user_id: str | None = None
    document_id: str | None = None
    field_name: str | None = None
    channel: Channel
    destination: str = Field(description="Masked: `+44******8899`, `a***@example.com`.")
    provider: str = Field(
        description="The delivery provider: `sandbox`, `smtp`, `http_sms`, `http_voice`."
    )


class _FallbackMarks(BaseModel):
    """What a code's outcome says when the code is a fallback's (additions with defaults: a request's
    own code leaves them out)."""

    fallback_of: UUID | None = Field(
        default=None,
        description="The challenge whose failed delivery this code replaces (its "
        "`otp.fallback_started` names both); None for the request's own code.",
    )
    fallback_reason: FallbackReason | None = Field(
        default=None,
        description="Why the code before this one fell back; None when not a fallback.",
    )
    answered_before: bool = Field(
        default=False,
        description="The request was answered already, by an earlier code's `otp.sent` (a text then "
        "not confirmed by its receipt): this is a fact about the recipient's code, not the "
        "request's outcome. False for the request's one outcome, a fallback's too when the earlier "
        "code was refused at once.",
    )


class OtpSent(_FallbackMarks, _OtpOutcome):
    """A code was issued and handed to the provider; it is the only pending code of its recipient."""

    type: Literal["otp.sent"] = "otp.sent"
    provider_message_id: str
    expires_at: AwareDatetime
    resend_available_at: AwareDatetime = Field(description="When the next code may be requested.")
    sends_remaining: int = Field(
        description="Codes this recipient may still be sent in the window."
    )


class OtpDeliveryFailed(_FallbackMarks, _OtpOutcome):
    """The provider could not deliver the code; it was withdrawn and will not verify."""

    type: Literal["otp.delivery_failed"] = "otp.delivery_failed"
    reason: str = Field(description="Why, without the code: e.g. `http 503`, `SMTPConnectError`.")
    resend_available_at: AwareDatetime | None = None


class OtpFallbackStarted(_OtpOutcome):
    """A delivery failed and the recipient's policy allows another channel: the failed code was
    withdrawn and a new one (``challenge_id``) is being sent by ``channel`` to ``destination``
    (masked). The new code's own `OtpSent` or `OtpDeliveryFailed` follows."""

    type: Literal["otp.fallback_started"] = "otp.fallback_started"
    failed_challenge_id: UUID = Field(description="The code that was not delivered.")
    from_channel: Channel
    reason: FallbackReason


REQUESTS: tuple[type[Command], ...] = (OtpDeliveryRequested,)
EVENTS: tuple[type[Event], ...] = (OtpSent, OtpDeliveryFailed, OtpFallbackStarted, CommandRejected)
