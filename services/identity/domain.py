"""The identity service's rules: profiles, memberships, passwords, lockout, expiry, who may do what,
what a login answers, and the second factor (an authenticator app: `login_proof`).

No I/O here: the handlers (`services.identity.handlers`) read the state, ask one of these
functions, and write what it decides.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar, Literal
from urllib.parse import quote

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from pydantic import SecretStr

from libs.runtime.errors import BadRequest, Conflict, Forbidden, NotFound, Refusal, Unauthorized
from libs.security.tokens import AccountDisabled, Claims
from libs.security.totp import TotpParameters
from signgate_contracts.identity import (
    AccountMembership,
    AuthenticationFailed,
    AuthenticationFailure,
    ChangedBy,
    FailureReason,
    RegisterUser,
    TotpAlgorithm,
    UpdateUserProfile,
    normalise_user_name,
)

# Re-exported: the key of every identity record; the refusal of a disabled user's request.
__all__ = ["AccountDisabled", "normalise_user_name"]

ADMIN = "admin"
LockMode = Literal["temporary", "hard"]


@dataclass(frozen=True)
class User:
    """A user as stored (`services.identity.repository` reads and writes them)."""

    id: uuid.UUID
    user_name: str
    first_name: str
    last_name: str
    email: str | None
    mobile_number: str | None
    roles: tuple[str, ...]
    disabled: bool
    password_hash: str | None
    password_changed_at: datetime | None
    password_expired: bool
    must_change_password: bool
    failed_attempts: int
    """Failures in a row, as Postgres remembers them (a floor for the Redis counter)."""
    lockouts: int
    """Temporary lockouts in the current run of failures (each waits twice as long)."""
    lock_mode: LockMode | None
    locked_until: datetime | None
    tokens_valid_after: datetime | None
    locale: str | None = None
    """The user's language (BCP 47): signer codes are sent in it."""


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


# -- users and what they act for --


def existing_user(user: User | None) -> User:
    """The user a command names; 404 if there is none."""
    if user is None:
        raise UserNotFound()
    return user


@dataclass(frozen=True)
class Access:
    """What a user acts for: their accounts (the primary first) and their roles."""

    accounts: list[AccountMembership]
    roles: list[str]


def access_of(accounts: Sequence[AccountMembership], roles: Iterable[str]) -> Access:
    """The accounts, if they name each account once and exactly one is primary; the roles, once each."""
    return Access(valid_memberships(accounts), sorted(set(roles)))


@dataclass(frozen=True)
class Registration:
    """A new user as a `RegisterUser` command asks for them, checked."""

    user_name: str
    access: Access
    email: str | None
    mobile_number: str | None
    password: str | None
    """The initial password (it passed the policy), to be hashed; None when none is set."""
    must_change_password: bool


def registration(command: RegisterUser, policy: PasswordPolicy) -> Registration:
    """The user to register: a normalised name, valid memberships and contacts, and an initial
    password the policy accepts (if one is given)."""
    name = normalise_user_name(command.user_name)
    access = access_of(command.accounts, command.roles)
    email = valid_email(command.email)
    mobile = valid_mobile_number(command.mobile_number)
    password = command.password.get_secret_value() if command.password is not None else None
    if password is not None:
        check_new_password(password, name, policy)
    return Registration(
        user_name=name,
        access=access,
        email=email,
        mobile_number=mobile,
        password=password,
        must_change_password=command.require_password_change,
    )


@dataclass(frozen=True)
class ProfileUpdate:
    """A user's new profile contacts, who changes them, and whether the mobile number changes."""

    user: User
    email: str | None
    mobile_number: str | None
    changed_by: ChangedBy

    @property
    def mobile_number_changed(self) -> bool:
        return mobile_number_changed(self.user.mobile_number, self.mobile_number)


def profile_update(claims: Claims, user: User | None, command: UpdateUserProfile) -> ProfileUpdate:
    """The user (with their own token) or an administrator replaces the profile; only an
    administrator learns that a user name is nobody's."""
    if user is None:
        require_administrator(claims)
        raise UserNotFound()
    require_self_or_administrator(claims, user.id)
    return ProfileUpdate(
        user=user,
        email=valid_email(command.email),
        mobile_number=valid_mobile_number(command.mobile_number),
        changed_by=changed_by(claims, user.id),
    )


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


def user_for_new_password(user: User | None, password: str, policy: PasswordPolicy) -> User:
    """The user an administrator sets a password for (404 if none), once the password passes the policy."""
    user = existing_user(user)
    check_new_password(password, user.user_name, policy)
    return user


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


def lock_after_failure(
    policy: LockoutPolicy, user: User, *, locks: bool, consecutive_failures: int, now: datetime
) -> Lock | None:
    """The lock a counted failure imposes on ``user``, if it reached the threshold or the cap of
    failures in a row (``locks``, as the counter decided it): a hard lock is never softened."""
    if not locks:
        return None
    if user.lock_mode == "hard":
        return Lock("hard", None)
    return lock_for(
        policy, consecutive_failures=consecutive_failures, lockouts=user.lockouts, now=now
    )


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


@dataclass(frozen=True)
class PasswordAttempt:
    """What checking a password against a user name decided."""

    user: User | None
    standing: AccountStanding | None
    """The account's standing when the password was right; None when it was wrong, or nobody's."""
    lock: Lock | None = None
    """The lock a wrong password imposes on the user (it reached the threshold, or the cap)."""
    consecutive_failures: int = 0
    """Failures in a row after a wrong password."""
    ends_failure_run: bool = False
    """A right password while not locked: the run of failures is over."""
    second_factor: SecondFactorRefusal | None = None
    """For a user with an authenticator app: no code was given (whatever the password), or the right
    password came with a right code already used. It is the only reason told."""

    @property
    def reasons(self) -> list[FailureReason]:
        """Why the caller gets no token; empty when one is due. A wrong password, or a name that is
        nobody's, is ``invalid_credentials``, and only that: the two are answered alike."""
        if self.second_factor is not None:
            return [self.second_factor]
        if self.standing is None:
            return ["invalid_credentials"]
        return refusal_reasons(self.standing)


# -- the second factor (an authenticator app) --

SecondFactorRefusal = Literal["second_factor_required", "totp_code_used"]
CodeCheck = Literal["accepted", "wrong", "used"]
"""What checking a one-time code found: it proves the second factor; it is no code of the user's
(or a recovery code already spent); it is the right TOTP code of a step already used."""


@dataclass(frozen=True)
class LoginProof:
    """What a password and, for a user with an authenticator app, a one-time code prove together."""

    proven: bool
    """Both are right: the account's standing decides the answer."""
    counts_failure: bool
    """A failed login in the user's one budget (the lockout's)."""
    refusal: SecondFactorRefusal | None = None


def login_proof(
    *, password_matches: bool, has_authenticator: bool, code_check: CodeCheck | None
) -> LoginProof:
    """The rule of a login with a second factor. ``code_check`` None: no code was given (it is
    checked only once the password is right: a wrong password spends no code).

    - No authenticator: the password alone decides (a code given is ignored).
    - No code: ``second_factor_required``, whether or not the password was right, so the answer does
      not tell; a wrong password still counts as a failure (guessing passwords without a code is
      guessing), a right one neither counts nor ends the run of failures (it proved nothing yet).
    - A wrong password, or a wrong code: the generic ``invalid_credentials``, counted.
    - A right TOTP code of a step already used: ``totp_code_used`` whether or not the password was
      right (otherwise a code seen once would test passwords), counted only when the password was
      wrong (a replayed code must not lock the rightful user out). A spent recovery code is a
      wrong code.
    """
    if not has_authenticator:
        return LoginProof(proven=password_matches, counts_failure=not password_matches)
    if code_check is None:
        return LoginProof(
            False, counts_failure=not password_matches, refusal="second_factor_required"
        )
    if code_check == "used":
        return LoginProof(False, counts_failure=not password_matches, refusal="totp_code_used")
    if not password_matches or code_check == "wrong":
        return LoginProof(False, counts_failure=True)
    return LoginProof(True, counts_failure=False)


def uncounted_refusal(user: User | None, proof: LoginProof) -> PasswordAttempt:
    """A refusal that counts no failure: the right password without a code, or with a used one."""
    return PasswordAttempt(user, None, second_factor=proof.refusal)


def account_refuses(user: User, now: datetime) -> bool:
    """A locked or disabled account gets no token whatever it proves: a recovery code shown to it
    is checked but not spent, so it still opens once the account is unlocked or enabled."""
    return user.disabled or is_locked(user.lock_mode, user.locked_until, now)


def right_password(user: User, now: datetime, policy: PasswordPolicy) -> PasswordAttempt:
    """The right password: the account's standing decides whether a token is due. A locked user
    stays locked (the run of failures goes on); otherwise the run is over."""
    locked = is_locked(user.lock_mode, user.locked_until, now)
    standing = AccountStanding(
        locked=locked,
        disabled=user.disabled,
        password_expired=password_has_expired(
            expired_now=user.password_expired,
            changed_at=user.password_changed_at,
            now=now,
            policy=policy,
        ),
        must_change_password=user.must_change_password,
    )
    return PasswordAttempt(user, standing, ends_failure_run=not locked)


def wrong_password(
    user: User | None,
    *,
    locks: bool,
    consecutive_failures: int,
    policy: LockoutPolicy,
    now: datetime,
    second_factor: SecondFactorRefusal | None = None,
) -> PasswordAttempt:
    """A wrong password (or a name that is nobody's, or a wrong one-time code), counted: a user's
    lock if it locks. ``second_factor``: the answer is that a code is required (none was given)."""
    lock = (
        lock_after_failure(
            policy, user, locks=locks, consecutive_failures=consecutive_failures, now=now
        )
        if user is not None
        else None
    )
    return PasswordAttempt(
        user,
        None,
        lock=lock,
        consecutive_failures=consecutive_failures,
        second_factor=second_factor,
    )


def login_refusal(
    attempt: PasswordAttempt, links: PasswordLinks, now: datetime
) -> AuthenticationFailed:
    """What AuthenticateUser answers a caller who gets no token: the reasons, with their texts, and
    the portal's page for an expired password or a required change."""
    reasons = attempt.reasons
    user = attempt.user
    urls = (
        links_for(reasons, links, user_name=user.user_name, user_id=user.id)
        if user is not None
        else {}
    )
    return AuthenticationFailed(
        reasons=[AuthenticationFailure(code=r, message=FAILURE_TEXT[r]) for r in reasons],
        expired_password_url=urls.get("expired_password_url"),
        change_password_url=urls.get("change_password_url"),
        occurred_at=now,
    )


def password_change_refusal(attempt: PasswordAttempt) -> Refusal | None:
    """Why a user may not replace their password: a wrong current password (or an unknown name),
    or a locked or disabled account (told only once the current password is proven). None: they may
    (an expired password, or one that must be changed, is what a change is for). A user with an
    authenticator app proves it too, as at a login: without a code the refusal is
    ``second_factor_required`` whatever the password, so a change cannot test a password either."""
    if attempt.second_factor == "second_factor_required":
        return SecondFactorRequired()
    if attempt.second_factor == "totp_code_used":
        return TotpCodeUsed()
    standing = attempt.standing
    if standing is None:
        return InvalidCredentials()
    if standing.locked:
        return AccountLocked()
    if standing.disabled:
        return AccountDisabled()
    return None


FAILURE_TEXT: dict[str, str] = {
    "invalid_credentials": "Invalid credentials",
    "account_locked": "Account is locked",
    "account_disabled": "Account is disabled",
    "password_expired": "Password has expired",
    "change_required": "Password must be changed",
    "second_factor_required": "A one-time code from the authenticator app is required",
    "totp_code_used": "This one-time code has already been used: wait for the next one",
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


def changed_by(claims: Claims, user_id: object) -> ChangedBy:
    """Who made a change to a user: the user themself, or an administrator."""
    return "user" if claims.subject == str(user_id) else "administrator"


# -- API keys --


@dataclass(frozen=True)
class ApiKey:
    """An API key as stored: its digest, never the key (`services.identity.repository`)."""

    id: uuid.UUID
    user_id: uuid.UUID
    context_identifier: uuid.UUID
    name: str
    digest: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


MAX_ACTIVE_API_KEYS = 20
"""Unrevoked keys one user may hold: enough to rotate every integration, few enough to review."""


class ApiKeyNotFound(NotFound):
    code = "api_key_not_found"

    def __init__(self) -> None:
        super().__init__("API key not found")


class ApiKeyAlreadyRevoked(Conflict):
    code = "api_key_revoked"

    def __init__(self) -> None:
        super().__init__("API key is already revoked")


class TooManyApiKeys(Conflict):
    code = "too_many_api_keys"

    def __init__(self) -> None:
        super().__init__(
            f"A user may hold at most {MAX_ACTIVE_API_KEYS} API keys: revoke one first"
        )


class InvalidApiKey(Unauthorized):
    """An unknown, wrong or revoked key: the three are answered alike."""

    code = "invalid_api_key"

    def __init__(self) -> None:
        super().__init__("Invalid API key")


class ApiKeyAccountLeft(Forbidden):
    """The key's user is no longer a member of the account the key acts for."""

    code = "api_key_account_not_member"

    def __init__(self) -> None:
        super().__init__("The API key's account is not one of the user's accounts")


def api_key_owner(claims: Claims, user: User | None) -> tuple[User, ChangedBy]:
    """The user whose keys a command manages, if the caller is that user or an administrator (only
    an administrator learns that a user name is nobody's)."""
    if user is None:
        require_administrator(claims)
        raise UserNotFound()
    require_self_or_administrator(claims, user.id)
    return user, changed_by(claims, user.id)


def api_key_account(
    memberships: Sequence[AccountMembership],
    requested: uuid.UUID | None,
    active_keys: int,
    caller: Claims | None = None,
) -> uuid.UUID:
    """The account a new key acts for: the one asked for, else the user's primary; it must be one of
    the user's accounts and, when the user issues it with their own token, one that token acts for
    (a key's token, bound to one account, cannot mint a key for another). Refused when the user
    already holds the most keys allowed."""
    if active_keys >= MAX_ACTIVE_API_KEYS:
        raise TooManyApiKeys()
    allowed = {m.context_identifier for m in memberships}
    if caller is not None:
        allowed &= {uuid.UUID(a) for a in caller.accounts}
    if requested is None:
        primary = next((m.context_identifier for m in memberships if m.is_primary), None)
        if caller is not None and caller.primary_account:
            primary = uuid.UUID(caller.primary_account)
        requested = primary
    if requested is None or requested not in allowed:
        raise InvalidMemberships("account is not one of the caller's accounts", field="account")
    return requested


def api_key_to_revoke(user: User, key: ApiKey | None) -> ApiKey:
    """The user's key to revoke: 404 for a key that is not theirs, 409 for one already revoked."""
    if key is None or key.user_id != user.id:
        raise ApiKeyNotFound()
    if key.revoked_at is not None:
        raise ApiKeyAlreadyRevoked()
    return key


def api_key_holder(
    key: ApiKey | None,
    key_matches: bool,
    user: User | None,
    memberships: Sequence[AccountMembership],
) -> tuple[ApiKey, User]:
    """Whom an API key exchange issues a token to: the key's user, for the key's account.

    An unknown key, a wrong secret and a revoked key are answered alike (401); a disabled user is
    told so (403, the seed's "Account is disabled"), as is one who left the key's account.
    Lockout and password expiry do not apply: they guard the password, which a key does not use.
    """
    if key is None or not key_matches or key.revoked_at is not None or user is None:
        raise InvalidApiKey()
    if user.disabled:
        raise AccountDisabled()
    if key.context_identifier not in {m.context_identifier for m in memberships}:
        raise ApiKeyAccountLeft()
    return key, user


# -- the profile mobile number --


def mobile_number_changed(old: str | None, new: str | None) -> bool:
    """Whether a profile update changes the number signer codes go to: set, replaced or removed.

    Such a change is recorded and announced (`UserMobileNumberChanged`), and needs no code sent to
    the old number: only the user, with their own token, or an administrator may make it; a signer
    is the user the package's owner named, whatever their profile says; and the usual reason to
    change a number is that the old one is lost. See the identity README, "The profile mobile number".
    """
    return old != new


# -- authenticator apps --


@dataclass(frozen=True)
class Authenticator:
    """A user's authenticator app as stored (its secret encrypted, `services.identity.authenticators`)."""

    id: uuid.UUID
    user_id: uuid.UUID
    secret_encrypted: str
    digits: int
    algorithm: TotpAlgorithm
    period_seconds: int
    created_at: datetime
    confirmed_at: datetime | None

    @property
    def confirmed(self) -> bool:
        return self.confirmed_at is not None

    @property
    def parameters(self) -> TotpParameters:
        return TotpParameters(self.digits, self.algorithm, self.period_seconds)


RECOVERY_CODE_COUNT = 10
"""Recovery codes in a set: what authenticator-app users are used to (GitHub, Google give 10 or 16)."""


def totp_subject(user_id: uuid.UUID) -> str:
    """The subject an API user's TOTP steps are spent under, the same in identity and authentication:
    a code opens one login or one package, never both."""
    return f"user:{user_id}"


class NotTheUser(Forbidden):
    """An authenticator is the user's own business: enrolled, confirmed and renewed by them only."""

    code = "not_the_user"

    def __init__(self) -> None:
        super().__init__("Only the user may manage their own authenticator")


class AuthenticatorExists(Conflict):
    code = "authenticator_exists"

    def __init__(self) -> None:
        super().__init__("An authenticator is already confirmed: disable it first")


class AuthenticatorNotFound(NotFound):
    code = "authenticator_not_found"

    def __init__(self, message: str = "No authenticator is enrolled") -> None:
        super().__init__(message)


class InvalidOneTimeCode(Unauthorized):
    """A wrong code (or a spent recovery code) to confirm, disable or renew with."""

    code = "invalid_one_time_code"

    def __init__(self) -> None:
        super().__init__("Invalid one-time code", field="one_time_code")


class SecondFactorRequired(Unauthorized):
    """A user with an authenticator app gave no code (told whether or not the password was right)."""

    code = "second_factor_required"

    def __init__(self) -> None:
        super().__init__(FAILURE_TEXT["second_factor_required"], field="one_time_code")


class TotpCodeUsed(Conflict):
    """The right code of a time step already used: the next step's code will do."""

    code = "totp_code_used"

    def __init__(self) -> None:
        super().__init__(FAILURE_TEXT["totp_code_used"], field="one_time_code")


def authenticator_user(
    claims: Claims, user: User | None, *, administrator_may: bool = False
) -> tuple[User, ChangedBy]:
    """The user whose authenticator a command manages: the caller themself (or, where
    ``administrator_may``, an administrator); only an administrator learns that a name is nobody's."""
    if user is None:
        require_administrator(claims)
        raise UserNotFound()
    if claims.subject != str(user.id):
        if not administrator_may:
            raise NotTheUser()
        require_administrator(claims)
    return user, changed_by(claims, user.id)


def authenticator_to_enrol(current: Authenticator | None) -> None:
    """A new enrolment replaces a pending one; a confirmed authenticator must be disabled first."""
    if current is not None and current.confirmed:
        raise AuthenticatorExists()


def authenticator_to_confirm(current: Authenticator | None) -> Authenticator:
    """The pending authenticator to confirm."""
    if current is None:
        raise AuthenticatorNotFound("No authenticator is pending: enrol one first")
    if current.confirmed:
        raise AuthenticatorExists()
    return current


def confirmed_authenticator(current: Authenticator | None) -> Authenticator:
    """The confirmed authenticator a command acts on (disabling it, renewing its recovery codes)."""
    if current is None or not current.confirmed:
        raise AuthenticatorNotFound()
    return current


class OneTimeCodeRequired(BadRequest):
    code = "one_time_code_required"

    def __init__(self) -> None:
        super().__init__(
            "A current code or a recovery code is required to disable the authenticator",
            field="one_time_code",
        )


def required_code(code: SecretStr | None) -> str:
    """The code the user must give to disable their authenticator (an administrator gives none)."""
    if code is None or not code.get_secret_value():
        raise OneTimeCodeRequired()
    return code.get_secret_value()


def code_refusal(check: CodeCheck) -> Refusal | None:
    """Why a code does not let the user confirm, disable or renew: wrong (401) or used (409)."""
    if check == "wrong":
        return InvalidOneTimeCode()
    if check == "used":
        return TotpCodeUsed()
    return None
