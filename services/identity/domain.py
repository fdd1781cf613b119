"""The identity service's rules: profiles, memberships, passwords, lockout, expiry, who may do what.

No I/O here: the use cases load state, ask these functions, and store what they decide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar, Literal
from urllib.parse import quote

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from libs.runtime.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from libs.security.tokens import AccountDisabled, Claims
from signgate_contracts.identity import AccountMembership, FailureReason, normalise_user_name

# Re-exported: the key of every identity record; the refusal of a disabled user's request.
__all__ = ["AccountDisabled", "normalise_user_name"]

ADMIN = "admin"
LockMode = Literal["temporary", "hard"]


# -- refusal families --


class UserNotFound(NotFound):
    code = "user_not_found"

    def __init__(self) -> None:
        super().__init__("User not found")


class UserExists(Conflict):
    code = "user_exists"

    def __init__(self) -> None:
        super().__init__("User already exists")


class InvalidProfile(BadRequest):
    """An email or mobile number that is not one."""

    code = "invalid_profile"


class InvalidMemberships(BadRequest):
    """Accounts that do not have exactly one primary, or name one account twice."""

    code = "invalid_accounts"


class PasswordRejected(BadRequest):
    """A new password the policy does not accept."""

    code = "password_rejected"


class NotAnAdministrator(Forbidden):
    code = "not_an_administrator"

    def __init__(self) -> None:
        super().__init__("User is not allowed to perform this action")


class InvalidCredentials(Unauthorized):
    """A password change whose current password is wrong (or whose user is unknown)."""

    code = "invalid_credentials"

    def __init__(self) -> None:
        super().__init__("Invalid credentials")


class AccountLocked(Forbidden):
    """Told only to a caller who proved the password."""

    code = "account_locked"

    def __init__(self) -> None:
        super().__init__("Account is locked")


# -- profiles and memberships --


def valid_email(email: str | None) -> str | None:
    """The normalised address (domain lower-cased), or a refusal naming the field."""
    if email is None or not email.strip():
        return None
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        raise InvalidProfile("Email address is not valid", field="email") from None


_SMS_CAPABLE = {
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
}


def valid_mobile_number(number: str | None) -> str | None:
    """The number in E.164, if it is a valid mobile number with its country code."""
    if number is None or not number.strip():
        return None
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        parsed = None
    if (
        parsed is None
        or not phonenumbers.is_valid_number(parsed)
        or phonenumbers.number_type(parsed) not in _SMS_CAPABLE
    ):
        raise InvalidProfile(
            "Mobile number must be a valid mobile number in international form: + and the country code, "
            "then the number",
            field="mobile_number",
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def valid_memberships(accounts: Sequence[AccountMembership]) -> list[AccountMembership]:
    """The memberships, if they name each account once and exactly one is primary."""
    identifiers = [a.context_identifier for a in accounts]
    if len(set(identifiers)) != len(identifiers):
        raise InvalidMemberships("An account is listed more than once", field="accounts")
    primaries = sum(a.is_primary for a in accounts)
    if primaries != 1:
        raise InvalidMemberships(
            "Exactly one account must be the primary account", field="accounts"
        )
    return sorted(
        accounts, key=lambda a: (not a.is_primary, a.name.lower(), str(a.context_identifier))
    )


# -- passwords --


@dataclass(frozen=True)
class PasswordPolicy:
    """NIST SP 800-63B: a minimum length, no composition rules, and no periodic expiry by default.

    SP 800-63B (section 5.1.1.2) says verifiers SHOULD NOT require memorised secrets to be
    changed arbitrarily (periodically), only on evidence of compromise; ``max_age`` exists
    for deployments whose own policy demands it and is off unless set.
    """

    min_length: int = 8
    max_length: int = 1024
    max_age: timedelta | None = None


def check_new_password(password: str, user_name: str, policy: PasswordPolicy) -> None:
    """Refuse a password that is too short or too long, or that is the user name."""
    if len(password) < policy.min_length:
        raise PasswordRejected(
            f"Password must be at least {policy.min_length} characters long", field="password"
        )
    if len(password) > policy.max_length:
        raise PasswordRejected(
            f"Password must be at most {policy.max_length} characters long", field="password"
        )
    if normalise_user_name(password) == normalise_user_name(user_name):
        raise PasswordRejected("Password must not be the user name", field="password")


def password_has_expired(
    *, expired_now: bool, changed_at: datetime | None, now: datetime, policy: PasswordPolicy
) -> bool:
    """Expired by an administrator's "expire now", or (if the policy sets one) by age."""
    if expired_now:
        return True
    return bool(policy.max_age and changed_at and now >= changed_at + policy.max_age)


# -- lockout --


@dataclass(frozen=True)
class LockoutPolicy:
    """After ``threshold`` failures in a row the user is locked: until an administrator unlocks
    (``hard``), or for a wait that doubles with each lockout (``temporary``).

    Temporary lockouts never let failures add up past ``hard_after`` in a row: the lockout
    that would allow a run beyond it is hard (privacyIDEA #1578 let a timed reset of the
    counter allow unlimited guesses). Only a success or an administrator's unlock resets
    the run.
    """

    threshold: int = 5
    mode: LockMode = "temporary"
    base_wait: timedelta = timedelta(minutes=5)
    max_wait: timedelta = timedelta(hours=24)
    hard_after: int = 100

    def __post_init__(self) -> None:
        if not 1 <= self.threshold <= self.hard_after:
            raise ValueError("the lockout threshold must be between 1 and hard_after")


@dataclass(frozen=True)
class Lock:
    mode: LockMode
    until: datetime | None
    """When a temporary lock ends; None for a hard lock."""


def lock_for(
    policy: LockoutPolicy, *, consecutive_failures: int, lockouts: int, now: datetime
) -> Lock:
    """The lock to impose after ``consecutive_failures`` in a row and ``lockouts`` earlier
    temporary lockouts in the same run."""
    if policy.mode == "hard" or consecutive_failures + policy.threshold > policy.hard_after:
        return Lock("hard", None)
    wait = min(policy.base_wait * (2 ** min(lockouts, 32)), policy.max_wait)
    return Lock("temporary", now + wait)


def is_locked(mode: LockMode | None, until: datetime | None, now: datetime) -> bool:
    """A hard lock holds until unlocked; a temporary one until its time has passed."""
    if mode == "hard":
        return True
    return mode == "temporary" and until is not None and now < until


# -- authentication --


@dataclass(frozen=True)
class AccountStanding:
    """What decides, once the password is right, whether a token may be issued."""

    locked: bool
    disabled: bool
    password_expired: bool
    must_change_password: bool


def refusal_reasons(standing: AccountStanding) -> list[FailureReason]:
    """Why a caller with the right password gets no token; empty when a token is due.

    Only a caller who proved the password learns these: everyone else hears
    ``invalid_credentials``.
    """
    reasons: list[FailureReason] = []
    if standing.locked:
        reasons.append("account_locked")
    if standing.disabled:
        reasons.append("account_disabled")
    if standing.password_expired:
        reasons.append("password_expired")
    elif standing.must_change_password:
        reasons.append("change_required")
    return reasons


FAILURE_TEXT: dict[str, str] = {
    "invalid_credentials": "Invalid credentials",
    "account_locked": "Account is locked",
    "account_disabled": "Account is disabled",
    "password_expired": "Password has expired",
    "change_required": "Password must be changed",
}


def render_url(template: str | None, *, user_name: str, user_id: object) -> str | None:
    """A configured URL template with ``{user_name}`` and ``{user_id}`` filled in, URL-quoted."""
    if not template:
        return None
    return template.format(
        user_name=quote(user_name, safe=""), user_id=quote(str(user_id), safe="")
    )


@dataclass(frozen=True)
class PasswordLinks:
    """Where AuthenticateUser sends a user to renew an expired password or change one (AssureSign's
    ExpiredPasswordUrl and ChangePasswordUrl): the portal's pages, unless a template replaces one."""

    portal_url: str
    expired_template: str | None = None
    change_template: str | None = None

    EXPIRED_PATH: ClassVar[str] = "/password/expired?user_name={user_name}"
    CHANGE_PATH: ClassVar[str] = "/password/change?user_name={user_name}"

    def expired(self, *, user_name: str, user_id: object) -> str:
        template = self.expired_template or self.portal_url.rstrip("/") + self.EXPIRED_PATH
        return render_url(template, user_name=user_name, user_id=user_id) or ""

    def change(self, *, user_name: str, user_id: object) -> str:
        template = self.change_template or self.portal_url.rstrip("/") + self.CHANGE_PATH
        return render_url(template, user_name=user_name, user_id=user_id) or ""


def links_for(
    reasons: Sequence[FailureReason], links: PasswordLinks, *, user_name: str, user_id: object
) -> dict[str, str]:
    """The URLs a refused authentication answers with: the expired-password page for an expired
    password, the change-password page when a change is required; none for anything else (an
    unknown name or a wrong password must be answered exactly alike)."""
    urls = {}
    if "password_expired" in reasons:
        urls["expired_password_url"] = links.expired(user_name=user_name, user_id=user_id)
    if "change_required" in reasons:
        urls["change_password_url"] = links.change(user_name=user_name, user_id=user_id)
    return urls


# -- who may do what --


def require_administrator(claims: Claims) -> None:
    """Administrative commands need a token with the ``admin`` role."""
    if not claims.has_role(ADMIN):
        raise NotAnAdministrator()


def require_self_or_administrator(claims: Claims, user_id: object) -> None:
    """A user may change their own profile; anyone else needs the ``admin`` role."""
    if claims.subject != str(user_id):
        require_administrator(claims)


def changed_by(claims: Claims, user_id: object) -> Literal["user", "administrator"]:
    """Who made a change to a user: the user themself, or an administrator."""
    return "user" if claims.subject == str(user_id) else "administrator"


# -- the profile mobile number --


def mobile_number_changed(old: str | None, new: str | None) -> bool:
    """Whether a profile update changes the number signer codes go to: set, replaced or removed.

    Such a change is recorded and announced (`UserMobileNumberChanged`), and needs no code sent to
    the old number: only the user, with their own token, or an administrator may make it; a signer
    is the user the package's owner named, whatever their profile says; and the usual reason to
    change a number is that the old one is lost. See the identity README, "The profile mobile number".
    """
    return old != new
