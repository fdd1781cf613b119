"""Rules of recipient authentication, with no I/O: who may try, when, and what a result means.

The service keeps a projection of each recipient's policy (from workflow events); these
functions decide on it. Failures are counted atomically in Redis and the lock is recorded
durably in Postgres by the handlers; what a count means is `RecipientAttempts`'s alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from libs.runtime.errors import BadRequest, Forbidden, NotFound, Refusal, Unauthorized
from libs.security.invitations import Invitation
from signgate_contracts.authentication import RevocationReason
from signgate_contracts.otp import PHONE_CHANNELS, Channel, FallbackStep
from signgate_contracts.workflow import DEFAULT_RETRY_COUNT

Method = Literal["password", "access_code", "sms_otp", "email_otp", "totp"]
Frequency = Literal["EveryAccess", "UntilSignCompleted", "OncePerDocument"]
SECRET_METHODS: frozenset[str] = frozenset({"password", "access_code"})
OTP_METHODS: frozenset[str] = frozenset({"sms_otp", "email_otp"})
TOTP_METHODS: frozenset[str] = frozenset({"totp"})
AttemptKind = Literal["secret", "otp", "totp"]
"""What an attempt submitted: a password or access code (``secret``), a one-time password sent to
the recipient (``otp``), or a code from an authenticator app (``totp``)."""
METHODS_OF: dict[AttemptKind, frozenset[str]] = {
    "secret": SECRET_METHODS,
    "otp": OTP_METHODS,
    "totp": TOTP_METHODS,
}
TERMINAL_STATES = frozenset({"completed", "declined", "terminated"})

ACCESS_PERIOD_ENDED = "You cannot access this document after the access period ends"
ACCESS_PERIOD_NOT_STARTED = "You cannot access this document before the access period starts"
DOCUMENT_NOT_FOUND = "Document not found"
NO_USER_AT_ORDER = "No user found at given order"
RECIPIENT_LOCKED = "Too many failed attempts: the recipient is locked until the sender resets it"
EVERY_ACCESS_GRANT = timedelta(minutes=15)
"""An EveryAccess grant opens the document once: it is short-lived and single-purpose."""
GRANT_LIFETIME = timedelta(minutes=30)
"""The longest any grant lasts (``SIGNGATE_GRANT_LIFETIME``): one sitting of reading and signing, as
an API user's token (30 minutes). A viewer checks the grant when it opens the document; a
recipient back after it has expired authenticates again."""
REVOCATION_MARGIN = timedelta(minutes=5)
"""A grant expired less than this long ago is still revoked: verifiers allow a little clock skew
(`signgate_client.GrantVerifier`'s leeway: 30 seconds by default, 2 minutes at most)."""


class RecipientLocked(Refusal):
    status, code = 403, "recipient_locked"


class AccessPeriodClosed(Forbidden):
    code = "access_period_closed"


class InvitationNotValid(Unauthorized):
    """A genuine invitation, but not for this recipient, or issued before their authentication last
    changed (a reset, a change or a removal)."""

    code = "invitation_not_valid"

    def __init__(self) -> None:
        super().__init__("Request authorization denied")


class AuthenticationChanged(Refusal):
    """The recipient's authentication changed while they were authenticating: no grant on the old one."""

    status, code = 409, "authentication_changed"


class AuthenticationNotEnabled(BadRequest):
    code = "authentication_not_enabled"


class WrongMethod(BadRequest):
    code = "wrong_authentication_method"


TOTP_NOT_SET_UP = (
    "No authenticator app is set up for this recipient: the API user named as their signer has "
    "none confirmed"
)


class TotpCodeUsed(Refusal):
    """A right code from the authenticator app, but its time step (or a later one) opened already:
    refused without spending an attempt, so a replayed code never locks the rightful recipient."""

    status, code = 409, "totp_code_used"


class TotpNotSetUp(BadRequest):
    code = "totp_without_authenticator"


SIGNER_NOT_MEMBER = (
    "The API user named as this recipient's signer is not a member of the package's account: "
    "their authenticator app opens nothing here"
)


class SignerNotMember(Forbidden):
    """The signer's app opens packages of their own accounts only, as their token signs only
    those (seed 002): an owner cannot point a recipient at any user's authenticator."""

    code = "signer_not_member"


@dataclass(frozen=True)
class AccessWindow:
    """When a recipient may open the package: by dates, or by days after they received it."""

    start: datetime | None = None
    end: datetime | None = None
    days: int | None = None

    def closes_at(self, received_at: datetime | None) -> datetime | None:
        if self.days is not None:
            return received_at + timedelta(days=self.days) if received_at else None
        return self.end

    def check(self, now: datetime, received_at: datetime | None) -> None:
        """Refuse outside the window: 403 with a clear message before, the seed's text after."""
        if self.start is not None and now < self.start:
            raise AccessPeriodClosed(ACCESS_PERIOD_NOT_STARTED, code="access_period_not_started")
        closes = self.closes_at(received_at)
        if closes is not None and now > closes:
            raise AccessPeriodClosed(ACCESS_PERIOD_ENDED, code="access_period_ended")


@dataclass(frozen=True)
class RecipientPolicy:
    """What the authentication service knows of one recipient, projected from workflow events."""

    package_id: str
    order: int
    email: str
    """The keyed digest of the email, as workflow publishes it."""
    methods: tuple[Method, ...] = ()
    """Every listed method is required (SigningHub allows a password and an SMS OTP together)."""
    retry_count: int = DEFAULT_RETRY_COUNT
    frequency: Frequency = "OncePerDocument"
    window: AccessWindow = AccessWindow()
    destination: str | None = None
    """Phone number (E.164) for SMS OTP, or email for email OTP; unmasked, never published."""
    secret_hash: str | None = None
    received_at: datetime | None = None
    signed_at: datetime | None = None
    package_state: str = "in_progress"
    locked_at: datetime | None = None
    authentication_version: int = 0
    """Raised by workflow on every change of the authentication; invitations carry it."""
    signer_user_id: str | None = None
    """The API user the owner named as the recipient's signer (whose authenticator app may open)."""
    totp_source: str | None = None
    """For totp: ``user_authenticator`` (the signer's app) or ``provisioned``."""
    totp_authenticator_id: str | None = None
    totp_sealed: str | None = None
    """The provisioned secret, as workflow sealed it to this service (opened to check a code)."""

    otp_fallback: tuple[str, ...] = ()
    """Where a failed text falls back to, in order (``voice``, ``email``), as the sender chose."""
    fallback_email: str | None = None
    """The recipient's email for the ``email`` fallback; unmasked, never published."""

    @property
    def totp_subject(self) -> str:
        """Whose TOTP steps a code of this recipient spends (`libs.security.totp.UsedSteps`): the
        API user's (the same subject as at their login: a code is used once for either), or this
        recipient's provisioned secret's."""
        if self.totp_source == "user_authenticator":
            return f"user:{self.signer_user_id}"
        return f"recipient:{self.package_id}/{self.order}/{self.totp_authenticator_id}"

    @property
    def locked(self) -> bool:
        return self.locked_at is not None

    def uses(self, kind: AttemptKind) -> bool:
        """Whether one of the recipient's methods is of ``kind``."""
        return not METHODS_OF[kind].isdisjoint(self.methods)

    def method_for(self, expected: frozenset[str]) -> Method:
        """The one of the recipient's methods of the ``expected`` kind."""
        return next(m for m in self.methods if m in expected)


def admit_invitation(
    invitation: Invitation,
    package_id: str,
    order: int | None,
    email_digest: str | None,
    policy: RecipientPolicy | None,
) -> None:
    """Whether a genuine ``invitation`` lets its holder act for the recipient a command names:
    the same package and recipient, at the recipient's current authentication version."""
    if invitation.package_id != package_id or (order is not None and order != invitation.order):
        raise InvitationNotValid()
    if policy is None or policy.authentication_version != invitation.version:
        raise InvitationNotValid()
    if email_digest is not None and policy.email != email_digest:
        raise InvitationNotValid()


def check_attempt(
    policy: RecipientPolicy | None, now: datetime, expected: frozenset[str]
) -> RecipientPolicy:
    """Whether this recipient may try the ``expected`` kind of method now; returns the policy."""
    if policy is None:
        raise NotFound(NO_USER_AT_ORDER, code="recipient_not_found")
    if policy.package_state in TERMINAL_STATES:
        raise Forbidden(f"The package is {policy.package_state}", code="package_closed")
    if not policy.methods:
        raise AuthenticationNotEnabled("Authentication is not enabled for this recipient")
    if not expected.intersection(policy.methods):
        raise WrongMethod(f"This recipient authenticates with {' and '.join(policy.methods)}")
    if policy.locked:
        raise RecipientLocked(RECIPIENT_LOCKED)
    policy.window.check(now, policy.received_at)
    return policy


@dataclass(frozen=True)
class Failure:
    """What one wrong attempt leaves of the recipient's retry count."""

    attempts_used: int
    attempts_remaining: int
    locks: bool
    """This attempt spends the retry count: the recipient is locked until the sender resets them."""
    counted: bool = True
    """False: the retry count was spent before this attempt (nothing was checked or counted)."""


@dataclass(frozen=True)
class RecipientAttempts:
    """All of one recipient's lockout arithmetic: one retry count shared by every method.

    Wrong secrets (passwords, access codes), wrong one-time passwords and wrong authenticator-app
    codes are counted apart, each atomically in Redis (`failures.SecretFailures`,
    `libs.security.otp_store`), as each success clears only its own; but a recipient who must pass
    several is locked by the retry count's worth of wrong attempts of all kinds together, not by
    that many of each. So each counter counts up to a ceiling, what the other kinds have left
    (`ceiling`), and the attempt that brings the sum to the retry count locks (`locks`). The
    counters are written only by the package's commands, handled one at a time in order (one key,
    one partition), so their sum is exact. The lock itself is durable in Postgres
    (``recipients.locked_at``, with the failures it was taken at).
    """

    retry_count: int = DEFAULT_RETRY_COUNT
    secret_failures: int = 0
    otp_failures: int = 0
    totp_failures: int = 0
    """Wrong authenticator-app codes, counted apart as the others (`failures.SecretFailures`)."""
    locked: bool = False
    locked_failures: int | None = None
    """The failures the durable lock was taken at (they outlive a Redis loss)."""

    def failures_of(self, kind: AttemptKind) -> int:
        return {
            "secret": self.secret_failures,
            "otp": self.otp_failures,
            "totp": self.totp_failures,
        }[kind]

    def failures_besides(self, kind: AttemptKind) -> int:
        """Wrong attempts of the kinds other than ``kind``."""
        return (
            self.secret_failures + self.otp_failures + self.totp_failures - self.failures_of(kind)
        )

    def ceiling(self, kind: AttemptKind) -> int:
        """How many failures the counter of ``kind`` may hold: what the other kind has left."""
        return max(self.retry_count - self.failures_besides(kind), 0)

    def locks(self, used: int) -> bool:
        """Whether ``used`` wrong attempts lock the recipient: the retry count's-th does (with the
        default of 3, the third wrong code or password locks)."""
        return used >= self.retry_count

    def wrong_attempt(self, kind: AttemptKind, counted: int | None) -> Failure:
        """A wrong attempt of ``kind``, whose counter (counted up to `ceiling`) now holds
        ``counted``; None when it held its ceiling already and counted nothing: then this attempt
        is the one that spends the retry count, and takes the lock if nothing took it yet."""
        if counted is None:
            return Failure(self.retry_count, 0, locks=True, counted=False)
        used = counted + self.failures_besides(kind)
        return Failure(used, max(self.retry_count - used, 0), self.locks(used))

    @property
    def used(self) -> int:
        """What the status query reports as used: the failures the lock was taken at, else both
        counters together."""
        if self.locked and self.locked_failures:
            return self.locked_failures
        return self.secret_failures + self.otp_failures + self.totp_failures

    @property
    def remaining(self) -> int:
        return 0 if self.locked else max(self.retry_count - self.used, 0)


def grant_expiry(
    policy: RecipientPolicy, now: datetime, lifetime: timedelta = GRANT_LIFETIME
) -> datetime:
    """When a grant issued ``now`` expires: never later than ``lifetime`` from now, nor than the end
    of the recipient's access window.

    EveryAccess: this opening only (a shorter grant still). UntilSignCompleted: until the recipient
    signs (the signature revokes it). OncePerDocument: while the package lives (its end revokes it).
    """
    bounds = [now + lifetime]
    if policy.frequency == "EveryAccess":
        bounds.append(now + EVERY_ACCESS_GRANT)
    closes = policy.window.closes_at(policy.received_at)
    if closes is not None:
        bounds.append(closes)
    return min(bounds)


def grant_still_current(
    policy: RecipientPolicy, version: int | None, package_state: str | None
) -> None:
    """Whether a grant may still be issued on ``policy``, now that the recipient's row is locked: a
    change, reset or removal of their authentication (a new ``version``) or the package's end that
    committed meanwhile would otherwise revoke nothing, as the grant was not yet recorded."""
    if version is None or package_state is None:
        raise NotFound(NO_USER_AT_ORDER, code="recipient_not_found")
    if package_state in TERMINAL_STATES:
        raise Forbidden(f"The package is {package_state}", code="package_closed")
    if version != policy.authentication_version:
        raise AuthenticationChanged(
            "The recipient's authentication changed meanwhile: authenticate again"
        )


@dataclass(frozen=True)
class Revocation:
    """Which grants a workflow fact ends: the recipient's at ``order``, or (None) all of the package's."""

    reason: RevocationReason
    order: int | None

    @property
    def whole_package(self) -> bool:
        return self.order is None


RECIPIENT_REVOCATIONS: dict[str, RevocationReason] = {
    "workflow.recipient_signed": "recipient_signed",
    "workflow.recipient_declined": "recipient_declined",
    "workflow.recipient_authentication_updated": "authentication_changed",
    "workflow.recipient_authentication_updated_v2": "authentication_changed",
    "workflow.recipient_authentication_reset": "authentication_reset",
    "workflow.recipient_authentication_reset_v2": "authentication_reset",
    "workflow.recipient_authentication_removed": "authentication_removed",
}
PACKAGE_REVOCATIONS: dict[str, RevocationReason] = {
    "workflow.workflow_completed": "package_completed",
    "workflow.workflow_declined": "package_declined",
    "workflow.workflow_terminated": "package_terminated",
}


def revocation_for(event_type: str, order: int | None = None) -> Revocation | None:
    """The grants a workflow fact of ``event_type`` (about the recipient at ``order``) revokes: a
    recipient's when they sign or decline or their authentication changes, is reset or removed;
    every recipient's when the package ends; none for any other fact."""
    if event_type in PACKAGE_REVOCATIONS:
        return Revocation(PACKAGE_REVOCATIONS[event_type], None)
    if event_type in RECIPIENT_REVOCATIONS and order is not None:
        return Revocation(RECIPIENT_REVOCATIONS[event_type], order)
    return None


# -- OTP channels and delivery fallback --

OTP_CHANNEL_NOT_ALLOWED = "This recipient's code cannot be sent by {channel}: {allowed}"


@dataclass(frozen=True)
class OtpDeliveryPlan:
    """How a recipient's code goes: by ``channel`` first, then by each ``fallback`` step in order."""

    channel: Channel
    fallback: list[FallbackStep]


def otp_delivery_plan(
    policy: RecipientPolicy, channel_on_record: Channel, chosen: Channel | None
) -> OtpDeliveryPlan:
    """The channel the recipient (or the caller for them) picked, among those the policy allows (a
    phone number allows sms and voice; an email, email), and where it falls back to: the policy's
    fallback channels after it, in the sender's order (voice to the same number, email to the
    recipient's address). A policy without fallback gives none; a pick it does not allow is a 400."""
    assert policy.destination is not None
    allowed = sorted(PHONE_CHANNELS) if channel_on_record in PHONE_CHANNELS else ["email"]
    first = chosen or channel_on_record
    if first not in allowed:
        raise BadRequest(
            OTP_CHANNEL_NOT_ALLOWED.format(channel=first, allowed=" or ".join(allowed)),
            code="otp_channel_not_allowed",
            field="channel",
        )
    destinations: dict[str, str | None] = {
        "voice": policy.destination if channel_on_record in PHONE_CHANNELS else None,
        "email": policy.fallback_email,
    }
    fallback = [
        FallbackStep(channel=channel, destination=address)  # type: ignore[arg-type]
        for channel in policy.otp_fallback
        if channel != first and (address := destinations.get(channel))
    ]
    return OtpDeliveryPlan(first, fallback)
