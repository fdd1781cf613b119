"""Use cases of the identity service: one per command, each inside one Postgres transaction.

Who may do what: administrative commands need an ``access_token`` with the ``admin`` role
(of an enabled user, or an operator token minted with ``python -m libs.tools.operator_token``);
a user may update their own profile with their own token; ``AuthenticateUser`` and
``ChangePassword`` prove themselves with the password and need no token.

What the events name a user by (their id, masked contacts, keyed digests, the mobile number sealed
to the authentication service) is `services.identity.views`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from libs.runtime.errors import Refusal
from libs.runtime.messaging.outgoing import Outgoing
from libs.runtime.service import Scope
from libs.security.secrets import SecretHasher
from libs.security.tokens import AccountState, Claims, TokenIssuer, TokenVerifier
from services.identity import domain, repository
from services.identity.failures import FailureCounters
from services.identity.repository import User
from services.identity.settings import IdentitySettings
from services.identity.views import (
    contacts,
    fact,
    failure,
    keys_of,
    mobile_number_change,
    outcome_for_name,
)
from signgate_contracts import Message
from signgate_contracts.identity import (
    AuthenticateUser,
    AuthenticationFailed,
    AuthenticationFailure,
    AuthenticationSucceeded,
    ChangePassword,
    DisableUser,
    EnableUser,
    ExpirePassword,
    FailureReason,
    PasswordChangedV2,
    PasswordExpiredV2,
    RegisterUser,
    SetPassword,
    UnlockUser,
    UpdateUser,
    UpdateUserProfile,
    UserAuthenticatedV2,
    UserDisabledV2,
    UserEnabledV2,
    UserLockedOutV2,
    UserProfileUpdatedV2,
    UserRegisteredV2,
    UserUnlockedV2,
    UserUpdatedV2,
)
from signgate_contracts.rejection import CommandRejected
from signgate_contracts.topics import IDENTITY_REPLIES

# -- what every use case reaches for --


def settings_of(unit: Scope[Any]) -> IdentitySettings:
    settings = unit.dependencies.settings
    if not hasattr(settings, "lockout"):
        raise TypeError("the identity service runs with IdentitySettings")
    return settings  # type: ignore[return-value]


def hasher_of(unit: Scope[Any]) -> SecretHasher:
    return SecretHasher.from_settings(settings_of(unit).secrets)


def counters_of(unit: Scope[Any]) -> FailureCounters:
    settings = settings_of(unit)
    assert unit.dependencies.redis is not None
    return FailureCounters(
        unit.dependencies.redis, settings.connections.redis_prefix, settings.failure_memory
    )


class IdentityAccountStates:
    """``AccountStates`` from identity's own users table: the authoritative state, not a projection."""

    def __init__(self, connection) -> None:
        self._connection = connection

    async def get(self, subject: str) -> AccountState | None:
        try:
            user_id = uuid.UUID(subject)
        except ValueError:
            return None  # an operator token: no user behind it
        user = await repository.select_user_by_id(self._connection, user_id)
        if user is None:
            return None
        return AccountState(disabled=user.disabled, tokens_valid_after=user.tokens_valid_after)


async def caller(command, unit: Scope[Any]) -> Claims:
    """The verified claims of the command's token (401/403 refusals otherwise)."""
    settings = settings_of(unit)
    verifier = TokenVerifier.from_settings(
        settings.tokens, states=IdentityAccountStates(unit.connection), clock=settings.clock
    )
    return await verifier.verify(command.access_token)


async def administrator(command, unit: Scope[Any]) -> Claims:
    claims = await caller(command, unit)
    domain.require_administrator(claims)
    return claims


async def existing_user(unit: Scope[Any], user_name: str, *, for_update: bool = False) -> User:
    user = await repository.select_user(
        unit.connection, domain.normalise_user_name(user_name), for_update=for_update
    )
    if user is None:
        raise domain.UserNotFound()
    return user


# -- managing users --


async def register_user(command: RegisterUser, unit: Scope[Any]) -> list[Outgoing]:
    await administrator(command, unit)
    settings = settings_of(unit)
    now = settings.clock()
    name = domain.normalise_user_name(command.user_name)
    accounts = domain.valid_memberships(command.accounts)
    email = domain.valid_email(command.email)
    mobile = domain.valid_mobile_number(command.mobile_number)
    password_hash = None
    if command.password is not None:
        password = command.password.get_secret_value()
        domain.check_new_password(password, name, settings.passwords)
        password_hash = await hasher_of(unit).hash(password)
    user_id = uuid.uuid4()
    roles = sorted(set(command.roles))
    inserted = await repository.insert_user(
        unit.connection,
        user_id=user_id,
        user_name=name,
        first_name=command.first_name,
        last_name=command.last_name,
        email=email,
        mobile_number=mobile,
        roles=roles,
        password_hash=password_hash,
        must_change_password=command.require_password_change,
        now=now,
    )
    if not inserted:
        raise domain.UserExists()
    await repository.upsert_accounts(unit.connection, accounts)
    await repository.replace_memberships(unit.connection, user_id, accounts)
    return [
        fact(
            UserRegisteredV2(
                user_id=user_id,
                **contacts(user_id, email, mobile, keys_of(unit)),
                accounts=accounts,
                roles=roles,
                password_set=password_hash is not None,
                must_change_password=command.require_password_change,
                occurred_at=now,
            )
        )
    ]


async def update_user(command: UpdateUser, unit: Scope[Any]) -> list[Outgoing]:
    await administrator(command, unit)
    now = settings_of(unit).clock()
    user = await existing_user(unit, command.user_name)
    accounts = domain.valid_memberships(command.accounts)
    roles = sorted(set(command.roles))
    await repository.upsert_accounts(unit.connection, accounts)
    await repository.replace_memberships(unit.connection, user.id, accounts)
    await repository.update_user_roles(unit.connection, user.id, roles, now)
    return [fact(UserUpdatedV2(user_id=user.id, accounts=accounts, roles=roles, occurred_at=now))]


async def update_user_profile(command: UpdateUserProfile, unit: Scope[Any]) -> list[Outgoing]:
    """The user (with their own token) or an administrator replaces the profile; a change of the
    mobile number signer codes go to is recorded and announced (`domain.mobile_number_changed`)."""
    claims = await caller(command, unit)
    now = settings_of(unit).clock()
    user = await repository.select_user(
        unit.connection, domain.normalise_user_name(command.user_name), for_update=True
    )
    if user is None:
        domain.require_administrator(claims)  # only an administrator learns who does not exist
        raise domain.UserNotFound()
    domain.require_self_or_administrator(claims, user.id)
    email = domain.valid_email(command.email)
    mobile = domain.valid_mobile_number(command.mobile_number)
    by = domain.changed_by(claims, user.id)
    await repository.update_user_profile(
        unit.connection,
        user.id,
        first_name=command.first_name,
        last_name=command.last_name,
        email=email,
        mobile_number=mobile,
        now=now,
    )
    effects = [
        fact(
            UserProfileUpdatedV2(
                user_id=user.id,
                **contacts(user.id, email, mobile, keys_of(unit)),
                changed_by=by,
                occurred_at=now,
            )
        )
    ]
    if domain.mobile_number_changed(user.mobile_number, mobile):
        await repository.insert_mobile_number_change(
            unit.connection,
            user.id,
            old_number=user.mobile_number,
            new_number=mobile,
            changed_by=by,
            actor=claims.subject,
            correlation_id=command.correlation_id,
            now=now,
        )
        effects.append(mobile_number_change(user.id, user.mobile_number, mobile, by, now))
    return effects


async def set_password(command: SetPassword, unit: Scope[Any]) -> list[Outgoing]:
    await administrator(command, unit)
    settings = settings_of(unit)
    now = settings.clock()
    user = await existing_user(unit, command.user_name)
    password = command.password.get_secret_value()
    domain.check_new_password(password, user.user_name, settings.passwords)
    password_hash = await hasher_of(unit).hash(password)
    await repository.update_password(
        unit.connection, user.id, password_hash, must_change=command.require_change, now=now
    )
    return [
        fact(
            PasswordChangedV2(
                user_id=user.id,
                changed_by="administrator",
                must_change_password=command.require_change,
                occurred_at=now,
            )
        )
    ]


async def disable_user(command: DisableUser, unit: Scope[Any]) -> list[Outgoing]:
    return await _set_disabled(command, unit, disabled=True)


async def enable_user(command: EnableUser, unit: Scope[Any]) -> list[Outgoing]:
    return await _set_disabled(command, unit, disabled=False)


async def _set_disabled(
    command: DisableUser | EnableUser, unit: Scope[Any], *, disabled: bool
) -> list[Outgoing]:
    """An administrator disables or enables a user; the fact says which."""
    await administrator(command, unit)
    now = settings_of(unit).clock()
    user = await existing_user(unit, command.user_name)
    await repository.update_disabled(unit.connection, user.id, disabled, now)
    event = UserDisabledV2 if disabled else UserEnabledV2
    return [fact(event(user_id=user.id, occurred_at=now))]


async def unlock_user(command: UnlockUser, unit: Scope[Any]) -> list[Outgoing]:
    await administrator(command, unit)
    now = settings_of(unit).clock()
    user = await existing_user(unit, command.user_name, for_update=True)
    await repository.update_lock_cleared(unit.connection, user.id, now)
    await counters_of(unit).clear(user.user_name)
    return [fact(UserUnlockedV2(user_id=user.id, occurred_at=now))]


async def expire_password(command: ExpirePassword, unit: Scope[Any]) -> list[Outgoing]:
    await administrator(command, unit)
    now = settings_of(unit).clock()
    user = await existing_user(unit, command.user_name)
    await repository.update_password_expired(unit.connection, user.id, now)
    return [fact(PasswordExpiredV2(user_id=user.id, occurred_at=now))]


# -- proving a password --


@dataclass
class Attempt:
    """A password checked against a user name, with what it changed."""

    user: User | None
    reasons: list[FailureReason]
    """Empty when the password is right and nothing stands in the way of a token."""
    effects: list[Outgoing] = field(default_factory=list)
    standing: domain.AccountStanding | None = None


async def attempt_password(
    unit: Scope[Any],
    command: AuthenticateUser | ChangePassword,
    user_name: str,
    password: str,
    now: datetime,
) -> Attempt:
    """Check a password the same way whether or not the user exists, counting failures.

    The lock is read before hashing, and a locked user's password is still checked in
    full, so that neither the answer nor its cost tells an unknown name from a wrong
    password, and a locked, disabled or expired account is revealed only to a caller
    who knows the password. The user's row is locked for the attempt, so attempts on one
    user are serialised across replicas.
    """
    settings = settings_of(unit)
    hasher = hasher_of(unit)
    await hasher.warm_up()
    name = domain.normalise_user_name(user_name)
    user = await repository.select_user(unit.connection, name, for_update=True)
    locked = user is not None and domain.is_locked(user.lock_mode, user.locked_until, now)  # type: ignore[arg-type]
    verification = await hasher.verify(user.password_hash if user else None, password)

    if user is None or not verification.matches:
        return await _failed(unit, command, name, user, now)

    standing = domain.AccountStanding(
        locked=locked,
        disabled=user.disabled,
        password_expired=domain.password_has_expired(
            expired_now=user.password_expired,
            changed_at=user.password_changed_at,
            now=now,
            policy=settings.passwords,
        ),
        must_change_password=user.must_change_password,
    )
    if not locked:  # a right password ends the run of failures
        if user.failed_attempts or user.lock_mode:
            await repository.update_lock_cleared(unit.connection, user.id, now)
        await counters_of(unit).clear(name)
    if verification.needs_rehash:
        await repository.update_password_hash(unit.connection, user.id, await hasher.hash(password))
    return Attempt(user, domain.refusal_reasons(standing), standing=standing)


async def _failed(
    unit: Scope[Any], command, name: str, user: User | None, now: datetime
) -> Attempt:
    settings = settings_of(unit)
    policy = settings.lockout
    count = await counters_of(unit).record_failure(
        name,
        command.event_id,
        threshold=policy.threshold,
        hard_after=policy.hard_after,
        durable_total=user.failed_attempts if user else 0,
    )
    effects = [failure(name, ["invalid_credentials"], keys_of(unit), now)]
    if user is not None:
        if count.locks:
            lock = domain.lock_for(
                policy, consecutive_failures=count.total, lockouts=user.lockouts, now=now
            )
            if user.lock_mode == "hard":
                lock = domain.Lock("hard", None)  # a hard lock is never softened
            await repository.update_lock(
                unit.connection,
                user.id,
                mode=lock.mode,
                until=lock.until,
                failed_attempts=count.total,
                now=now,
            )
            effects.append(
                fact(
                    UserLockedOutV2(
                        user_id=user.id,
                        mode=lock.mode,
                        locked_until=lock.until,
                        consecutive_failures=count.total,
                        occurred_at=now,
                    )
                )
            )
        else:
            await repository.update_failed_attempts(unit.connection, user.id, count.total)
    return Attempt(user, ["invalid_credentials"], effects)


# -- authenticating --


async def authenticate_user(command: AuthenticateUser, unit: Scope[Any]) -> list[Outgoing]:
    """AssureSign's AuthenticateUser: a token and the user's accounts, or the reasons why not.

    The answer goes only to the caller's ``reply_to`` (or ``signgate.identity.replies``); the
    events topic gets the fact (``UserAuthenticatedV2`` with the token's id, never the token,
    or ``UserAuthenticationFailedV2`` with the reasons and the digest of the name typed). A
    refusal for an expired password, or one that must be changed, carries the portal's page
    for it (`IdentitySettings.password_links`).
    """
    settings = settings_of(unit)
    now = settings.clock()
    name = domain.normalise_user_name(command.user_name)
    attempt = await attempt_password(unit, command, name, command.password.get_secret_value(), now)
    user = attempt.user

    if attempt.reasons:
        urls = (
            domain.links_for(
                attempt.reasons, settings.password_links, user_name=user.user_name, user_id=user.id
            )
            if user is not None
            else {}
        )
        answer = AuthenticationFailed(
            reasons=[
                AuthenticationFailure(code=r, message=domain.FAILURE_TEXT[r])
                for r in attempt.reasons
            ],
            occurred_at=now,
            **urls,
        )
        effects = attempt.effects or [failure(name, attempt.reasons, keys_of(unit), now)]
        return [Outgoing.answer(command, IDENTITY_REPLIES.name, name, answer), *effects]

    assert user is not None
    accounts = await repository.select_memberships(unit.connection, user.id)
    issued = TokenIssuer.from_settings(settings.tokens, clock=lambda: now).issue(
        str(user.id),
        user.user_name,
        accounts=[str(a.context_identifier) for a in accounts],
        primary_account=next((str(a.context_identifier) for a in accounts if a.is_primary), None),
        roles=user.roles,
    )
    answer = AuthenticationSucceeded(
        access_token=issued.token,
        expires_at=issued.claims.expires_at,
        user_name=user.user_name,
        first_name=user.first_name,
        last_name=user.last_name,
        accounts=accounts,
        change_password_url=settings.password_links.change(
            user_name=user.user_name, user_id=user.id
        ),
        occurred_at=issued.claims.issued_at,
    )
    return [
        Outgoing.answer(command, IDENTITY_REPLIES.name, name, answer),
        fact(
            UserAuthenticatedV2(
                user_id=user.id,
                token_id=issued.claims.token_id,
                expires_at=issued.claims.expires_at,
                occurred_at=issued.claims.issued_at,
            )
        ),
    ]


async def change_password(command: ChangePassword, unit: Scope[Any]) -> list[Outgoing]:
    """A user replaces their password by proving the current one (the way out of "expired" and
    "change required"); a wrong current password counts as a failed authentication."""
    settings = settings_of(unit)
    now = settings.clock()
    name = domain.normalise_user_name(command.user_name)
    new_password = command.new_password.get_secret_value()
    domain.check_new_password(new_password, name, settings.passwords)  # before any state changes
    attempt = await attempt_password(
        unit, command, name, command.current_password.get_secret_value(), now
    )
    user = attempt.user
    standing = attempt.standing
    if user is None or standing is None or standing.locked or standing.disabled:
        refusal: Refusal
        if standing is not None and standing.locked:
            refusal = domain.AccountLocked()
        elif standing is not None and standing.disabled:
            refusal = domain.AccountDisabled()
        else:
            refusal = domain.InvalidCredentials()
        return [
            outcome_for_name(name, rejection(command, refusal, now), keys_of(unit)),
            *attempt.effects,
        ]
    password_hash = await hasher_of(unit).hash(new_password)
    await repository.update_password(
        unit.connection, user.id, password_hash, must_change=False, now=now
    )
    return [fact(PasswordChangedV2(user_id=user.id, changed_by="user", occurred_at=now))]


def rejection(command: Message, refusal: Refusal, now: datetime) -> CommandRejected:
    """The ``command.rejected`` outcome of a command whose refusal has effects to keep (a counted
    failure), so it is returned with them rather than raised (which would roll them back)."""
    return CommandRejected(
        status=refusal.status,
        code=refusal.code,
        message=refusal.message,
        field=refusal.field,
        command_type=command.type,
        command_event_id=command.event_id,
        occurred_at=now,
    )
