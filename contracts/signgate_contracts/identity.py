"""Messages of the identity service: API users, their accounts, and their authentication.

Commands go to ``signgate.identity.commands`` keyed by the normalised user name (stripped,
lower-cased). Facts go to ``signgate.identity.events`` and never carry a credential. The
answer to ``AuthenticateUser`` (a token on success, the reasons on failure) is a reply: it
goes only to the command's ``reply_to`` topic, or to ``signgate.identity.replies``.

Administrative commands carry the caller's ``access_token`` (a token with the ``admin``
role); ``AuthenticateUser`` and ``ChangePassword`` prove themselves with the password.

The events topic names people by id and masked values only. Records about a user are keyed by
the user id; a failed authentication, which must not tell a real user name from any other text
typed, by the keyed digest of the name typed (`keyed_digest`, purpose ``user_name``), and so is a
``command.rejected``. No event carries a user name, an email or a mobile number in clear: emails
travel masked and as a keyed digest, mobile numbers masked and, for the authentication service
(which sends signers their codes), sealed to its key (`libs.security.sealing`, context
`user_mobile_context`).

Moving from the first shapes: every event that carried ``user_name`` (and the profile events,
which carried the email and mobile number in clear) is no longer published; its ``_v2``
successor names the user by ``user_id`` alone. ``identity.user_authentication_failed`` (with
``user_id: null`` for an unknown name and the typed name in clear) became
``identity.user_authentication_failed_v2`` with ``user_name_digest`` and no ``user_id``. A
consumer that needs a user's name keeps it from its own source (a token's ``user_name``), or
asks for the deployment's digest key to match names by digest.

API keys: an API user (with their own token) or an administrator issues a key bound to the user and
one of their accounts (``IssueApiKey``); the key itself is a reply (``IssuedApiKey``) and is stored
only as a peppered HMAC. ``ExchangeApiKey`` turns a key into a short-lived token of its user and
account (``ApiKeyToken``, a reply); the events topic gets the key's id, never the key. A command that
names no user (``ExchangeApiKey``) is keyed by the key's public id (`command_key`).
"""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import AliasChoices, AwareDatetime, BaseModel, ConfigDict, Field

from signgate_contracts.envelope import Command, Event, Message, Secret
from signgate_contracts.localisation import Locale
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
        default=None,
        description="A mobile number with country code; stored as E.164 (+14155550123).",
    )
    locale: Locale | None = Field(
        default=None, description="The user's language (BCP 47): signer codes are sent in it."
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
        default=None,
        description="A mobile number with country code; stored as E.164 (+14155550123).",
    )
    locale: Locale | None = Field(
        default=None, description="The user's language (BCP 47): signer codes are sent in it."
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
    one_time_code: Secret | None = Field(
        default=None,
        description="For a user with a confirmed authenticator app: its current code, or a "
        "recovery code (401 `second_factor_required` without it).",
    )


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
    # AssureSign's own names (seed 004's UserName, Password) validate too; ours go on the wire.
    user_name: UserName = Field(validation_alias=AliasChoices("user_name", "UserName"))
    password: Secret = Field(validation_alias=AliasChoices("password", "Password"))
    one_time_code: Secret | None = Field(
        default=None,
        validation_alias=AliasChoices("one_time_code", "OneTimeCode"),
        description="For a user with a confirmed authenticator app: its current code, or one of "
        "their recovery codes. Without it such a user is answered `second_factor_required`.",
    )


class IssueApiKey(Command):
    """Issue an API key of a user, bound to one of their accounts; the user's own token or an
    administrator's. The key goes only to the caller's reply topic, once."""

    type: Literal["identity.issue_api_key"] = "identity.issue_api_key"
    user_name: UserName
    name: str = Field(min_length=1, max_length=100, description="A label to tell keys apart.")
    account: UUID | None = Field(
        default=None,
        description="The context identifier of the account the key acts for; the user's primary "
        "account when left out.",
    )


class ListApiKeys(Command):
    """List a user's API keys (ids, names, accounts, times; never a key or its digest)."""

    type: Literal["identity.list_api_keys"] = "identity.list_api_keys"
    user_name: UserName
    include_revoked: bool = False


class RevokeApiKey(Command):
    """Revoke one of a user's API keys: it can no longer be exchanged for a token."""

    type: Literal["identity.revoke_api_key"] = "identity.revoke_api_key"
    user_name: UserName
    key_id: UUID


class ExchangeApiKey(Command):
    """Exchange an API key for a short-lived token of its user and account; no token needed."""

    type: Literal["identity.exchange_api_key"] = "identity.exchange_api_key"
    api_key: Secret = Field(description="The key as issued (`sgk_` and 75 more characters).")


OneTimeCode = Annotated[
    Secret, Field(description="A code of the authenticator app, or a recovery code.")
]


class EnrolAuthenticator(Command):
    """The user (with their own token) starts enrolling an authenticator app (TOTP): the secret and
    its otpauth:// URI go only to the caller's reply topic; it counts once confirmed with a code.
    Enrolling again before confirming replaces the pending secret."""

    type: Literal["identity.enrol_authenticator"] = "identity.enrol_authenticator"
    user_name: UserName


class ConfirmAuthenticator(Command):
    """The user (with their own token) confirms the pending authenticator with its first code: it
    becomes their second factor, and their recovery codes are told once, to the reply topic."""

    type: Literal["identity.confirm_authenticator"] = "identity.confirm_authenticator"
    user_name: UserName
    one_time_code: OneTimeCode


class DisableAuthenticator(Command):
    """Remove the user's authenticator app: the user with their own token and a current code or a
    recovery code, or an administrator (no code)."""

    type: Literal["identity.disable_authenticator"] = "identity.disable_authenticator"
    user_name: UserName
    one_time_code: Secret | None = Field(
        default=None,
        description="The user's current code or a recovery code; not needed by an administrator.",
    )


class RegenerateRecoveryCodes(Command):
    """The user (with their own token and a current code or a recovery code) gets a new set of
    recovery codes; the old set stops working."""

    type: Literal["identity.regenerate_recovery_codes"] = "identity.regenerate_recovery_codes"
    user_name: UserName
    one_time_code: OneTimeCode


# -- events --
#
# The first shapes, kept so that records still on the topic decode; no longer published (each
# named a user by name in clear, and the profile events carried the email and mobile number in
# clear). Their successors follow.


class UserRegistered(Event):
    """First shape, no longer published: see `UserRegisteredV2`."""

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
    """First shape, no longer published: see `UserUpdatedV2`."""

    type: Literal["identity.user_updated"] = "identity.user_updated"
    user_id: UUID
    user_name: str
    accounts: list[AccountMembership]
    roles: list[str] = Field(default_factory=list)


class UserProfileUpdated(Event):
    """First shape, no longer published: see `UserProfileUpdatedV2`."""

    type: Literal["identity.user_profile_updated"] = "identity.user_profile_updated"
    user_id: UUID
    user_name: str
    first_name: str
    last_name: str
    email: str | None = None
    mobile_number: str | None = Field(default=None, description="E.164; for signer OTP by SMS.")


class UserAuthenticated(Event):
    """First shape, no longer published: see `UserAuthenticatedV2`."""

    type: Literal["identity.user_authenticated"] = "identity.user_authenticated"
    user_id: UUID
    user_name: str
    token_id: UUID = Field(
        description="The token's `jti` (not the token): for audit and revocation."
    )
    expires_at: AwareDatetime


FailureReason = Literal[
    "invalid_credentials",
    "account_locked",
    "account_disabled",
    "password_expired",
    "change_required",
    "second_factor_required",
    "totp_code_used",
]


class UserAuthenticationFailed(Event):
    """First shape, no longer published (``user_id`` None told an unknown name from a real one, and
    ``user_name`` was whatever was typed): see `UserAuthenticationFailedV2`."""

    type: Literal["identity.user_authentication_failed"] = "identity.user_authentication_failed"
    user_id: UUID | None = None
    user_name: str
    reasons: list[FailureReason]


class UserLockedOut(Event):
    """First shape, no longer published: see `UserLockedOutV2`."""

    type: Literal["identity.user_locked_out"] = "identity.user_locked_out"
    user_id: UUID
    user_name: str
    mode: Literal["temporary", "hard"]
    locked_until: AwareDatetime | None = Field(default=None, description="None: until unlocked.")
    consecutive_failures: int


class UserUnlocked(Event):
    """First shape, no longer published: see `UserUnlockedV2`."""

    type: Literal["identity.user_unlocked"] = "identity.user_unlocked"
    user_id: UUID
    user_name: str


class UserDisabled(Event):
    """First shape, no longer published: see `UserDisabledV2`."""

    type: Literal["identity.user_disabled"] = "identity.user_disabled"
    user_id: UUID
    user_name: str


class UserEnabled(Event):
    """First shape, no longer published: see `UserEnabledV2`."""

    type: Literal["identity.user_enabled"] = "identity.user_enabled"
    user_id: UUID
    user_name: str


class PasswordChanged(Event):
    """First shape, no longer published: see `PasswordChangedV2`."""

    type: Literal["identity.password_changed"] = "identity.password_changed"
    user_id: UUID
    user_name: str
    changed_by: Literal["user", "administrator"]
    must_change_password: bool = False


class PasswordExpired(Event):
    """First shape, no longer published: see `PasswordExpiredV2`."""

    type: Literal["identity.password_expired"] = "identity.password_expired"
    user_id: UUID
    user_name: str


# The events identity publishes: people by id and masked values; records keyed by ``user_id``
# (a failed authentication by ``user_name_digest``).

ChangedBy = Literal["user", "administrator"]


def user_mobile_context(user_id: UUID | str) -> str:
    """What a user's sealed mobile number is bound to: it opens as this user's number only."""
    return f"user-mobile:{user_id}"


class _UserEvent(Event):
    """A fact about one user, named by id."""

    user_id: UUID = Field(description="The user; the record key.")


class _ProfileContacts(_UserEvent):
    """A user's profile contacts as the events topic carries them: masked, digested, sealed."""

    email_masked: str | None = Field(
        default=None, description="The profile email, masked (a***@example.com)."
    )
    email_digest: str | None = Field(
        default=None,
        description="Keyed HMAC of the email (`keyed_digest`, purpose email), to match recipients by email.",
    )
    mobile_masked: str | None = Field(
        default=None, description="The profile mobile number, masked (+44******0123)."
    )
    mobile_sealed: str | None = Field(
        default=None,
        description="The mobile number (E.164), for signer OTP by SMS, sealed to the authentication "
        "service (libs.security.sealing), context `user-mobile:<user_id>`; None: no number.",
    )
    locale: str | None = Field(
        default=None, description="The user's language (BCP 47); None: none given."
    )


class UserRegisteredV2(_ProfileContacts):
    """A user was registered, with their accounts, roles and profile contacts (masked, digested, sealed)."""

    type: Literal["identity.user_registered_v2"] = "identity.user_registered_v2"
    accounts: list[AccountMembership]
    roles: list[str] = Field(default_factory=list)
    password_set: bool = False
    must_change_password: bool = False


class UserUpdatedV2(_UserEvent):
    """A user's account memberships and roles, as they are now."""

    type: Literal["identity.user_updated_v2"] = "identity.user_updated_v2"
    accounts: list[AccountMembership]
    roles: list[str] = Field(default_factory=list)


class UserProfileUpdatedV2(_ProfileContacts):
    """A user's profile contacts, as they are now (a projection replaces what it had)."""

    type: Literal["identity.user_profile_updated_v2"] = "identity.user_profile_updated_v2"
    changed_by: ChangedBy = Field(
        description="The user themself (with their own token), or an administrator."
    )


class UserMobileNumberChanged(_UserEvent):
    """The profile mobile number, which signer codes go to, changed (set, replaced or removed):
    recorded by identity and announced, so that the user and the account's administrators can see
    it. No number in clear."""

    type: Literal["identity.user_mobile_number_changed"] = "identity.user_mobile_number_changed"
    old_mobile_masked: str | None = Field(
        description="The number before, masked; None: there was none."
    )
    new_mobile_masked: str | None = Field(description="The number now, masked; None: removed.")
    changed_by: ChangedBy = Field(
        description="The user themself (with their own token), or an administrator."
    )


def user_totp_context(user_id: UUID | str) -> str:
    """What a user's sealed authenticator secret is bound to: it opens as this user's secret only."""
    return f"user-totp:{user_id}"


TotpAlgorithm = Literal["SHA1", "SHA256", "SHA512"]


class AuthenticatorConfirmed(_UserEvent):
    """The user confirmed an authenticator app (TOTP) with a first code: it is now their second
    factor, and a recipient who is this API user may open a package with its codes. The secret
    travels only sealed to the authentication service, which verifies those recipients' codes."""

    type: Literal["identity.authenticator_confirmed"] = "identity.authenticator_confirmed"
    authenticator_id: UUID = Field(description="This enrolment; a new enrolment has a new id.")
    secret_sealed: str = Field(
        repr=False,
        description="The base32 secret, sealed to the authentication service "
        "(libs.security.sealing), context `user-totp:<user_id>`.",
    )
    digits: int = Field(default=6, ge=6, le=8)
    algorithm: TotpAlgorithm = "SHA1"
    period_seconds: int = Field(default=30, ge=15, le=120)
    changed_by: ChangedBy = Field(
        description="The user themself (with their own token), or an administrator."
    )
    accounts: list[UUID] = Field(
        default_factory=list,
        description="The accounts (context identifiers) the user is a member of now: the app "
        "opens a package for a recipient the user signs for only while the user is a member of "
        "the package's account (`UserUpdatedV2` says when that changes).",
    )


class AuthenticatorEnrolled(_UserEvent):
    """The user began enrolling an authenticator app; it counts once confirmed. No secret."""

    type: Literal["identity.authenticator_enrolled"] = "identity.authenticator_enrolled"
    authenticator_id: UUID


class RecoveryCodesRegenerated(_UserEvent):
    """The user's recovery codes were replaced by a new set (how many; never a code)."""

    type: Literal["identity.recovery_codes_regenerated"] = "identity.recovery_codes_regenerated"
    authenticator_id: UUID
    count: int


class RecoveryCodeUsed(_UserEvent):
    """One of the user's recovery codes was used (it works no more) and how many are left."""

    type: Literal["identity.recovery_code_used"] = "identity.recovery_code_used"
    authenticator_id: UUID
    remaining: int


class AuthenticatorRemoved(_UserEvent):
    """The user's authenticator app no longer counts: disabled by the user or an administrator.
    Its codes open nothing from now on."""

    type: Literal["identity.authenticator_removed"] = "identity.authenticator_removed"
    authenticator_id: UUID
    changed_by: ChangedBy = Field(
        description="The user themself (with their own token), or an administrator."
    )


class UserAuthenticatedV2(_UserEvent):
    """A token was issued to the user (its id, never the token)."""

    type: Literal["identity.user_authenticated_v2"] = "identity.user_authenticated_v2"
    token_id: UUID = Field(
        description="The token's `jti` (not the token): for audit and revocation."
    )
    expires_at: AwareDatetime
    second_factor: Literal["totp", "recovery_code"] | None = Field(
        default=None, description="What proved the second factor; None: the user has none."
    )


class UserAuthenticationFailedV2(Event):
    """An authentication (or a password change) failed. The same shape whether or not the name
    is a user's: no user id, and the name typed only as a keyed digest (people type passwords
    there). The record key is the digest too."""

    type: Literal["identity.user_authentication_failed_v2"] = (
        "identity.user_authentication_failed_v2"
    )
    user_name_digest: str = Field(
        description="Keyed HMAC of the normalised name typed (`keyed_digest`, purpose user_name); the record key."
    )
    reasons: list[FailureReason]


class UserLockedOutV2(_UserEvent):
    """Failures in a row locked the user: for a while, or until an administrator unlocks."""

    type: Literal["identity.user_locked_out_v2"] = "identity.user_locked_out_v2"
    mode: Literal["temporary", "hard"]
    locked_until: AwareDatetime | None = Field(default=None, description="None: until unlocked.")
    consecutive_failures: int


class UserUnlockedV2(_UserEvent):
    """An administrator lifted the user's lockout; their failures are forgotten."""

    type: Literal["identity.user_unlocked_v2"] = "identity.user_unlocked_v2"


class UserDisabledV2(_UserEvent):
    """The user may no longer authenticate; their tokens stop working in every service."""

    type: Literal["identity.user_disabled_v2"] = "identity.user_disabled_v2"


class UserEnabledV2(_UserEvent):
    """The user may authenticate again (tokens issued before the disabling stay revoked)."""

    type: Literal["identity.user_enabled_v2"] = "identity.user_enabled_v2"


class PasswordChangedV2(_UserEvent):
    """A new password was set; tokens issued before it stop working."""

    type: Literal["identity.password_changed_v2"] = "identity.password_changed_v2"
    changed_by: ChangedBy
    must_change_password: bool = False


class PasswordExpiredV2(_UserEvent):
    """An administrator expired the user's password: the next authentication answers `password_expired`."""

    type: Literal["identity.password_expired_v2"] = "identity.password_expired_v2"


class ApiKeyIssued(_UserEvent):
    """An API key was issued to the user (its id and account, never the key or its digest)."""

    type: Literal["identity.api_key_issued"] = "identity.api_key_issued"
    key_id: UUID
    account: UUID = Field(description="The context identifier of the account the key acts for.")
    issued_by: ChangedBy


class ApiKeyRevoked(_UserEvent):
    """One of the user's API keys was revoked."""

    type: Literal["identity.api_key_revoked"] = "identity.api_key_revoked"
    key_id: UUID
    revoked_by: ChangedBy


class ApiKeyExchanged(_UserEvent):
    """An API key was exchanged for a token (the token's id, never the token)."""

    type: Literal["identity.api_key_exchanged"] = "identity.api_key_exchanged"
    key_id: UUID
    account: UUID
    token_id: UUID = Field(description="The token's `jti`: for audit and revocation.")
    expires_at: AwareDatetime


# -- replies (to the caller's reply_to, or signgate.identity.replies) --


class AuthenticationSucceeded(Message):
    """AssureSign's AuthenticateUserResult with Success="true"."""

    type: Literal["identity.authentication_succeeded"] = "identity.authentication_succeeded"
    success: Literal[True] = True
    access_token: Secret = Field(
        description="Signed token; send it as the `access_token` of commands."
    )
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


class AuthenticatorEnrolment(Message):
    """A pending authenticator's secret, told once: show the URI as a QR code (or the secret for
    typing), then confirm with the app's first code."""

    type: Literal["identity.authenticator_enrolment"] = "identity.authenticator_enrolment"
    user_id: UUID
    authenticator_id: UUID
    secret: Secret = Field(description="The base32 secret, for typing into an app.")
    otpauth_uri: Secret = Field(description="The otpauth://totp/... URI an app reads as a QR code.")
    digits: int = 6
    algorithm: TotpAlgorithm = "SHA1"
    period_seconds: int = 30


class RecoveryCodesIssued(Message):
    """The user's recovery codes, told once: each opens one login (or one disabling) in place of a
    code; signgate keeps only their keyed digests."""

    type: Literal["identity.recovery_codes_issued"] = "identity.recovery_codes_issued"
    user_id: UUID
    authenticator_id: UUID
    recovery_codes: list[Secret]


class IssuedApiKey(Message):
    """A new API key, told once: keep it; signgate keeps only its keyed digest."""

    type: Literal["identity.issued_api_key"] = "identity.issued_api_key"
    api_key: Secret = Field(description="Send it as the `X-API-KEY` header, or exchange it.")
    key_id: UUID
    name: str
    user_id: UUID
    account: UUID
    created_at: AwareDatetime


class ApiKeySummary(BaseModel):
    """One API key as its list shows it: never the key or its digest."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    key_id: UUID
    name: str
    account: UUID
    created_at: AwareDatetime
    last_used_at: AwareDatetime | None = Field(
        default=None, description="When it was last exchanged for a token; None: never."
    )
    revoked_at: AwareDatetime | None = None


class ApiKeysListed(Message):
    """A user's API keys, oldest first."""

    type: Literal["identity.api_keys_listed"] = "identity.api_keys_listed"
    user_id: UUID
    keys: list[ApiKeySummary]


class ApiKeyToken(Message):
    """The token an API key was exchanged for: its user's, acting for the key's account only."""

    type: Literal["identity.api_key_token"] = "identity.api_key_token"
    access_token: Secret = Field(
        description="Signed token; send it as the `access_token` of commands."
    )
    token_type: Literal["Bearer"] = "Bearer"
    expires_at: AwareDatetime
    key_id: UUID
    user_id: UUID
    user_name: str
    account: UUID


COMMANDS: tuple[type[Command], ...] = (
    RegisterUser,
    UpdateUser,
    UpdateUserProfile,
    SetPassword,
    ChangePassword,
    DisableUser,
    EnableUser,
    UnlockUser,
    ExpirePassword,
    AuthenticateUser,
    IssueApiKey,
    ListApiKeys,
    RevokeApiKey,
    ExchangeApiKey,
    EnrolAuthenticator,
    ConfirmAuthenticator,
    DisableAuthenticator,
    RegenerateRecoveryCodes,
)
EVENTS: tuple[type[Event], ...] = (
    UserRegistered,
    UserUpdated,
    UserProfileUpdated,
    UserAuthenticated,
    UserAuthenticationFailed,
    UserLockedOut,
    UserUnlocked,
    UserDisabled,
    UserEnabled,
    PasswordChanged,
    PasswordExpired,
    CommandRejected,
    UserRegisteredV2,
    UserUpdatedV2,
    UserProfileUpdatedV2,
    UserMobileNumberChanged,
    UserAuthenticatedV2,
    UserAuthenticationFailedV2,
    UserLockedOutV2,
    UserUnlockedV2,
    UserDisabledV2,
    UserEnabledV2,
    PasswordChangedV2,
    PasswordExpiredV2,
    ApiKeyIssued,
    ApiKeyRevoked,
    ApiKeyExchanged,
    AuthenticatorConfirmed,
    AuthenticatorRemoved,
    AuthenticatorEnrolled,
    RecoveryCodesRegenerated,
    RecoveryCodeUsed,
)
PUBLISHED_EVENTS: tuple[type[Event], ...] = (
    UserRegisteredV2,
    UserUpdatedV2,
    UserProfileUpdatedV2,
    UserMobileNumberChanged,
    UserAuthenticatedV2,
    UserAuthenticationFailedV2,
    UserLockedOutV2,
    UserUnlockedV2,
    UserDisabledV2,
    UserEnabledV2,
    PasswordChangedV2,
    PasswordExpiredV2,
    ApiKeyIssued,
    ApiKeyRevoked,
    ApiKeyExchanged,
    AuthenticatorConfirmed,
    AuthenticatorRemoved,
    AuthenticatorEnrolled,
    RecoveryCodesRegenerated,
    RecoveryCodeUsed,
    CommandRejected,
)
"""What identity publishes today; the rest of `EVENTS` is read only to decode older records."""
REPLIES: tuple[type[Message], ...] = (
    AuthenticationSucceeded,
    AuthenticationFailed,
    IssuedApiKey,
    ApiKeysListed,
    ApiKeyToken,
    AuthenticatorEnrolment,
    RecoveryCodesIssued,
)


def normalise_user_name(user_name: str) -> str:
    """The canonical form of a user name: the record key and the stored name."""
    return user_name.strip().lower()


API_KEY_PREFIX = "sgk_"
"""How an API key begins: ``sgk_``, its id (32 hex digits, public), then its secret."""


def api_key_id(api_key: str) -> UUID | None:
    """The public id an API key begins with; None for text that is no key of ours."""
    if not api_key.startswith(API_KEY_PREFIX):
        return None
    try:
        return UUID(hex=api_key[len(API_KEY_PREFIX) : len(API_KEY_PREFIX) + 32])
    except ValueError:
        return None


def command_key(command: Command) -> str:
    """The record key of an identity command: the normalised user name it names, or, for an API key
    exchange, the key's public id (never the key)."""
    if isinstance(command, ExchangeApiKey):
        key_id = api_key_id(command.api_key.get_secret_value())
        return f"api-key:{key_id}" if key_id else "api-key"
    return normalise_user_name(command.user_name)  # type: ignore[attr-defined]
