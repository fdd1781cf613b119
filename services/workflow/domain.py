"""Rules of the workflow service, with no I/O: packages, their state machine, recipients, the
authentication settings of both request shapes, unlocking one recipient, and history.

A package is a draft until it is shared; then it is in progress (sequential: a recipient
receives it only after everyone before them signed; parallel: in any order) until every
recipient signed (completed), one declined (declined) or the owner terminated it. The owner
may lock the workflow: while locked, the owner's changes are refused; recipients still act.

Each rule is a function of the package as it is (or None) and the caller, returning a
`Decision`: the package as it becomes and the changes that happened, from which the
handlers write history and events. Times come from the messages, so replaying a message
decides the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from libs.runtime.errors import BadRequest, Conflict, Forbidden, NotFound
from signgate_contracts.envelope import Command, Secret
from signgate_contracts.identity import normalise_user_name
from signgate_contracts.workflow import (
    DEFAULT_RETRY_COUNT,
    AccessDuration,
    AccessWindow,
    AddAuthentication,
    AddAuthenticationBody,
    AuthenticationSetting,
    ChangeAccessCode,
    ChangeAccessCodeBody,
    FallbackChannel,
    Frequency,
    IdentityVerification,
    LockWorkflow,
    Method,
    PackageState,
    RecipientStatus,
    RecordRecipientDeclined,
    RecordRecipientReceived,
    RecordRecipientSigned,
    RegisterPackage,
    RemoveAuthentication,
    ResetRecipientAuthentication,
    Role,
    ShareWorkflow,
    SignerReference,
    SigningHubAuthenticationBody,
    TerminateWorkflow,
    TotpSource,
    UnlockWorkflow,
    UpdateRecipientAuthentication,
    WorkflowType,
)

SIGNINGHUB_FREQUENCY: Frequency = "EveryAccess"
"""SigningHub asks for the password each time the document is opened."""
BOLDSIGN_FREQUENCY: Frequency = "UntilSignCompleted"
"""BoldSign's default identity-verification frequency."""
SECRET_METHODS: frozenset[str] = frozenset({"password", "access_code"})
FINISHED: frozenset[str] = frozenset({"completed", "declined", "terminated"})
BOLDSIGN_TYPES: Mapping[str, Method] = {
    "AccessCode": "access_code",
    "EmailOTP": "email_otp",
    "SMSOTP": "sms_otp",
    "TOTP": "totp",
}

# -- refusals: one type per family, with the seed's status and text --


class DocumentNotFound(NotFound):
    code = "document_not_found"

    def __init__(self) -> None:
        super().__init__("Document not found")


class RecipientNotFound(NotFound):
    code = "recipient_not_found"

    def __init__(self) -> None:
        super().__init__("No user found at given order")


class NotOwner(Forbidden):
    code = "document_not_owned"

    def __init__(self) -> None:
        super().__init__("Document does not belong to user")


class WorkflowIsLocked(Forbidden):
    code = "workflow_locked"

    def __init__(self) -> None:
        super().__init__("You are not allowed to perform this action on locked workflow")


class NotDraft(Forbidden):
    code = "document_not_draft"

    def __init__(self) -> None:
        super().__init__("Document is no longer in draft state")


class StateConflict(Conflict):
    """The package or recipient is not in a state that allows the command (409)."""

    code = "state_conflict"


class InvalidSettings(BadRequest):
    """The settings are well-formed but do not fit this package or recipient (400, with field)."""

    code = "invalid_authentication"


# -- the aggregate --


@dataclass(frozen=True)
class RecipientTotp:
    """Where a recipient's authenticator-app codes are checked against (method ``totp``)."""

    source: TotpSource
    authenticator_id: str | None = None
    """The provisioned secret's id (source ``provisioned``)."""
    secret_sealed: str | None = None
    """The provisioned secret, sealed to the authentication service: workflow cannot open it."""


@dataclass(frozen=True)
class Authentication:
    """What a recipient must do to open the package; every method listed is required."""

    methods: tuple[Method, ...]
    secret_hash: str | None = None
    """Peppered argon2id hash of the password or access code; never the plaintext."""
    mobile_number: str | None = None
    """E.164, for sms_otp."""
    retry_count: int = DEFAULT_RETRY_COUNT
    frequency: Frequency = SIGNINGHUB_FREQUENCY
    identity_verification: IdentityVerification | None = None
    on_behalf_of: str | None = None
    locale: str | None = None
    """The recipient's language for code messages (BCP 47); None: the deployment's default."""
    brand_name: str | None = None
    """The sender's brand in code messages; None: the deployment's."""
    totp: RecipientTotp | None = None
    """For totp."""
    otp_fallback: tuple[FallbackChannel, ...] = ()
    """Where a failed text falls back to, in order (the sender's choice; none by default)."""

    @property
    def uses_secret(self) -> bool:
        return bool(SECRET_METHODS & set(self.methods))


@dataclass(frozen=True)
class Recipient:
    order: int
    email: str
    name: str
    role: Role = "signer"
    mobile_number: str | None = None
    status: RecipientStatus = "pending"
    received_at: datetime | None = None
    signed_at: datetime | None = None
    declined_at: datetime | None = None
    authentication: Authentication | None = None
    access_window: AccessWindow | None = None
    failed_attempts: int = 0
    """Failed attempts as the authentication service reported them."""
    locked_out_at: datetime | None = None
    authentication_version: int = 0
    """Raised by every change, reset or removal of the authentication: invitations carry it, and
    one issued before the latest change no longer works."""
    signer_user_id: UUID | None = None
    """The API user who signs fields for this recipient (seed 002), as the owner named them."""
    signer_user_name: str | None = None
    """Or that user by (normalised) user name."""

    def with_authentication(
        self, authentication: Authentication | None, **changes: Any
    ) -> Recipient:
        """This recipient with another authentication: older invitations stop working."""
        return replace(
            self,
            authentication=authentication,
            authentication_version=self.authentication_version + 1,
            **changes,
        )


@dataclass(frozen=True)
class Caller:
    """Who sent a command, from their token: the user and the accounts they act for."""

    user_id: str
    accounts: tuple[str, ...] = ()
    primary_account: str | None = None


@dataclass(frozen=True)
class Document:
    document_id: str
    name: str


@dataclass(frozen=True)
class Package:
    package_id: str
    owner_id: str
    name: str
    workflow_type: WorkflowType
    documents: tuple[Document, ...]
    recipients: tuple[Recipient, ...]
    """Ordered by ``order``."""
    registered_at: datetime
    state: PackageState = "draft"
    locked: bool = False
    on_behalf_of: str | None = None
    account: str | None = None
    """The account (context identifier) the package belongs to; signers must be its members."""
    shared_at: datetime | None = None
    finished_at: datetime | None = None

    def recipient(self, order: int) -> Recipient:
        for recipient in self.recipients:
            if recipient.order == order:
                return recipient
        raise RecipientNotFound()

    def with_recipient(self, changed: Recipient) -> Package:
        return replace(
            self,
            recipients=tuple(changed if r.order == changed.order else r for r in self.recipients),
        )


@dataclass(frozen=True)
class Change:
    """One thing that happened to a package: a history entry, and usually an event."""

    action: str
    order: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    package: Package
    changes: tuple[Change, ...]


def _owned(package: Package | None, caller: str) -> Package:
    if package is None:
        raise DocumentNotFound()
    if package.owner_id != caller:
        raise NotOwner()
    return package


def _owned_unlocked(package: Package | None, caller: str) -> Package:
    package = _owned(package, caller)
    if package.locked:
        raise WorkflowIsLocked()
    return package


def _in_progress(package: Package) -> None:
    if package.state != "in_progress":
        raise StateConflict(
            f"The workflow is {_said(package.state)}, not in progress",
            code="workflow_not_in_progress",
        )


def _said(state: str) -> str:
    return state.replace("_", " ")


# -- lifecycle --


def register_package(
    existing: Package | None, caller: Caller | str, command: RegisterPackage, at: datetime
) -> Decision:
    """A new package in draft, owned by the caller, in one of the caller's accounts."""
    caller = caller if isinstance(caller, Caller) else Caller(caller)
    if existing is not None:
        raise StateConflict("A package with this id already exists", code="package_exists")
    account = str(command.account) if command.account else caller.primary_account
    if command.account is not None and str(command.account) not in caller.accounts:
        raise InvalidSettings(
            "account is not one of the caller's accounts",
            field="account",
            code="account_not_member",
        )
    package = Package(
        package_id=command.package_id,
        owner_id=caller.user_id,
        name=command.name,
        workflow_type=command.workflow_type,
        documents=tuple(Document(d.document_id, d.name) for d in command.documents),
        recipients=tuple(
            Recipient(
                order=r.order,
                email=r.email,
                name=r.name,
                role=r.role,
                mobile_number=r.mobile_number,
                signer_user_id=r.signer_user_id,
                signer_user_name=normalise_user_name(r.signer_user_name)
                if r.signer_user_name
                else None,
            )
            for r in sorted(command.recipients, key=lambda r: r.order)
        ),
        registered_at=at,
        on_behalf_of=command.on_behalf_of,
        account=account,
    )
    return Decision(package, (Change("package_registered"),))


def share_workflow(package: Package | None, caller: str, at: datetime) -> Decision:
    """Draft -> in progress."""
    package = _owned_unlocked(package, caller)
    if package.state != "draft":
        raise NotDraft()
    return Decision(
        replace(package, state="in_progress", shared_at=at), (Change("workflow_shared"),)
    )


def lock_workflow(package: Package | None, caller: str) -> Decision:
    package = _owned(package, caller)
    if package.state in FINISHED:
        raise StateConflict(f"The workflow is {package.state}", code="workflow_finished")
    if package.locked:
        raise StateConflict("The workflow is already locked", code="workflow_already_locked")
    return Decision(replace(package, locked=True), (Change("workflow_locked"),))


def unlock_workflow(package: Package | None, caller: str) -> Decision:
    package = _owned(package, caller)
    if not package.locked:
        raise StateConflict("The workflow is not locked", code="workflow_not_locked")
    return Decision(replace(package, locked=False), (Change("workflow_unlocked"),))


def terminate_workflow(
    package: Package | None, caller: str, at: datetime, reason: str | None
) -> Decision:
    """Complete the workflow in the middle: in progress -> terminated."""
    package = _owned_unlocked(package, caller)
    _in_progress(package)
    return Decision(
        replace(package, state="terminated", finished_at=at),
        (Change("workflow_terminated", details={"reason": reason} if reason else {}),),
    )


# -- recipient actions (reported by the signing platform with the owner's token) --


def record_received(package: Package | None, caller: str, order: int, at: datetime) -> Decision:
    package = _owned(package, caller)
    _in_progress(package)
    recipient = package.recipient(order)
    if recipient.status != "pending":
        raise StateConflict(
            "The recipient has already received the package", code="recipient_already_received"
        )
    if package.workflow_type == "sequential" and any(
        r.status != "signed" for r in package.recipients if r.order < order
    ):
        raise StateConflict(
            "Recipients before this order have not signed yet", code="earlier_recipients_pending"
        )
    received = replace(recipient, status="received", received_at=at)
    return Decision(package.with_recipient(received), (Change("recipient_received", order),))


def _acting(package: Package, order: int) -> Recipient:
    _in_progress(package)
    recipient = package.recipient(order)
    if recipient.status == "signed":
        raise StateConflict("The recipient has already signed", code="recipient_already_signed")
    if recipient.status != "received":
        raise StateConflict(
            "The recipient has not received the package", code="recipient_not_received"
        )
    return recipient


def record_signed(package: Package | None, caller: str, order: int, at: datetime) -> Decision:
    """The recipient signed; when everyone has, the workflow is completed."""
    package = _owned(package, caller)
    recipient = _acting(package, order)
    package = package.with_recipient(replace(recipient, status="signed", signed_at=at))
    changes = [Change("recipient_signed", order)]
    if all(r.status == "signed" for r in package.recipients):
        package = replace(package, state="completed", finished_at=at)
        changes.append(Change("workflow_completed"))
    return Decision(package, tuple(changes))


def record_declined(
    package: Package | None, caller: str, order: int, at: datetime, reason: str | None
) -> Decision:
    """The recipient declined: the workflow is declined."""
    package = _owned(package, caller)
    recipient = _acting(package, order)
    package = package.with_recipient(replace(recipient, status="declined", declined_at=at))
    package = replace(package, state="declined", finished_at=at)
    details = {"reason": reason} if reason else {}
    return Decision(
        package, (Change("recipient_declined", order, details), Change("workflow_declined", order))
    )


# -- SigningHub: update workflow user authentication (document opening) --


def update_recipient_authentication(
    package: Package | None,
    caller: str,
    order: int,
    body: SigningHubAuthenticationBody,
    password_hash: str | None,
    provisioned: RecipientTotp | None = None,
) -> Decision:
    """Set the authentication and access duration of one recipient, or of all of them.

    Only in draft and not locked. A section of the body left out leaves that part as it is;
    a password left out, null or empty keeps the recipient's existing one.
    """
    package = _owned_unlocked(package, caller)
    if package.state != "draft":
        raise NotDraft()
    package.recipient(order)
    if provisioned is not None and body.apply_to_all:
        raise InvalidSettings(
            "A provisioned TOTP secret is for one recipient: set it without apply_to_all",
            field="body.authentication.totp.source",
        )
    targets = package.recipients if body.apply_to_all else (package.recipient(order),)
    changes = []
    for recipient in targets:
        changed = recipient
        if body.authentication is not None:
            changed = changed.with_authentication(
                _signinghub_authentication(
                    recipient, body.authentication, password_hash, provisioned
                )
            )
        if body.access_duration is not None:
            changed = replace(changed, access_window=access_window(body.access_duration))
            if changed.authentication_version == recipient.authentication_version:
                changed = changed.with_authentication(changed.authentication)
        package = package.with_recipient(changed)
        changes.append(
            Change(
                "recipient_authentication_updated",
                recipient.order,
                _policy_details(
                    changed,
                    shape="signinghub",
                    secret_changed=password_hash is not None and _has_secret(changed),
                ),
            )
        )
    return Decision(package, tuple(changes))


def _signinghub_authentication(
    recipient: Recipient,
    setting: AuthenticationSetting,
    password_hash: str | None,
    provisioned: RecipientTotp | None,
) -> Authentication | None:
    current = recipient.authentication
    if not setting.enabled:
        return None
    methods: list[Method] = []
    secret_hash = None
    if setting.password and setting.password.enabled:
        methods.append("password")
        secret_hash = password_hash or (
            current.secret_hash if current and current.uses_secret else None
        )
        if secret_hash is None:
            raise InvalidSettings(
                "A password is required to enable password authentication for a recipient who has none",
                field="body.authentication.password.user_password",
            )
    mobile = None
    fallback: tuple[FallbackChannel, ...] = ()
    if setting.sms_otp and setting.sms_otp.enabled:
        methods.append("sms_otp")
        mobile = setting.sms_otp.mobile_number
        fallback = tuple(setting.sms_otp.fallback)
    totp = None
    if setting.totp and setting.totp.enabled:
        methods.append("totp")
        totp = recipient_totp(
            recipient, setting.totp.source, provisioned, "body.authentication.totp.source"
        )
    base = current or Authentication(methods=(), frequency=SIGNINGHUB_FREQUENCY)
    return replace(
        base,
        methods=tuple(methods),
        secret_hash=secret_hash,
        mobile_number=mobile,
        locale=setting.locale or base.locale,
        brand_name=setting.brand_name or base.brand_name,
        totp=totp,
        otp_fallback=fallback,
    )


def access_window(duration: AccessDuration) -> AccessWindow | None:
    """The window a SigningHub access duration describes (the contract ensures one kind)."""
    if not duration.enabled:
        return None
    by_date = duration.duration_by_date
    if by_date and by_date.enabled and by_date.duration:
        return AccessWindow(
            starts_at=by_date.duration.start_date_time, ends_at=by_date.duration.end_date_time
        )
    by_days = duration.duration_by_days
    assert by_days and by_days.duration
    return AccessWindow(days_after_receipt=by_days.duration.total_days)


# -- BoldSign: add / remove authentication, change access code --


def _boldsign_signer(
    package: Package | None, caller: str, reference: SignerReference
) -> tuple[Package, Recipient]:
    """The signer a BoldSign body names, if its authentication may change now.

    Allowed in draft and in progress (BoldSign changes authentication of sent documents),
    never once the workflow is finished, nor for a signer who has signed or declined.
    """
    package = _owned_unlocked(package, caller)
    if package.state in FINISHED:
        raise StateConflict(
            f"Authentication cannot be changed on a {package.state} document",
            code="workflow_finished",
        )
    if reference.on_behalf_of is not None and (
        package.on_behalf_of is None
        or package.on_behalf_of.lower() != reference.on_behalf_of.lower()
    ):
        raise InvalidSettings(
            "onBehalfOf is not the sender identity of this document", field="body.onBehalfOf"
        )
    email = reference.email_id.lower()
    signers = [r for r in package.recipients if r.email.lower() == email and r.role == "signer"]
    if not signers:
        raise InvalidSettings(
            "emailId is not a signer of this document",
            field="body.emailId",
            code="signer_not_found",
        )
    if reference.order is not None:
        signers = [r for r in signers if r.order == reference.order]
        if not signers:
            raise InvalidSettings(
                "No signer with this emailId at the given order",
                field="body.order",
                code="signer_not_found",
            )
    elif len(signers) > 1:
        raise InvalidSettings(
            "order is required: this signer appears more than once",
            field="body.order",
            code="order_required",
        )
    [signer] = signers
    if signer.status in ("signed", "declined"):
        raise StateConflict(
            f"The signer has already {signer.status}", code=f"recipient_already_{signer.status}"
        )
    return package, signer


def add_authentication(
    package: Package | None,
    caller: str,
    body: AddAuthenticationBody,
    access_code_hash: str | None,
    provisioned: RecipientTotp | None = None,
) -> Decision:
    """Give one signer AccessCode, EmailOTP, SMSOTP or TOTP authentication (replacing what they had)."""
    package, signer = _boldsign_signer(package, caller, body)
    method = BOLDSIGN_TYPES[body.authentication_type]
    mobile = None
    if method == "sms_otp":
        mobile = body.phone_number.e164 if body.phone_number else signer.mobile_number
        if mobile is None:
            raise InvalidSettings(
                "phoneNumber is required: the signer has no mobile number on record",
                field="body.phoneNumber",
            )
    if method == "access_code" and access_code_hash is None:
        raise InvalidSettings(
            "an access code is required for AccessCode authentication", field="body.accessCode"
        )
    totp = None
    if method == "totp":
        totp = recipient_totp(signer, body.totp_source, provisioned, "body.totpSource")
    verification = body.identity_verification_settings
    authentication = Authentication(
        methods=(method,),
        totp=totp,
        secret_hash=access_code_hash if method == "access_code" else None,
        mobile_number=mobile,
        retry_count=body.authentication_retry_count or DEFAULT_RETRY_COUNT,
        frequency=verification.type if verification else BOLDSIGN_FREQUENCY,
        identity_verification=IdentityVerification(**verification.model_dump(by_alias=False))
        if verification
        else None,
        on_behalf_of=body.on_behalf_of,
        locale=body.locale,
        brand_name=body.brand_name,
        otp_fallback=tuple(body.otp_fallback),
    )
    changed = signer.with_authentication(authentication)
    return Decision(
        package.with_recipient(changed),
        (
            Change(
                "recipient_authentication_updated",
                signer.order,
                _policy_details(changed, shape="boldsign", secret_changed=method == "access_code"),
            ),
        ),
    )


def remove_authentication(package: Package | None, caller: str, body: SignerReference) -> Decision:
    """The signer opens the document without authentication from now on."""
    package, signer = _boldsign_signer(package, caller, body)
    changed = signer.with_authentication(None)
    return Decision(
        package.with_recipient(changed), (Change("recipient_authentication_removed", signer.order),)
    )


def change_access_code(
    package: Package | None, caller: str, body: ChangeAccessCodeBody, access_code_hash: str
) -> Decision:
    package, signer = _boldsign_signer(package, caller, body)
    if signer.authentication is None or not signer.authentication.uses_secret:
        raise StateConflict(
            "The signer does not authenticate with an access code", code="not_access_code"
        )
    changed = signer.with_authentication(
        replace(signer.authentication, secret_hash=access_code_hash)
    )
    return Decision(
        package.with_recipient(changed),
        (
            Change(
                "recipient_authentication_updated",
                signer.order,
                _policy_details(changed, shape="boldsign", secret_changed=True),
            ),
        ),
    )


# -- unlocking one recipient --


def reset_recipient_authentication(
    package: Package | None,
    caller: str,
    order: int,
    *,
    method: Method | None = None,
    secret_hash: str | None = None,
    mobile_number: str | None = None,
    totp_source: TotpSource | None = None,
    provisioned: RecipientTotp | None = None,
) -> Decision:
    """Clear one recipient's failures and lockout, optionally with a new secret or method (or a
    new authenticator set-up, for totp).

    Nothing else changes: not the other recipients, not any signature, not the package
    state. Resetting twice leaves the recipient as resetting once does.
    """
    package = _owned_unlocked(package, caller)
    if package.state in FINISHED:
        raise StateConflict(f"The workflow is {package.state}", code="workflow_finished")
    recipient = package.recipient(order)
    current = recipient.authentication
    authentication = current
    if any(given is not None for given in (method, secret_hash, mobile_number, totp_source)):
        authentication = _reset_authentication(
            recipient, method, secret_hash, mobile_number, totp_source, provisioned
        )
    changed = recipient.with_authentication(authentication, failed_attempts=0, locked_out_at=None)
    details = {
        "was_locked": recipient.locked_out_at is not None,
        "failures_cleared": recipient.failed_attempts,
        "method_changed": (current.methods if current else ())
        != (authentication.methods if authentication else ()),
        "secret_changed": secret_hash is not None or provisioned is not None,
    }
    return Decision(
        package.with_recipient(changed), (Change("recipient_authentication_reset", order, details),)
    )


def _reset_authentication(
    recipient: Recipient,
    method: Method | None,
    secret_hash: str | None,
    mobile_number: str | None,
    totp_source: TotpSource | None = None,
    provisioned: RecipientTotp | None = None,
) -> Authentication:
    current = recipient.authentication or Authentication(methods=(), frequency=BOLDSIGN_FREQUENCY)
    methods = (method,) if method else current.methods
    if not methods:
        raise InvalidSettings(
            "method is required: the recipient has no authentication", field="method"
        )
    uses_secret = bool(SECRET_METHODS & set(methods))
    if secret_hash is not None and not uses_secret:
        raise InvalidSettings(
            "access_code applies only to password or access_code authentication",
            field="access_code",
        )
    secret = secret_hash or (current.secret_hash if current.uses_secret else None)
    if uses_secret and secret is None:
        raise InvalidSettings("access_code is required for this method", field="access_code")
    if mobile_number is not None and "sms_otp" not in methods:
        raise InvalidSettings("mobile_number applies only to SMS OTP", field="mobile_number")
    mobile = None
    if "sms_otp" in methods:
        mobile = mobile_number or current.mobile_number or recipient.mobile_number
        if mobile is None:
            raise InvalidSettings(
                "mobile_number is required: the recipient has none on record", field="mobile_number"
            )
    if totp_source is not None and "totp" not in methods:
        raise InvalidSettings("totp_source applies only to TOTP", field="totp_source")
    totp = None
    if "totp" in methods:
        if totp_source is not None:
            totp = recipient_totp(recipient, totp_source, provisioned, "totp_source")
        elif current.totp is not None:
            totp = current.totp
        else:
            raise InvalidSettings(
                "totp_source is required: the recipient has no authenticator set up",
                field="totp_source",
                code="totp_without_authenticator",
            )
    return replace(
        current,
        methods=methods,
        secret_hash=secret if uses_secret else None,
        mobile_number=mobile,
        totp=totp,
        otp_fallback=current.otp_fallback if "sms_otp" in methods else (),
    )


# -- authenticator-app codes (TOTP) --


def recipient_totp(
    recipient: Recipient,
    source: TotpSource,
    provisioned: RecipientTotp | None,
    field_path: str,
) -> RecipientTotp:
    """What the recipient's codes are checked against: the authenticator app of the API user the
    owner named as their signer (by id, at registration: nothing the user edits), or the secret
    just provisioned for them. Without either there is nothing to check a code against: 400."""
    if source == "user_authenticator":
        if recipient.signer_user_id is None:
            raise InvalidSettings(
                "TOTP from the user's authenticator app needs the recipient's signer_user_id: "
                "the API user whose app opens the package",
                field=field_path,
                code="totp_without_authenticator",
            )
        return RecipientTotp("user_authenticator")
    if provisioned is None:
        raise InvalidSettings(
            "A provisioned TOTP secret is for one recipient", field=field_path
        )  # the handler provisions one for every command that asks (`provisions_totp`)
    return provisioned


# -- facts reported by the authentication service --


@dataclass(frozen=True)
class AuthenticationFact:
    """A success, failure, lockout or clearing the authentication service reported."""

    action: str
    order: int | None
    at: datetime
    failed_attempts: int | None = None
    """The recipient's failure count after this fact, where it says."""
    locked: bool | None = None
    """Whether the recipient is locked out after this fact, where it says."""
    details: Mapping[str, Any] = field(default_factory=dict)


def record_authentication_fact(package: Package, fact: AuthenticationFact) -> Decision:
    """Keep the workflow's view of a recipient's failures and lockout, and the history entry."""
    change = Change(fact.action, fact.order, fact.details)
    if fact.order is None or fact.order not in {r.order for r in package.recipients}:
        return Decision(package, (change,))
    recipient = package.recipient(fact.order)
    if fact.failed_attempts is not None:
        recipient = replace(recipient, failed_attempts=fact.failed_attempts)
    if fact.locked is True and recipient.locked_out_at is None:
        recipient = replace(recipient, locked_out_at=fact.at)
    elif fact.locked is False:
        recipient = replace(recipient, locked_out_at=None)
    return Decision(package.with_recipient(recipient), (change,))


# -- one entry for every command that changes a package --

CHANGES: tuple[type[Command], ...] = (
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
)


def secret_of(command: Command) -> Secret | None:
    """The password or access code a command carries in clear, to be hashed before deciding."""
    match command:
        case UpdateRecipientAuthentication(
            body=SigningHubAuthenticationBody(authentication=setting)
        ):
            return setting.password.user_password if setting and setting.password else None
        case AddAuthentication() | ChangeAccessCode():
            return command.body.access_code
        case ResetRecipientAuthentication():
            return command.access_code
    return None


def decide(
    command: Command,
    package: Package | None,
    caller: str | Caller,
    secret_hash: str | None,
    provisioned: RecipientTotp | None = None,
) -> Decision:
    """Apply one of `CHANGES` to the package as it is; ``secret_hash`` is the hash of `secret_of`,
    ``provisioned`` the TOTP secret made for a command that `provisions_totp`."""
    at = command.occurred_at
    if isinstance(command, RegisterPackage):
        return register_package(package, caller, command, at)
    if isinstance(caller, Caller):
        caller = caller.user_id
    match command:
        case ShareWorkflow():
            return share_workflow(package, caller, at)
        case LockWorkflow():
            return lock_workflow(package, caller)
        case UnlockWorkflow():
            return unlock_workflow(package, caller)
        case TerminateWorkflow():
            return terminate_workflow(package, caller, at, command.reason)
        case RecordRecipientReceived():
            return record_received(package, caller, command.order, command.received_at or at)
        case RecordRecipientSigned():
            return record_signed(package, caller, command.order, command.signed_at or at)
        case RecordRecipientDeclined():
            return record_declined(
                package, caller, command.order, command.declined_at or at, command.reason
            )
        case UpdateRecipientAuthentication():
            return update_recipient_authentication(
                package, caller, command.order, command.body, secret_hash, provisioned
            )
        case AddAuthentication():
            return add_authentication(package, caller, command.body, secret_hash, provisioned)
        case RemoveAuthentication():
            return remove_authentication(package, caller, command.body)
        case ChangeAccessCode():
            assert secret_hash is not None  # the contract refuses an empty access code
            return change_access_code(package, caller, command.body, secret_hash)
        case ResetRecipientAuthentication():
            return reset_recipient_authentication(
                package,
                caller,
                command.order,
                method=command.method,
                secret_hash=secret_hash,
                mobile_number=command.mobile_number,
                totp_source=command.totp_source,
                provisioned=provisioned,
            )
    raise TypeError(f"{type(command).__name__} does not change a package")


# -- queries --


def readable_recipient(
    package: Package | None, caller: str, order: int
) -> tuple[Package, Recipient]:
    """The owner may read a recipient's settings (without secrets)."""
    package = _owned(package, caller)
    return package, package.recipient(order)


def invitable_recipient(
    package: Package | None, caller: str, order: int
) -> tuple[Package, Recipient]:
    """The owner may have a new invitation issued for a recipient of a package that is out (shared
    and not finished), who has not yet signed or declined."""
    package = _owned(package, caller)
    _in_progress(package)
    recipient = package.recipient(order)
    if recipient.status in ("signed", "declined"):
        raise StateConflict(
            f"The recipient has already {recipient.status}",
            code=f"recipient_already_{recipient.status}",
        )
    return package, recipient


def readable_history(package: Package | None, caller: str) -> Package:
    return _owned(package, caller)


def _has_secret(recipient: Recipient) -> bool:
    return bool(recipient.authentication and recipient.authentication.uses_secret)


def _policy_details(recipient: Recipient, *, shape: str, secret_changed: bool) -> dict[str, Any]:
    """What a history entry says about a policy change: never a secret or a destination."""
    authentication = recipient.authentication
    return {
        "shape": shape,
        "methods": list(authentication.methods) if authentication else [],
        "retry_count": authentication.retry_count if authentication else None,
        "frequency": authentication.frequency if authentication else None,
        "access_window": recipient.access_window is not None,
        "secret_changed": secret_changed,
    }
