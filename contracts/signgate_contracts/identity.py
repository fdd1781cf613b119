"""Messages of the identity service: API users, their accounts, and their authentication.

Commands go to ``signgate.identity.commands`` keyed by the normalised user name (stripped,
lower-cased). Facts go to ``signgate.identity.events`` and never carry a credential. The
answer to ``AuthenticateUser`` (a token on success, the reasons on failure) is a reply: it
goes only to the command's ``reply_to`` topic, or to ``signgate.identity.replies``.

Administrative commands carry the caller's ``access_token`` (a token with the ``admin``
role); ``AuthenticateUser`` and ``ChangePassword`` prove themselves with the password.
"""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from signgate_contracts.envelope import Command, Event, Message, Secret
from signgate_contracts.rejection import CommandRejected

UserName = Annotated[
    str, Field(min_length=1, max_length=256, description="Case-insensitive; the record key.")
]
Role = Literal["admin"]


class AccountMembership(BaseModel):
    """An account (customer organisation) a user may act for, and whether it is the user's primary."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str = Field(min_length=1, max_length=256)
    context_identifier: UUID = Field(description="Names the account in requests made for it.")
    is_primary: bool = False


# -- commands --


class RegisterUser(Command):
    """Create an API user with a profile and account memberships (exactly one primary)."""

    type: Literal["identity.register_user"] = "identity.register_user"
    user_name: UserName
    first_name: str = Field(default="", max_length=256)
    last_name: str = Field(default="", max_length=256)
    email: str | None = Field(default=None, max_length=320)
    mobile_number: str | None = Field(
        default=None, description="A mobile number with country code; stored as E.164 (+14155550123)."
    )
    accounts: list[AccountMembership] = Field(min_length=1)
    roles: list[Role] = Field(default_factory=list)
    password: Secret | None = Field(default=None, description="Initial password, if any.")
    require_password_change: bool = Field(
        default=False, description="The user must change the initial password before a token."
    )


class UpdateUser(Command):
    """Replace a user's account memberships and roles."""

    type: Literal["identity.update_user"] = "identity.update_user"
    user_name: UserName
    accounts: list[AccountMembership] = Field(min_length=1)
    roles: list[Role] = Field(default_factory=list)


class UpdateUserProfile(Command):
    """Replace a user's profile; allowed to an administrator and to the user themself."""

    type: Literal["identity.update_user_profile"] = "identity.update_user_profile"
    user_name: UserName
    first_name: str = Field(default="", max_length=256)
    last_name: str = Field(default="", max_length=256)
    email: str | None = Field(default=None, max_length=320)
    mobile_number: str | None = Field(
        default=None, description="A mobile number with country code; stored as E.164 (+14155550123)."
    )


class SetPassword(Command):
    """An administrator sets a user's password (by default the user must change it at next login)."""

    type: Literal["identity.set_password"] = "identity.set_password"
    user_name: UserName
    password: Secret
    require_change: bool = True


class ChangePassword(Command):
    """A user replaces their own password, proving the current one; no token needed."""

    type: Literal["identity.change_password"] = "identity.change_password"
    user_name: UserName
    current_password: Secret
    new_password: Secret


class DisableUser(Command):
    """Stop a user from authenticating; their tokens stop working in every service."""

    type: Literal["identity.disable_user"] = "identity.disable_user"
    user_name: UserName


class EnableUser(Command):
    """Let a disabled user authenticate again (tokens issued before the disabling stay revoked)."""

    type: Literal["identity.enable_user"] = "identity.enable_user"
    user_name: UserName


class UnlockUser(Command):
    """Lift a lockout and forget the user's failed attempts."""

    type: Literal["identity.unlock_user"] = "identity.unlock_user"
    user_name: UserName


class ExpirePassword(Command):
    """Expire a user's password now: the next authentication answers `password_expired`."""

    type: Literal["identity.expire_password"] = "identity.expire_password"
    user_name: UserName


class AuthenticateUser(Command):
    """Authenticate with user name and password (AssureSign's AuthenticateUser)."""

    type: Literal["identity.authenticate_user"] = "identity.authenticate_user"
    user_name: UserName
    password: Secret


# -- events --


class UserRegistered(Event):
    type: Literal["identity.user_registered"] = "identity.user_registered"
    user_id: UUID
    user_name: str
    first_name: str
    last_name: str
    email: str | None = None
    mobile_number: str | None = Field(default=None, description="E.164; for signer OTP by SMS.")
    accounts: list[AccountMembership]
    roles: list[str] = Field(default_factory=list)
    password_set: bool = False
    must_change_password: bool = False


class UserUpdated(Event):
    type: Literal["identity.user_updated"] = "identity.user_updated"
    user_id: UUID
    user_name: str
    accounts: list[AccountMembership]
    roles: list[str] = Field(default_factory=list)


class UserProfileUpdated(Event):
    type: Literal["identity.user_profile_updated"] = "identity.user_profile_updated"
    user_id: UUID
    user_name: str
    first_name: str
    last_name: str
    email: str | None = None
    mobile_number: str | None = Field(default=None, description="E.164; for signer OTP by SMS.")


class UserAuthenticated(Event):
    type: Literal["identity.user_authenticated"] = "identity.user_authenticated"
    user_id: UUID
    user_name: str
    token_id: UUID = Field(description="The token's `jti` (not the token): for audit and revocation.")
    expires_at: AwareDatetime


FailureReason = Literal[
    "invalid_credentials", "account_locked", "account_disabled", "password_expired", "change_required"
]


class UserAuthenticationFailed(Event):
    """An authentication (or a password change) failed; ``user_id`` is None for an unknown name."""

    type: Literal["identity.user_authentication_failed"] = "identity.user_authentication_failed"
    user_id: UUID | None = None
    user_name: str
    reasons: list[FailureReason]


class UserLockedOut(Event):
    type: Literal["identity.user_locked_out"] = "identity.user_locked_out"
    user_id: UUID
    user_name: str
    mode: Literal["temporary", "hard"]
    locked_until: AwareDatetime | None = Field(default=None, description="None: until unlocked.")
    consecutive_failures: int


class UserUnlocked(Event):
    type: Literal["identity.user_unlocked"] = "identity.user_unlocked"
    user_id: UUID
    user_name: str


class UserDisabled(Event):
    type: Literal["identity.user_disabled"] = "identity.user_disabled"
    user_id: UUID
    user_name: str


class UserEnabled(Event):
    type: Literal["identity.user_enabled"] = "identity.user_enabled"
    user_id: UUID
    user_name: str


class PasswordChanged(Event):
    """A new password was set; tokens issued before it stop working."""

    type: Literal["identity.password_changed"] = "identity.password_changed"
    user_id: UUID
    user_name: str
    changed_by: Literal["user", "administrator"]
    must_change_password: bool = False


class PasswordExpired(Event):
    type: Literal["identity.password_expired"] = "identity.password_expired"
    user_id: UUID
    user_name: str


# -- replies (to the caller's reply_to, or signgate.identity.replies) --


class AuthenticationSucceeded(Message):
    """AssureSign's AuthenticateUserResult with Success="true"."""

    type: Literal["identity.authentication_succeeded"] = "identity.authentication_succeeded"
    success: Literal[True] = True
    access_token: Secret = Field(description="Signed token; send it as the `access_token` of commands.")
    token_type: Literal["Bearer"] = "Bearer"
    expires_at: AwareDatetime
    user_name: str
    first_name: str
    last_name: str
    accounts: list[AccountMembership]
    change_password_url: str | None = None


class AuthenticationFailure(BaseModel):
    """One reason an authentication failed, with a human-readable text."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    code: FailureReason
    message: str


class AuthenticationFailed(Message):
    """AssureSign's AuthenticateUserResult with Success="false": the reasons, and where to go next.

    An unknown user name and a wrong password get the same answer; locked, disabled and
    expired states are told only to a caller whose password was right.
    """

    type: Literal["identity.authentication_failed"] = "identity.authentication_failed"
    success: Literal[False] = False
    reasons: list[AuthenticationFailure]
    expired_password_url: str | None = None
    change_password_url: str | None = None


COMMANDS: tuple[type[Command], ...] = (
    RegisterUser, UpdateUser, UpdateUserProfile, SetPassword, ChangePassword, DisableUser,
    EnableUser, UnlockUser, ExpirePassword, AuthenticateUser,
)
EVENTS: tuple[type[Event], ...] = (
    UserRegistered, UserUpdated, UserProfileUpdated, UserAuthenticated, UserAuthenticationFailed,
    UserLockedOut, UserUnlocked, UserDisabled, UserEnabled, PasswordChanged, PasswordExpired,
    CommandRejected,
)
REPLIES: tuple[type[Message], ...] = (AuthenticationSucceeded, AuthenticationFailed)


def normalise_user_name(user_name: str) -> str:
    """The canonical form of a user name: the record key and the stored name."""
    return user_name.strip().lower()
