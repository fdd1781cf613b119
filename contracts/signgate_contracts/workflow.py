"""Messages of the workflow service: packages, recipients and their authentication settings.

Every command names its package by ``package_id`` (the record key; SigningHub's
``package_id``, BoldSign's ``documentId``) and is answered with exactly one outcome: the
events below on ``signgate.workflow.events``, a reply on the caller's ``reply_to`` (or
``signgate.workflow.replies``) for a query, or ``command.rejected``.

The two request shapes of the seeds are carried verbatim in a command's ``body``:

- SigningHub, ``PUT /v3/packages/{package_id}/workflow/{order}/authentication``:
  ``UpdateRecipientAuthentication{package_id, order, body}``; the body is the seed's JSON,
  snake_case, including its ``"2015-02-13T12:10:000Z"`` timestamps.
- BoldSign, ``PATCH /v1/document/addAuthentication?documentId=…`` (and its siblings):
  ``AddAuthentication{package_id, body}`` and so on; the body is BoldSign's camelCase JSON.

An invalid body is rejected with 400 and ``field`` set to the offending field's path
(``body.authentication.sms_otp.mobile_number``, ``body.authenticationRetryCount``).

Events carry what the authentication service needs to keep its own projection of each
recipient's policy: methods, retry count, frequency, access window, the recipient's
authentication version (which recipient invitations carry), and, sealed to the authentication
service's key (`libs.security.sealing`), the peppered argon2id hash of the password or access code and
the OTP destination. Nobody else reading the events topic sees either; emails are named by a
keyed digest, destinations masked.

Moving from the first shapes: ``workflow.recipient_authentication_updated`` and
``workflow.recipient_authentication_reset`` carried the hash and the destination in clear and
are no longer published; their ``_v2`` successors carry them sealed. A consumer other than the
authentication service reads ``authentication`` (methods, channel, masked destination) and
ignores ``sealed``. ``email_digest`` is now a keyed HMAC (`keyed_digest`): a consumer that found
recipients by the SHA-256 of their email asks for the deployment's digest key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from signgate_contracts.envelope import Command, Event, Secret
from signgate_contracts.localisation import BrandName, Locale
from signgate_contracts.rejection import CommandRejected

# -- shared value types --

ACCESS_CODE_MIN_LENGTH = 6
"""The shortest password or access code accepted: with a retry count of at most 10, a guesser
has at most 10 tries at 10^6 or more values. BoldSign's sample code ("123456") fits."""
ACCESS_CODE_MAX_LENGTH = 50
"""The longest accepted, as BoldSign and DocuSign allow."""


def _acceptable_secret(value: Any) -> Any:
    """A password or access code of ACCESS_CODE_MIN_LENGTH to ACCESS_CODE_MAX_LENGTH characters
    (empty or None: none given)."""
    text = value.get_secret_value() if value is not None else ""
    if text and not ACCESS_CODE_MIN_LENGTH <= len(text) <= ACCESS_CODE_MAX_LENGTH:
        raise ValueError(f"must be {ACCESS_CODE_MIN_LENGTH} to {ACCESS_CODE_MAX_LENGTH} characters")
    return value


PackageId = Annotated[
    str, Field(min_length=1, max_length=100, description="The package (document) id.")
]
Order = Annotated[
    int, Field(ge=1, le=50, description="The recipient's place in the workflow, 1-50.")
]
Method = Literal["password", "access_code", "sms_otp", "email_otp", "totp"]
"""How a recipient proves who they are: SigningHub's password, BoldSign's access code, an OTP, or
a code from an authenticator app (``totp``)."""
Frequency = Literal["EveryAccess", "UntilSignCompleted", "OncePerDocument"]
"""How often a recipient must authenticate again (BoldSign's identity-verification `type`)."""
PackageState = Literal["draft", "in_progress", "completed", "declined", "terminated"]
RecipientStatus = Literal["pending", "received", "signed", "declined"]
WorkflowType = Literal["sequential", "parallel"]
Role = Literal["signer", "reviewer"]

_SEED_DATETIME = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})T(?P<hm>\d{2}:\d{2}):(?P<seconds>\d{2})(?P<tenths>\d)"
    r"(?P<zone>Z|[+-]\d{2}:?\d{2})?$"
)


def _lenient_datetime(value: Any) -> Any:
    """SigningHub's samples write seconds with three digits ("12:10:000Z"): read them as
    seconds and tenths (12:10:00.0Z). A time without an offset is UTC."""
    if isinstance(value, str):
        match = _SEED_DATETIME.match(value)
        if match:
            value = (
                f"{match['date']}T{match['hm']}:{match['seconds']}.{match['tenths']}"
                f"{match['zone'] or 'Z'}"
            )
        elif re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?", value):
            value += "Z"
    elif isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


LenientDatetime = Annotated[
    AwareDatetime,
    BeforeValidator(_lenient_datetime),
    WithJsonSchema(
        {
            "type": "string",
            "description": "ISO 8601 date-time; 'HH:MM:SSSZ' is read as 'HH:MM:SS.SZ'.",
        },
        mode="validation",
    ),
]

_INTERNATIONAL = re.compile(r"^(\+|00)[1-9][0-9]{6,14}$")


def international_number(value: str) -> str:
    """``+`` or ``00``, then 7-15 digits (spaces, dots, dashes and brackets ignored) -> E.164."""
    compact = re.sub(r"[\s().-]", "", value)
    if not _INTERNATIONAL.match(compact):
        raise ValueError(
            "must be an international number: + or 00, the country code and the number"
        )
    return "+" + compact.removeprefix("+").removeprefix("00")


InternationalNumber = Annotated[str, AfterValidator(international_number)]


def keyed_digest(key: bytes, purpose: str, identifier: str) -> str:
    """How events name an email (or a typed user name) without holding it: HMAC-SHA256, under the
    deployment's digest key, of the purpose and the stripped, lower-cased identifier (hex).

    Consumers holding the same key compute the same digest to find a recipient by email; a
    reader of the topic without it learns nothing, not even from a list of candidate emails.
    """
    message = purpose.encode() + b"\x00" + identifier.strip().lower().encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def email_digest(email: str) -> str:
    """The unkeyed SHA-256 of the lower-cased email that the first event shapes carry; reversible
    from a list of candidate emails, so no longer published: see `keyed_digest`."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


class Body(BaseModel):
    """A request body as the source API sends it; unknown fields are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class CamelBody(Body):
    """A BoldSign body: camelCase on the wire, snake_case in Python."""

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


# -- authenticator-app codes (TOTP) for recipients --

TotpSource = Literal["user_authenticator", "provisioned"]
"""Where a recipient's TOTP secret comes from: ``user_authenticator``, the authenticator app that the
API user the owner named as the recipient's signer (``signer_user_id``) confirmed with identity; or
``provisioned``, a secret workflow generates for the recipient when the sender asks, answered as an
otpauth URI to the sender's reply topic only (to show the recipient as a QR code)."""


def recipient_totp_context(package_id: str, authenticator_id: str) -> str:
    """What a provisioned recipient secret is sealed to: it opens for this package and this
    provisioning only (a new provisioning has a new id)."""
    return f"recipient-totp:{package_id}/{authenticator_id}"


class TotpSetting(Body):
    """A recipient opens with a code from an authenticator app (an addition to SigningHub's body)."""

    enabled: bool = False
    source: TotpSource = Field(
        default="provisioned",
        description="provisioned: a new secret is generated and its otpauth URI answered to the "
        "caller's reply_to (every such command provisions a new one); user_authenticator: the "
        "authenticator app of the API user named as the recipient's signer_user_id.",
    )


# -- registering a package --


class DocumentSpec(Body):
    document_id: str = Field(min_length=1, max_length=100)
    name: str = Field(min_length=1, max_length=300)


class RecipientSpec(Body):
    order: Order
    email: EmailStr
    name: str = Field(min_length=1, max_length=200)
    role: Role = "signer"
    mobile_number: InternationalNumber | None = Field(
        default=None, description="International form (+ or 00); carried as E.164."
    )
    signer_user_id: UUID | None = Field(
        default=None,
        description="The API user who signs fields for this recipient (seed 002's signer OTP); "
        "the user must be a member of the package's account.",
    )
    signer_user_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Or that user by user name (set by an administrator; a user cannot change it).",
    )


# -- OTP channels and delivery fallback (voice codes) --

FallbackChannel = Literal["voice", "email"]
"""Where a recipient's code may go when the text fails: ``voice``, a call to the same number that
reads it out; ``email``, the recipient's email on the package."""


def _distinct_channels(channels: list[FallbackChannel]) -> list[FallbackChannel]:
    if len(set(channels)) != len(channels):
        raise ValueError("each fallback channel at most once")
    return channels


FallbackChannels = Annotated[
    list[FallbackChannel],
    Field(
        max_length=2,
        description="Where the code goes, in this order, when the text fails (the gateway "
        "refuses it or no delivery receipt comes): `voice` (a call to the same number), `email` "
        "(the recipient's email on the package). Empty or left out: no fallback, a failure is final.",
    ),
    AfterValidator(_distinct_channels),
]


# -- SigningHub: Update Workflow User Authentication (Document Opening) --


class PasswordSetting(Body):
    enabled: bool = False
    user_password: Secret | None = Field(
        default=None,
        description="New password, 6-50 characters; omitted, null or empty keeps the recipient's existing one.",
    )

    _acceptable = field_validator("user_password")(_acceptable_secret)


class SmsOtpSetting(Body):
    enabled: bool = False
    mobile_number: str | None = Field(
        default=None,
        validate_default=True,
        description="Required when SMS OTP is enabled; international form (+ or 00).",
    )
    fallback: FallbackChannels = Field(default_factory=list)

    @field_validator("mobile_number")
    @classmethod
    def _required_when_enabled(cls, value: str | None, info: ValidationInfo) -> str | None:
        if not value:
            if info.data.get("enabled"):
                raise ValueError("a mobile number is required when SMS OTP is enabled")
            return None
        return international_number(value)


class AuthenticationSetting(Body):
    enabled: bool = False
    password: PasswordSetting | None = None
    sms_otp: SmsOtpSetting | None = None
    totp: TotpSetting | None = Field(
        default=None, description="Codes from an authenticator app (not in SigningHub's body)."
    )

    # -- signgate's extension: how the recipient's code messages read --
    locale: Locale | None = Field(
        default=None, description="The recipient's language; left out keeps the one set before."
    )
    brand_name: BrandName | None = Field(
        default=None, description="The sender's brand; left out keeps the one set before."
    )

    @model_validator(mode="after")
    def _a_method_when_enabled(self) -> AuthenticationSetting:
        chosen = (
            (self.password and self.password.enabled)
            or (self.sms_otp and self.sms_otp.enabled)
            or (self.totp and self.totp.enabled)
        )
        if self.enabled and not chosen:
            raise ValueError("enabling authentication needs password, sms_otp or totp enabled")
        return self


class DateRange(Body):
    start_date_time: LenientDatetime
    end_date_time: LenientDatetime

    @field_validator("end_date_time")
    @classmethod
    def _after_start(cls, value: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("start_date_time")
        if start is not None and value <= start:
            raise ValueError("must be after start_date_time")
        return value


class DurationByDate(Body):
    enabled: bool = False
    duration: DateRange | None = Field(default=None, validate_default=True)

    @field_validator("duration")
    @classmethod
    def _required_when_enabled(
        cls, value: DateRange | None, info: ValidationInfo
    ) -> DateRange | None:
        if value is None and info.data.get("enabled"):
            raise ValueError("start_date_time and end_date_time are required when enabled")
        return value


class DayCount(Body):
    total_days: int = Field(
        ge=1, le=3650, description="Days of access after the recipient received the package."
    )


class DurationByDays(Body):
    enabled: bool = False
    duration: DayCount | None = Field(default=None, validate_default=True)

    @field_validator("duration")
    @classmethod
    def _required_when_enabled(
        cls, value: DayCount | None, info: ValidationInfo
    ) -> DayCount | None:
        if value is None and info.data.get("enabled"):
            raise ValueError("total_days is required when enabled")
        return value


class AccessDuration(Body):
    enabled: bool = False
    duration_by_date: DurationByDate | None = None
    duration_by_days: DurationByDays | None = Field(default=None, validate_default=True)

    @field_validator("duration_by_days")
    @classmethod
    def _exactly_one(
        cls, value: DurationByDays | None, info: ValidationInfo
    ) -> DurationByDays | None:
        by_date = info.data.get("duration_by_date")
        by_date_on = bool(by_date and by_date.enabled)
        by_days_on = bool(value and value.enabled)
        if by_date_on and by_days_on:
            raise ValueError("duration_by_date and duration_by_days are exclusive: enable one")
        if info.data.get("enabled") and not (by_date_on or by_days_on):
            raise ValueError("enable duration_by_date or duration_by_days")
        return value


class SigningHubAuthenticationBody(Body):
    """SigningHub's request body, verbatim. A section left out leaves that part unchanged."""

    apply_to_all: bool = Field(
        default=False, description="Apply to every recipient of the package."
    )
    authentication: AuthenticationSetting | None = None
    access_duration: AccessDuration | None = None


# -- BoldSign: addAuthentication, removeAuthentication, changeAccessCode --


class PhoneNumber(CamelBody):
    country_code: str = Field(pattern=r"^\+?[0-9]{1,4}$", description="e.g. +1")
    number: str = Field(
        pattern=r"^[0-9]{4,14}$", description="The number without the country code."
    )

    @property
    def e164(self) -> str:
        return "+" + self.country_code.removeprefix("+") + self.number


class IdentityVerificationSettings(CamelBody):
    type: Frequency = Field(
        default="UntilSignCompleted",
        description="How often the signer verifies; also governs OTP and access-code re-authentication.",
    )
    maximum_retry_count: int | None = Field(default=None, ge=1, le=10)
    require_live_capture: bool = False
    require_matching_selfie: bool = False
    name_matcher: Literal["Strict", "Moderate", "Lenient"] | None = None
    hold_for_prefill: bool = False


class SignerReference(CamelBody):
    """Which signer: by email, and by order when the email appears more than once."""

    email_id: EmailStr
    order: Order | None = None
    on_behalf_of: EmailStr | None = Field(
        default=None, description="The sender identity the document was created on behalf of."
    )


ID_VERIFICATION_NOT_OFFERED = (
    "IdVerification (checking the signer's identity document) is not offered by this "
    "deployment: use AccessCode, EmailOTP, SMSOTP or TOTP (identityVerificationSettings are "
    "accepted and stored with any of them)"
)


class AddAuthenticationBody(SignerReference):
    """BoldSign's addAuthentication body, verbatim."""

    authentication_type: Literal["AccessCode", "EmailOTP", "SMSOTP", "TOTP"] = Field(
        description="TOTP (codes from an authenticator app) is not one of BoldSign's: see totpSource."
    )
    access_code: Secret | None = Field(
        default=None, description="Required for AccessCode; otherwise empty."
    )
    totp_source: TotpSource = Field(
        default="provisioned",
        description="For TOTP: where the secret comes from (`TotpSource`); provisioned answers "
        "the new secret's otpauth URI to the caller's reply_to.",
    )
    phone_number: PhoneNumber | None = Field(
        default=None,
        description="For SMSOTP; the signer's mobile number on the package if left out.",
    )
    authentication_retry_count: int | None = Field(
        default=None, ge=1, le=10, description="Attempts allowed before lockout; 3 when left out."
    )
    identity_verification_settings: IdentityVerificationSettings | None = None
    otp_fallback: FallbackChannels = Field(default_factory=list)
    """For SMSOTP only (``otpFallback``)."""

    @field_validator("otp_fallback")
    @classmethod
    def _fallback_only_for_sms(
        cls, value: list[FallbackChannel], info: ValidationInfo
    ) -> list[FallbackChannel]:
        if value and info.data.get("authentication_type") != "SMSOTP":
            raise ValueError("otpFallback applies only to SMSOTP authentication")
        return value

    # -- signgate's extension: how the signer's code messages read --
    locale: Locale | None = Field(default=None, description="The signer's language.")
    brand_name: BrandName | None = Field(default=None, description="The sender's brand.")

    @field_validator("authentication_type", mode="before")
    @classmethod
    def _id_verification_not_offered(cls, value: Any) -> Any:
        # signgate checks no identity documents: a caller moving from BoldSign is told so, by name,
        # instead of "input should be ..." (no signer is left believing their ID is checked)
        if isinstance(value, str) and value.casefold() == "idverification":
            raise PydanticCustomError("id_verification_not_offered", ID_VERIFICATION_NOT_OFFERED)
        return value

    @model_validator(mode="before")
    @classmethod
    def _check_access_code_even_when_left_out(cls, data: Any) -> Any:
        # An absent field is not validated; a null one is, and its error names it by alias.
        if isinstance(data, dict) and not {"accessCode", "access_code"} & data.keys():
            return {**data, "accessCode": None}
        return data

    _acceptable = field_validator("access_code")(_acceptable_secret)

    @field_validator("access_code")
    @classmethod
    def _access_code_only_for_access_code(cls, value: Any, info: ValidationInfo) -> Any:
        given = bool(value and value.get_secret_value())
        if info.data.get("authentication_type") == "AccessCode" and not given:
            raise ValueError("an access code is required for AccessCode authentication")
        if info.data.get("authentication_type") not in (None, "AccessCode") and given:
            raise ValueError("an access code applies only to AccessCode authentication")
        return value if given else None


class ChangeAccessCodeBody(SignerReference):
    access_code: Secret = Field(description="The new access code, 6-50 characters.")

    @field_validator("access_code")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if not value.get_secret_value():
            raise ValueError("the access code must not be empty")
        return _acceptable_secret(value)


# -- commands --


class _PackageCommand(Command):
    package_id: PackageId


class RegisterPackage(_PackageCommand):
    """Register a package in draft; the caller (from the token) becomes its owner."""

    type: Literal["workflow.register_package"] = "workflow.register_package"
    name: str = Field(min_length=1, max_length=300)
    workflow_type: WorkflowType = "sequential"
    documents: list[DocumentSpec] = Field(min_length=1, max_length=100)
    recipients: list[RecipientSpec] = Field(min_length=1, max_length=50)
    on_behalf_of: EmailStr | None = None
    account: UUID | None = Field(
        default=None,
        description="The account (context identifier) the package belongs to: one of the "
        "owner's; the owner's primary account if left out. Signers must be members of it.",
    )

    @field_validator("recipients")
    @classmethod
    def _unique_orders(cls, value: list[RecipientSpec]) -> list[RecipientSpec]:
        orders = [recipient.order for recipient in value]
        if len(set(orders)) != len(orders):
            raise ValueError("each recipient needs its own order")
        return value


class ShareWorkflow(_PackageCommand):
    """Send the package to its recipients: draft -> in progress. The caller gets each recipient's
    invitation (`RecipientInvitationsIssued`) on its ``reply_to``, to put in their signing links."""

    type: Literal["workflow.share_workflow"] = "workflow.share_workflow"


class LockWorkflow(_PackageCommand):
    """Stop the owner's changes (settings, sharing, termination) until unlocked."""

    type: Literal["workflow.lock_workflow"] = "workflow.lock_workflow"


class UnlockWorkflow(_PackageCommand):
    type: Literal["workflow.unlock_workflow"] = "workflow.unlock_workflow"


class TerminateWorkflow(_PackageCommand):
    """Complete the workflow in the middle: in progress -> terminated."""

    type: Literal["workflow.terminate_workflow"] = "workflow.terminate_workflow"
    reason: str | None = Field(default=None, max_length=500)


class _RecipientCommand(_PackageCommand):
    order: Order


class RecordRecipientReceived(_RecipientCommand):
    """The recipient received the package; access by days counts from ``received_at``."""

    type: Literal["workflow.record_recipient_received"] = "workflow.record_recipient_received"
    received_at: LenientDatetime | None = Field(
        default=None, description="When; the command's time if left out."
    )


class RecordRecipientSigned(_RecipientCommand):
    type: Literal["workflow.record_recipient_signed"] = "workflow.record_recipient_signed"
    signed_at: LenientDatetime | None = None


class RecordRecipientDeclined(_RecipientCommand):
    type: Literal["workflow.record_recipient_declined"] = "workflow.record_recipient_declined"
    declined_at: LenientDatetime | None = None
    reason: str | None = Field(default=None, max_length=500)


class UpdateRecipientAuthentication(_RecipientCommand):
    """SigningHub: set the authentication and access duration of the recipient at ``order``
    (or of every recipient, with ``body.apply_to_all``). Only while the package is a draft."""

    type: Literal["workflow.update_recipient_authentication"] = (
        "workflow.update_recipient_authentication"
    )
    body: SigningHubAuthenticationBody


class AddAuthentication(_PackageCommand):
    """BoldSign: add (or replace) one signer's authentication, in draft or in progress."""

    type: Literal["workflow.add_authentication"] = "workflow.add_authentication"
    body: AddAuthenticationBody


class RemoveAuthentication(_PackageCommand):
    """BoldSign: remove one signer's authentication."""

    type: Literal["workflow.remove_authentication"] = "workflow.remove_authentication"
    body: SignerReference


class ChangeAccessCode(_PackageCommand):
    """BoldSign: give a signer who authenticates by access code a new one."""

    type: Literal["workflow.change_access_code"] = "workflow.change_access_code"
    body: ChangeAccessCodeBody


class ResetRecipientAuthentication(_RecipientCommand):
    """Unlock one recipient: clear their lockout and failures, optionally with a new access
    code or another method, leaving every other recipient, signature and the package state."""

    type: Literal["workflow.reset_recipient_authentication"] = (
        "workflow.reset_recipient_authentication"
    )
    method: Method | None = Field(
        default=None, description="Switch to this method; the current one if left out."
    )
    access_code: Secret | None = Field(
        default=None, description="New password or access code (for those methods)."
    )
    mobile_number: InternationalNumber | None = Field(
        default=None,
        description="For a switch to SMS OTP; the recipient's number on record if left out.",
    )
    totp_source: TotpSource | None = Field(
        default=None,
        description="For TOTP: set up the recipient's authenticator anew (provisioned: a new "
        "secret, answered to reply_to, as for a lost phone); the current one if left out.",
    )

    _acceptable = field_validator("access_code")(_acceptable_secret)


class IssueRecipientInvitation(_RecipientCommand):
    """The owner asks for a new invitation for one recipient (a lost or expired signing link);
    answered to ``reply_to`` with `RecipientInvitationIssued`. Earlier invitations stay valid
    until the recipient's authentication is reset, changed or removed."""

    type: Literal["workflow.issue_recipient_invitation"] = "workflow.issue_recipient_invitation"


class GetRecipientAuthentication(_RecipientCommand):
    """Query: a recipient's current settings, without secrets; answered to ``reply_to``."""

    type: Literal["workflow.get_recipient_authentication"] = "workflow.get_recipient_authentication"


class GetWorkflowHistory(_PackageCommand):
    """Query: the package's history in order, a page at a time; answered to ``reply_to``."""

    type: Literal["workflow.get_workflow_history"] = "workflow.get_workflow_history"
    after_sequence: int = Field(default=0, ge=0, description="Entries after this sequence number.")
    limit: int = Field(default=200, ge=1, le=500)


# -- views carried by events --


class View(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Destination(View):
    """Where a one-time password goes (first shape only: in clear)."""

    channel: Literal["sms", "email", "voice"]
    address: str = Field(description="E.164 number or email, in clear: what OTP dispatch needs.")
    masked: str


class IdentityVerification(View):
    type: Frequency
    maximum_retry_count: int | None = None
    require_live_capture: bool = False
    require_matching_selfie: bool = False
    name_matcher: Literal["Strict", "Moderate", "Lenient"] | None = None
    hold_for_prefill: bool = False


DEFAULT_RETRY_COUNT = 3
"""Failed attempts a recipient (and a signer) is allowed before lockout when nobody said otherwise:
BoldSign's default for authenticationRetryCount (SigningHub's body has no such field)."""


class AuthenticationPolicy(View):
    """What a recipient must do to open the package. Every listed method is required."""

    methods: list[Method]
    secret_hash: str | None = Field(
        default=None, description="argon2id of the HMAC-peppered password or access code."
    )
    destination: Destination | None = Field(default=None, description="For sms_otp or email_otp.")
    retry_count: int = Field(ge=1, le=10, description="Failed attempts allowed before lockout.")
    frequency: Frequency
    identity_verification: IdentityVerification | None = None
    on_behalf_of: str | None = Field(default=None, description="Masked sender identity (BoldSign).")
    otp_fallback: list[FallbackChannel] = Field(
        default_factory=list, description="Where a failed text falls back to, in order."
    )


class SealedAuthenticationPolicy(View):
    """What a recipient must do to open the package, as the events topic carries it: the secret's
    hash and the destination only sealed to the authentication service."""

    methods: list[Method]
    secret_set: bool = Field(description="Whether a password or access code is set.")
    channel: Literal["sms", "email", "voice"] | None = Field(
        default=None,
        description="For sms_otp (`sms`: a number, which allows voice too) or email_otp (`email`).",
    )
    destination_masked: str | None = None
    sealed: str | None = Field(
        default=None,
        description="Sealed to the authentication service (libs.security.sealing), context "
        "'policy:<package_id>/<order>/<authentication_version>': {secret_hash, destination, "
        "fallback_email (the recipient's email, when otp_fallback names email)}.",
    )
    retry_count: int = Field(ge=1, le=10, description="Failed attempts allowed before lockout.")
    frequency: Frequency
    identity_verification: IdentityVerification | None = None
    on_behalf_of: str | None = Field(default=None, description="Masked sender identity (BoldSign).")
    # -- TOTP --
    totp_source: TotpSource | None = Field(default=None, description="For totp.")
    totp_authenticator_id: str | None = Field(
        default=None, description="The provisioned secret's id (source provisioned)."
    )
    totp_sealed: str | None = Field(
        default=None,
        repr=False,
        description="The provisioned secret, sealed to the authentication service, context "
        "'recipient-totp:<package_id>/<authenticator_id>' (`recipient_totp_context`): {secret, "
        "digits, algorithm, period_seconds}. Workflow keeps only this sealed value.",
    )

    # -- how the recipient's code messages read (additions with defaults) --
    locale: str | None = Field(default=None, description="BCP 47; None: the deployment's default.")
    brand_name: str | None = Field(default=None, description="None: the deployment's brand.")

    otp_fallback: list[FallbackChannel] = Field(
        default_factory=list,
        description="Where a failed text falls back to, in order: `voice` (the number), `email` "
        "(its address is in the sealed part). Empty: no fallback.",
    )


def sealed_policy_context(package_id: str, order: int, version: int) -> str:
    """What a policy's sealed part is bound to: it opens for this recipient and version only."""
    return f"policy:{package_id}/{order}/{version}"


class AccessWindow(View):
    """When the recipient may open the package: between two times, or for days after receipt."""

    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    days_after_receipt: int | None = None


class RecipientSummary(View):
    order: int
    name: str
    role: Role
    email_masked: str
    email_digest: str = Field(
        description="Keyed HMAC of the email (`keyed_digest`), to find a recipient by email."
    )
    mobile_masked: str | None = None
    status: RecipientStatus = "pending"
    signer_user_id: str | None = Field(
        default=None, description="The API user who signs for this recipient."
    )
    signer_user_name_digest: str | None = Field(
        default=None,
        description="Or that user's name, as a keyed digest (`keyed_digest`, purpose user_name).",
    )


class DocumentSummary(View):
    document_id: str
    name: str


class HistoryEntry(View):
    sequence: int
    occurred_at: AwareDatetime
    recorded_at: AwareDatetime
    actor: str
    action: str
    order: int | None = None
    correlation_id: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


# -- events --


class _PackageEvent(Event):
    package_id: str


class _RecipientEvent(_PackageEvent):
    order: int


class PackageRegistered(_PackageEvent):
    type: Literal["workflow.package_registered"] = "workflow.package_registered"
    owner_id: str
    name: str
    workflow_type: WorkflowType
    state: PackageState = "draft"
    documents: list[DocumentSummary]
    recipients: list[RecipientSummary]
    account: str | None = Field(
        default=None, description="The account (context identifier) of the package."
    )


class WorkflowShared(_PackageEvent):
    type: Literal["workflow.workflow_shared"] = "workflow.workflow_shared"
    workflow_type: WorkflowType
    shared_at: AwareDatetime


class WorkflowLocked(_PackageEvent):
    type: Literal["workflow.workflow_locked"] = "workflow.workflow_locked"


class WorkflowUnlocked(_PackageEvent):
    type: Literal["workflow.workflow_unlocked"] = "workflow.workflow_unlocked"


class WorkflowCompleted(_PackageEvent):
    type: Literal["workflow.workflow_completed"] = "workflow.workflow_completed"
    completed_at: AwareDatetime


class WorkflowDeclined(_PackageEvent):
    type: Literal["workflow.workflow_declined"] = "workflow.workflow_declined"
    order: int = Field(description="The recipient who declined.")
    declined_at: AwareDatetime


class WorkflowTerminated(_PackageEvent):
    type: Literal["workflow.workflow_terminated"] = "workflow.workflow_terminated"
    terminated_at: AwareDatetime
    reason: str | None = None


class RecipientReceived(_RecipientEvent):
    type: Literal["workflow.recipient_received"] = "workflow.recipient_received"
    received_at: AwareDatetime


class RecipientSigned(_RecipientEvent):
    type: Literal["workflow.recipient_signed"] = "workflow.recipient_signed"
    signed_at: AwareDatetime


class RecipientDeclined(_RecipientEvent):
    type: Literal["workflow.recipient_declined"] = "workflow.recipient_declined"
    declined_at: AwareDatetime
    reason: str | None = None


class RecipientAuthenticationUpdated(_RecipientEvent):
    """First shape, no longer published (it carried the hash and destination in clear): see
    `RecipientAuthenticationUpdatedV2`."""

    type: Literal["workflow.recipient_authentication_updated"] = (
        "workflow.recipient_authentication_updated"
    )
    email_digest: str
    authentication: AuthenticationPolicy | None = Field(description="None: no authentication.")
    access_window: AccessWindow | None = Field(description="None: no access restriction.")


class RecipientAuthenticationUpdatedV2(_RecipientEvent):
    """The recipient's whole policy after the change: a projection replaces what it had."""

    type: Literal["workflow.recipient_authentication_updated_v2"] = (
        "workflow.recipient_authentication_updated_v2"
    )
    email_digest: str = Field(description="Keyed HMAC of the email (`keyed_digest`).")
    authentication_version: int = Field(
        ge=0, description="Raised by every change: older invitations stop working."
    )
    authentication: SealedAuthenticationPolicy | None = Field(
        description="None: no authentication."
    )
    access_window: AccessWindow | None = Field(description="None: no access restriction.")


class RecipientAuthenticationRemoved(_RecipientEvent):
    type: Literal["workflow.recipient_authentication_removed"] = (
        "workflow.recipient_authentication_removed"
    )
    authentication_version: int | None = Field(default=None, description="After the removal.")


class RecipientAuthenticationReset(_RecipientEvent):
    """First shape, no longer published (it carried the hash and destination in clear): see
    `RecipientAuthenticationResetV2`."""

    type: Literal["workflow.recipient_authentication_reset"] = (
        "workflow.recipient_authentication_reset"
    )
    email_digest: str
    authentication: AuthenticationPolicy | None
    access_window: AccessWindow | None


class RecipientAuthenticationResetV2(_RecipientEvent):
    """The owner unlocked this recipient: clear their failures and lock (this recipient only)
    and take the policy as it stands now."""

    type: Literal["workflow.recipient_authentication_reset_v2"] = (
        "workflow.recipient_authentication_reset_v2"
    )
    email_digest: str = Field(description="Keyed HMAC of the email (`keyed_digest`).")
    authentication_version: int = Field(
        ge=0, description="Raised by the reset: older invitations stop working."
    )
    authentication: SealedAuthenticationPolicy | None
    access_window: AccessWindow | None


# -- replies to queries --


class InvitationView(View):
    order: int
    invitation: Secret = Field(
        description="The recipient's invitation: put it in their signing link."
    )
    expires_at: AwareDatetime


class RecipientInvitationsIssued(_PackageEvent):
    """Reply only: the invitation of every recipient of the package just shared."""

    type: Literal["workflow.recipient_invitations_issued"] = "workflow.recipient_invitations_issued"
    invitations: list[InvitationView]


class RecipientInvitationIssued(_RecipientEvent):
    """Reply only: a new invitation for one recipient."""

    type: Literal["workflow.recipient_invitation_issued"] = "workflow.recipient_invitation_issued"
    invitation: Secret = Field(
        description="The recipient's invitation: put it in their signing link."
    )
    expires_at: AwareDatetime


class PublicAuthenticationPolicy(View):
    """A policy as the owner may read it back: no hash, destinations masked."""

    methods: list[Method]
    secret_set: bool
    destination_masked: str | None = None
    retry_count: int
    frequency: Frequency
    identity_verification: IdentityVerification | None = None
    on_behalf_of: str | None = None
    totp_source: TotpSource | None = None
    totp_authenticator_id: str | None = None

    # -- how the recipient's code messages read (additions with defaults) --
    locale: str | None = None
    brand_name: str | None = None

    otp_fallback: list[FallbackChannel] = Field(
        default_factory=list, description="Where a failed text falls back to, in order."
    )


class RecipientTotpProvisioned(_RecipientEvent):
    """Reply only: the secret workflow generated for a recipient's authenticator app, to the caller
    who asked (never on an events topic): show ``otpauth_uri`` to the recipient as a QR code."""

    type: Literal["workflow.recipient_totp_provisioned"] = "workflow.recipient_totp_provisioned"
    authenticator_id: str = Field(description="This provisioning; a new one has a new id.")
    otpauth_uri: Secret = Field(description="otpauth://totp/... with the secret: for a QR code.")
    secret: Secret = Field(description="The base32 secret, for typing into an app by hand.")
    digits: int = 6
    algorithm: Literal["SHA1", "SHA256", "SHA512"] = "SHA1"
    period_seconds: int = 30


class RecipientAuthenticationDescribed(_RecipientEvent):
    """Reply: one recipient's current settings and status, without secrets."""

    type: Literal["workflow.recipient_authentication_described"] = (
        "workflow.recipient_authentication_described"
    )
    recipient: RecipientSummary
    package_state: PackageState
    locked_workflow: bool
    authentication: PublicAuthenticationPolicy | None
    access_window: AccessWindow | None
    received_at: AwareDatetime | None = None
    failed_attempts: int = 0
    locked_out_at: AwareDatetime | None = None


class WorkflowHistoryListed(_PackageEvent):
    """Reply: a page of the package's history, oldest first."""

    type: Literal["workflow.workflow_history_listed"] = "workflow.workflow_history_listed"
    entries: list[HistoryEntry]
    next_after: int | None = Field(
        description="Pass as after_sequence for the next page; None at the end."
    )


COMMANDS: tuple[type[Command], ...] = (
    RegisterPackage,
    ShareWorkflow,
    LockWorkflow,
    UnlockWorkflow,
    TerminateWorkflow,
    RecordRecipientReceived,
    RecordRecipientSigned,
    RecordRecipientDeclined,
    UpdateRecipientAuthentication,
    AddAuthentication,
    RemoveAuthentication,
    ChangeAccessCode,
    ResetRecipientAuthentication,
    GetRecipientAuthentication,
    GetWorkflowHistory,
    IssueRecipientInvitation,
)
EVENTS: tuple[type[Event], ...] = (
    PackageRegistered,
    WorkflowShared,
    WorkflowLocked,
    WorkflowUnlocked,
    WorkflowCompleted,
    WorkflowDeclined,
    WorkflowTerminated,
    RecipientReceived,
    RecipientSigned,
    RecipientDeclined,
    RecipientAuthenticationUpdated,
    RecipientAuthenticationRemoved,
    RecipientAuthenticationReset,
    RecipientAuthenticationUpdatedV2,
    RecipientAuthenticationResetV2,
    CommandRejected,
)
REPLIES: tuple[type[Event], ...] = (
    RecipientAuthenticationDescribed,
    WorkflowHistoryListed,
    RecipientInvitationsIssued,
    RecipientInvitationIssued,
    RecipientTotpProvisioned,
)


# -- which commands provision a recipient's TOTP secret --


def provisions_totp(command: Command) -> bool:
    """Whether a command asks for a new TOTP secret for its recipient: workflow generates it, seals
    it to the authentication service and answers its otpauth URI (`RecipientTotpProvisioned`) to
    the caller's reply_to only, with the command's event."""
    match command:
        case UpdateRecipientAuthentication(
            body=SigningHubAuthenticationBody(authentication=setting)
        ):
            return bool(
                setting
                and setting.enabled
                and setting.totp
                and setting.totp.enabled
                and setting.totp.source == "provisioned"
            )
        case AddAuthentication():
            body = command.body
            return body.authentication_type == "TOTP" and body.totp_source == "provisioned"
        case ResetRecipientAuthentication():
            return command.totp_source == "provisioned"
    return False
