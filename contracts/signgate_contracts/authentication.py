"""Messages of the authentication service: opening documents, OTP checks, lockout and unlock.

A recipient is named by ``package_id`` and ``order`` (their place in the workflow, 1-50);
where only an email is known, ``email`` names the recipient and must be unambiguous in the
package. Every recipient command proves itself with the recipient's invitation or the
owner's token (`libs.security.invitations`). Credentials issued here (document-access grants) go only to the caller's
``reply_to`` (or ``signgate.authentication.replies``), never on the events topic; their revocations
(`DocumentAccessRevoked`, by grant id) go on the events topic.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, EmailStr, Field, model_validator

from signgate_contracts.envelope import Command, Event, Secret
from signgate_contracts.otp import Channel, FallbackReason
from signgate_contracts.rejection import CommandRejected

Method = Literal["password", "access_code", "sms_otp", "email_otp", "totp"]
Frequency = Literal["EveryAccess", "UntilSignCompleted", "OncePerDocument"]


class _RecipientCommand(Command):
    """A recipient's command: it carries the recipient's ``invitation`` (from their signing link), or
    the package owner's ``access_token``; anything else is refused with 401 before any effect."""

    package_id: str = Field(min_length=1, max_length=100)
    order: int | None = Field(
        default=None, ge=1, le=50, description="The recipient's place in the workflow."
    )
    email: EmailStr | None = Field(
        default=None, description="Names the recipient when no order is given."
    )
    invitation: Secret | None = Field(
        default=None,
        description="The recipient's invitation (workflow's RecipientInvitationsIssued); it "
        "names the recipient, so order and email may be left out.",
    )

    @model_validator(mode="after")
    def _named(self) -> _RecipientCommand:
        if self.order is None and self.email is None and self.invitation is None:
            raise ValueError("order, email or invitation is required")
        return self


class OpenDocumentWithPassword(_RecipientCommand):
    """Open a document with the recipient's password or access code."""

    type: Literal["authentication.open_document_with_password"] = (
        "authentication.open_document_with_password"
    )
    password: Secret = Field(description="The password or access code the sender set.")


class RequestDocumentOtp(_RecipientCommand):
    """Send the recipient a one-time password by the method the sender chose (SMS or email)."""

    type: Literal["authentication.request_document_otp"] = "authentication.request_document_otp"
    channel: Literal["sms", "voice", "email"] | None = Field(
        default=None,
        description="The channel the recipient picks, among those their policy allows: a mobile "
        "number allows `sms` and `voice` (a call that reads the code out), an email `email`. "
        "Left out: the policy's own (sms or email).",
    )


class VerifyDocumentOtp(_RecipientCommand):
    """Open a document with the one-time password the recipient received."""

    type: Literal["authentication.verify_document_otp"] = "authentication.verify_document_otp"
    code: Secret


# -- authenticator-app codes (TOTP) --

TOTP_CODE_USED = "This code was used already: wait for the next code from the authenticator app"


class VerifyDocumentTotp(_RecipientCommand):
    """Open a document with a code from the recipient's authenticator app (method ``totp``). A
    code opens once: submitted again (or an earlier one) it is refused with 409
    ``totp_code_used``, which spends none of the recipient's attempts."""

    type: Literal["authentication.verify_document_totp"] = "authentication.verify_document_totp"
    code: Secret = Field(description="The 6-8 digits the authenticator app shows now.")


class RequestSigningOtp(Command):
    """An authenticated user asks for an OTP to sign a field; it goes to their profile's mobile."""

    type: Literal["authentication.request_signing_otp"] = "authentication.request_signing_otp"
    package_id: str = Field(min_length=1, max_length=100)
    document_id: str = Field(min_length=1, max_length=100)
    field_name: str = Field(min_length=1, max_length=200)
    channel: Literal["sms", "voice"] = Field(
        default="sms", description="`voice`: a call to the same mobile number reads the code out."
    )


class VerifySigningOtp(Command):
    type: Literal["authentication.verify_signing_otp"] = "authentication.verify_signing_otp"
    package_id: str = Field(min_length=1, max_length=100)
    document_id: str = Field(min_length=1, max_length=100)
    field_name: str = Field(min_length=1, max_length=200)
    code: Secret


class GetRecipientAuthenticationStatus(_RecipientCommand):
    """Query: attempts used and left, lock, last failure, pending OTP; answered to reply_to."""

    type: Literal["authentication.get_recipient_authentication_status"] = (
        "authentication.get_recipient_authentication_status"
    )


class RecipientAuthenticated(Event):
    type: Literal["authentication.recipient_authenticated"] = (
        "authentication.recipient_authenticated"
    )
    package_id: str
    order: int
    method: Method
    access_until: AwareDatetime | None = Field(
        default=None,
        description="When the access grant ends (its exp: at most the grant lifetime, and "
        "at most the access window's end); revocation may end it sooner.",
    )


class RecipientAuthenticationFailed(Event):
    type: Literal["authentication.recipient_authentication_failed"] = (
        "authentication.recipient_authentication_failed"
    )
    package_id: str
    order: int
    method: Method
    reason: Literal["wrong_secret", "expired_code", "no_pending_code"]
    attempts_used: int
    attempts_remaining: int


class RecipientLockedOut(Event):
    type: Literal["authentication.recipient_locked_out"] = "authentication.recipient_locked_out"
    package_id: str
    order: int
    method: Method
    failures: int
    locked_at: AwareDatetime


class RecipientAuthenticationCleared(Event):
    """The recipient's failures and lock were cleared after the sender's reset."""

    type: Literal["authentication.recipient_authentication_cleared"] = (
        "authentication.recipient_authentication_cleared"
    )
    package_id: str
    order: int
    was_locked: bool


class DocumentOtpSent(Event):
    type: Literal["authentication.document_otp_sent"] = "authentication.document_otp_sent"
    package_id: str
    order: int
    channel: Literal["sms", "email", "voice"] = Field(
        description="`voice`: a call reads the code out (the recipient asked for it, or an SMS "
        "fell back to it)."
    )
    destination: str = Field(description="Masked phone number or email.")
    expires_at: AwareDatetime
    resend_available_at: AwareDatetime


class SigningOtpSent(Event):
    type: Literal["authentication.signing_otp_sent"] = "authentication.signing_otp_sent"
    package_id: str
    document_id: str
    field_name: str
    user_id: str
    destination: str = Field(description="Masked phone number.")
    expires_at: AwareDatetime
    resend_available_at: AwareDatetime
    channel: Literal["sms", "voice"] = "sms"


# -- after the answer: what became of a code the request was answered with --


class _CodeRerouted(Event):
    """A code sent (the request answered with `document_otp_sent` or `signing_otp_sent`) was not
    delivered (no receipt in time, or one saying undelivered), and a new code went by ``channel``;
    the earlier one no longer verifies. It carries the request's correlation id, for tracing, and is
    not its outcome: that came before."""

    channel: Channel
    destination: str = Field(description="Masked phone number or email.")
    reason: FallbackReason = Field(description="Why the code before this one fell back.")
    expires_at: AwareDatetime
    resend_available_at: AwareDatetime


class _CodeUndelivered(Event):
    """A code sent (the request answered) was not delivered, nor was its fallback's, the last by
    ``channel``: no code is pending; the recipient asks anew. It carries the request's correlation
    id, for tracing, and is not its outcome (no `command.rejected` follows a success)."""

    channel: Channel
    destination: str = Field(description="Masked phone number or email.")
    resend_available_at: AwareDatetime | None = None


class DocumentOtpRerouted(_CodeRerouted):
    """A recipient's code went by another channel after `document_otp_sent` answered the request
    (the text was not confirmed): a fact, not the request's outcome."""

    type: Literal["authentication.document_otp_rerouted"] = "authentication.document_otp_rerouted"
    package_id: str
    order: int


class DocumentOtpUndelivered(_CodeUndelivered):
    """A recipient's code, and its fallback's, did not arrive after `document_otp_sent` answered the
    request: a fact, not the request's outcome; the recipient asks for a new code."""

    type: Literal["authentication.document_otp_undelivered"] = (
        "authentication.document_otp_undelivered"
    )
    package_id: str
    order: int


class SigningOtpRerouted(_CodeRerouted):
    """A signer's code went by another channel after `signing_otp_sent` answered the request: a
    fact, not the request's outcome."""

    type: Literal["authentication.signing_otp_rerouted"] = "authentication.signing_otp_rerouted"
    package_id: str
    document_id: str
    field_name: str
    user_id: str


class SigningOtpUndelivered(_CodeUndelivered):
    """A signer's code, and its fallback's, did not arrive after `signing_otp_sent` answered the
    request: a fact, not the request's outcome."""

    type: Literal["authentication.signing_otp_undelivered"] = (
        "authentication.signing_otp_undelivered"
    )
    package_id: str
    document_id: str
    field_name: str
    user_id: str


class SignerAuthenticated(Event):
    type: Literal["authentication.signer_authenticated"] = "authentication.signer_authenticated"
    package_id: str
    document_id: str
    field_name: str
    user_id: str


class SignerAuthenticationFailed(Event):
    type: Literal["authentication.signer_authentication_failed"] = (
        "authentication.signer_authentication_failed"
    )
    package_id: str
    document_id: str
    field_name: str
    user_id: str
    reason: Literal["wrong_secret", "expired_code", "no_pending_code"]
    attempts_remaining: int


class DocumentAccessGranted(Event):
    """Reply only: the grant a recipient shows to open the document."""

    type: Literal["authentication.document_access_granted"] = (
        "authentication.document_access_granted"
    )
    package_id: str
    order: int
    grant: Secret = Field(description="Signed grant, scoped to this package and recipient.")
    expires_at: AwareDatetime | None = Field(
        default=None,
        description="The grant's exp: at most the grant lifetime, and at most the end of the "
        "recipient's access window. Always set since grants are bounded.",
    )
    frequency: Frequency
    grant_id: str | None = Field(
        default=None, description="The grant's jti, as a revocation names it."
    )


RevocationReason = Literal[
    "recipient_signed",
    "recipient_declined",
    "authentication_changed",
    "authentication_reset",
    "authentication_removed",
    "package_completed",
    "package_declined",
    "package_terminated",
]


class DocumentAccessRevoked(Event):
    """A grant stopped being valid before its exp: the recipient signed or declined, their
    authentication was changed, reset or removed, or the package ended. One event per grant;
    it names the grant by its jti and never carries the grant itself. Verifiers refuse a grant
    whose jti they have seen revoked (`signgate_client.GrantRevocations`)."""

    type: Literal["authentication.document_access_revoked"] = (
        "authentication.document_access_revoked"
    )
    jti: str = Field(description="The revoked grant's id (its jti claim).")
    package_id: str
    order: int
    reason: RevocationReason
    expires_at: AwareDatetime = Field(
        description="The revoked grant's exp: after it (and a verifier's leeway) the revocation may be forgotten.",
    )


class RecipientAuthenticationStatus(Event):
    """Reply only: the recipient's authentication state, without secrets."""

    type: Literal["authentication.recipient_authentication_status"] = (
        "authentication.recipient_authentication_status"
    )
    package_id: str
    order: int
    method: Method | None
    attempts_used: int
    attempts_remaining: int
    locked: bool
    locked_since: datetime | None = None
    last_failure_reason: str | None = None
    otp_expires_at: datetime | None = None
    resend_available_at: datetime | None = None
    destination: str | None = Field(default=None, description="Masked.")


COMMANDS: tuple[type[Command], ...] = (
    OpenDocumentWithPassword,
    RequestDocumentOtp,
    VerifyDocumentOtp,
    VerifyDocumentTotp,
    RequestSigningOtp,
    VerifySigningOtp,
    GetRecipientAuthenticationStatus,
)
EVENTS: tuple[type[Event], ...] = (
    RecipientAuthenticated,
    RecipientAuthenticationFailed,
    RecipientLockedOut,
    RecipientAuthenticationCleared,
    DocumentOtpSent,
    SigningOtpSent,
    SignerAuthenticated,
    SignerAuthenticationFailed,
    DocumentAccessRevoked,
    CommandRejected,
    DocumentOtpRerouted,
    DocumentOtpUndelivered,
    SigningOtpRerouted,
    SigningOtpUndelivered,
)
AFTER_OUTCOME: tuple[type[Event], ...] = (
    DocumentOtpRerouted,
    DocumentOtpUndelivered,
    SigningOtpRerouted,
    SigningOtpUndelivered,
)
"""Facts that carry a command's correlation id but are not its outcome: they follow it (a code the
request was answered with went another way, or nowhere). A caller awaiting the command's answer
passes over them (`signgate_client.routing.answers_command`)."""
REPLIES: tuple[type[Event], ...] = (DocumentAccessGranted, RecipientAuthenticationStatus)
