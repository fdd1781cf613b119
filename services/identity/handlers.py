"""The identity service's handlers: one per command, each inside the record's Postgres transaction.

Each reads what its decision needs (the caller's token and account state, the user, the
password's check, the failure counter), asks one rule of `services.identity.domain`, writes
what it decided and returns the outcome. A refusal raised here rolls the record's writes back
and becomes its ``command.rejected``.

Who may do what: administrative commands need an ``access_token`` with the ``admin`` role
(of an enabled user, or an operator token minted with ``python -m libs.tools.operator_token``);
a user may update their own profile with their own token; ``AuthenticateUser`` and
``ChangePassword`` prove themselves with the password and need no token.

What the events name a user by (their id, masked contacts, keyed digests, the mobile number sealed
to the authentication service) is `services.identity.views`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import SecretStr

from libs.runtime.messaging.outgoing import Outgoing
from libs.runtime.service import MessageHandler
from libs.security.tokens import Claims, check_account_state
from libs.security.totp import TotpParameters, matching_step, new_secret, provisioning_uri
from services.identity import domain, repository
from services.identity.authenticators import looks_like_recovery_code
from services.identity.dependencies import IdentityDependencies, IdentityScope
from services.identity.views import (
    contacts,
    fact,
    failure,
    mobile_number_change,
    outcome_for_name,
    rejection,
    sealed_totp_secret,
)
from signgate_contracts import Message
from signgate_contracts.envelope import Secret
from signgate_contracts.identity import (
    ApiKeyExchanged,
    ApiKeyIssued,
    ApiKeyRevoked,
    ApiKeysListed,
    ApiKeySummary,
    ApiKeyToken,
    AuthenticateUser,
    AuthenticationSucceeded,
    AuthenticatorConfirmed,
    AuthenticatorEnrolled,
    AuthenticatorEnrolment,
    AuthenticatorRemoved,
    ChangedBy,
    ChangePassword,
    ConfirmAuthenticator,
    DisableAuthenticator,
    DisableUser,
    EnableUser,
    EnrolAuthenticator,
    ExchangeApiKey,
    ExpirePassword,
    IssueApiKey,
    IssuedApiKey,
    ListApiKeys,
    PasswordChangedV2,
    PasswordExpiredV2,
    RecoveryCodesIssued,
    RecoveryCodesRegenerated,
    RecoveryCodeUsed,
    RegenerateRecoveryCodes,
    RegisterUser,
    RevokeApiKey,
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
    api_key_id,
    command_key,
)
from signgate_contracts.topics import IDENTITY_REPLIES

# -- who sends a command --


async def verified_caller(access_token: Secret | None, scope: IdentityScope) -> Claims:
    """The verified claims of a command's token: 401 without one or for a bad or revoked one, 403
    for a disabled user's, read from identity's own users table (the authority, in this record's
    transaction: a user disabled earlier in it is disabled already)."""
    claims = await scope.dependencies.verifier.verify(access_token)
    check_account_state(
        claims, await repository.select_account_state(scope.transaction, claims.subject)
    )
    return claims


async def administrator(access_token: Secret | None, scope: IdentityScope) -> Claims:
    """The claims of an administrator's token (403 `not_an_administrator` for anyone else's)."""
    claims = await verified_caller(access_token, scope)
    domain.require_administrator(claims)
    return claims


async def named_user(
    scope: IdentityScope, user_name: str, *, for_update: bool = False
) -> domain.User:
    """The user a command names (404 if there is none)."""
    user = await repository.select_user(
        scope.transaction, domain.normalise_user_name(user_name), for_update=for_update
    )
    return domain.existing_user(user)


# -- managing users --


async def handle_register_user(command: RegisterUser, scope: IdentityScope) -> list[Outgoing]:
    await administrator(command.access_token, scope)
    deps, connection = scope.dependencies, scope.transaction
    now = deps.clock()
    new = domain.registration(command, deps.passwords)
    password_hash = await deps.hasher.hash(new.password) if new.password is not None else None
    user_id = uuid.uuid4()
    inserted = await repository.insert_user(
        connection,
        user_id=user_id,
        user_name=new.user_name,
        first_name=command.first_name,
        last_name=command.last_name,
        email=new.email,
        mobile_number=new.mobile_number,
        roles=new.access.roles,
        password_hash=password_hash,
        must_change_password=new.must_change_password,
        now=now,
        locale=command.locale,
    )
    if not inserted:
        raise domain.UserExists()
    await repository.upsert_accounts(connection, new.access.accounts)
    await repository.replace_memberships(connection, user_id, new.access.accounts)
    return [
        fact(
            UserRegisteredV2(
                user_id=user_id,
                **contacts(user_id, new.email, new.mobile_number, deps.keys, command.locale),
                accounts=new.access.accounts,
                roles=new.access.roles,
                password_set=password_hash is not None,
                must_change_password=new.must_change_password,
                occurred_at=now,
            )
        )
    ]


async def handle_update_user(command: UpdateUser, scope: IdentityScope) -> list[Outgoing]:
    await administrator(command.access_token, scope)
    connection, now = scope.transaction, scope.dependencies.clock()
    user = await named_user(scope, command.user_name)
    access = domain.access_of(command.accounts, command.roles)
    await repository.upsert_accounts(connection, access.accounts)
    await repository.replace_memberships(connection, user.id, access.accounts)
    await repository.update_user_roles(connection, user.id, access.roles, now)
    return [
        fact(
            UserUpdatedV2(
                user_id=user.id, accounts=access.accounts, roles=access.roles, occurred_at=now
            )
        )
    ]


async def handle_update_user_profile(
    command: UpdateUserProfile, scope: IdentityScope
) -> list[Outgoing]:
    """The user (with their own token) or an administrator replaces the profile; a change of the
    mobile number signer codes go to is recorded and announced (`domain.mobile_number_changed`)."""
    claims = await verified_caller(command.access_token, scope)
    deps, connection = scope.dependencies, scope.transaction
    now = deps.clock()
    user = await repository.select_user(
        connection, domain.normalise_user_name(command.user_name), for_update=True
    )
    update = domain.profile_update(claims, user, command)
    user_id = update.user.id
    await repository.update_user_profile(
        connection,
        user_id,
        first_name=command.first_name,
        last_name=command.last_name,
        email=update.email,
        mobile_number=update.mobile_number,
        now=now,
        locale=command.locale,
    )
    effects = [
        fact(
            UserProfileUpdatedV2(
                user_id=user_id,
                **contacts(user_id, update.email, update.mobile_number, deps.keys, command.locale),
                changed_by=update.changed_by,
                occurred_at=now,
            )
        )
    ]
    if update.mobile_number_changed:
        await repository.insert_mobile_number_change(
            connection,
            user_id,
            old_number=update.user.mobile_number,
            new_number=update.mobile_number,
            changed_by=update.changed_by,
            actor=claims.subject,
            correlation_id=command.correlation_id,
            now=now,
        )
        effects.append(
            mobile_number_change(
                user_id, update.user.mobile_number, update.mobile_number, update.changed_by, now
            )
        )
    return effects


async def handle_set_password(command: SetPassword, scope: IdentityScope) -> list[Outgoing]:
    await administrator(command.access_token, scope)
    deps, connection = scope.dependencies, scope.transaction
    now = deps.clock()
    password = command.password.get_secret_value()
    named = await repository.select_user(connection, domain.normalise_user_name(command.user_name))
    user = domain.user_for_new_password(named, password, deps.passwords)
    password_hash = await deps.hasher.hash(password)
    await repository.update_password(
        connection, user.id, password_hash, must_change=command.require_change, now=now
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


async def handle_disable_or_enable_user(
    command: DisableUser | EnableUser, scope: IdentityScope
) -> list[Outgoing]:
    """An administrator disables a user (revoking every token issued so far), or enables them."""
    await administrator(command.access_token, scope)
    now = scope.dependencies.clock()
    user = await named_user(scope, command.user_name)
    disabled = isinstance(command, DisableUser)
    await repository.update_disabled(scope.transaction, user.id, disabled, now)
    changed = UserDisabledV2 if disabled else UserEnabledV2
    return [fact(changed(user_id=user.id, occurred_at=now))]


async def handle_unlock_user(command: UnlockUser, scope: IdentityScope) -> list[Outgoing]:
    """An administrator ends a user's lock and run of failures, in Postgres and in Redis."""
    await administrator(command.access_token, scope)
    deps = scope.dependencies
    now = deps.clock()
    user = await named_user(scope, command.user_name, for_update=True)
    await repository.update_lock_cleared(scope.transaction, user.id, now)
    await deps.counters.clear(user.user_name)
    return [fact(UserUnlockedV2(user_id=user.id, occurred_at=now))]


async def handle_expire_password(command: ExpirePassword, scope: IdentityScope) -> list[Outgoing]:
    await administrator(command.access_token, scope)
    now = scope.dependencies.clock()
    user = await named_user(scope, command.user_name)
    await repository.update_password_expired(scope.transaction, user.id, now)
    return [fact(PasswordExpiredV2(user_id=user.id, occurred_at=now))]


# -- proving a password --


@dataclass(frozen=True)
class CodeVerdict:
    """What checking a one-time code against a user's authenticator found, and what it was."""

    check: domain.CodeCheck
    kind: Literal["totp", "recovery_code"] | None = None
    recovery_codes_left: int | None = None
    """After a recovery code was spent: how many of the set are left."""


async def check_one_time_code(
    scope: IdentityScope,
    authenticator: domain.Authenticator,
    code: str,
    claim_id: uuid.UUID,
    now: datetime,
    *,
    spend_recovery_code: bool = True,
) -> CodeVerdict:
    """Check ``code`` against the authenticator: a TOTP code of a step within the drift window spends
    that step for the user (`UsedSteps`, subject ``user:<id>``, shared with the authentication
    service; the same command delivered again gets its acceptance again); a recovery code of a
    confirmed authenticator is spent in Postgres (only looked up, when not ``spend_recovery_code``:
    an account that refuses anyway must not use one up). Anything else is wrong.

    Once compared, and before anything is spent, the code is admitted under the user's ceiling of
    wrong codes (`GuessCeiling`, shared with the authentication service, where packages naming
    the user as a signer check codes too): past it, `TotpGuessesExhausted` (429) whatever the code."""
    deps, connection = scope.dependencies, scope.transaction
    secrets = deps.authenticator_secrets
    stored = authenticator.secret_encrypted
    secret, step = matching_authenticator_step(deps, authenticator, code, now)
    parameters, drift = authenticator.parameters, deps.totp.drift_steps
    recovery = None
    if step is None and authenticator.confirmed and looks_like_recovery_code(code):
        digest = deps.recovery_codes.digest(authenticator.id, code)
        if await repository.recovery_code_unused(connection, authenticator.id, digest):
            recovery = digest
    subject, wrong = domain.totp_subject(authenticator.user_id), step is None and recovery is None
    await deps.totp_guesses.admit(subject, str(claim_id), now, wrong=wrong)
    if step is not None:
        if secrets.needs_resealing(stored):
            await repository.update_authenticator_secret(
                connection,
                authenticator.id,
                secrets.seal(
                    secret, authenticator_id=authenticator.id, user_id=authenticator.user_id
                ),
            )
        claimed = await deps.used_steps.claim(
            subject,
            step,
            str(claim_id),
            parameters=parameters,
            drift_steps=drift,
        )
        return CodeVerdict("accepted" if claimed else "used", "totp")
    if recovery is not None and not spend_recovery_code:
        return CodeVerdict("accepted", "recovery_code")
    if recovery is not None:
        left = await repository.update_recovery_code_used(
            connection, authenticator.id, recovery, now
        )
        if left is not None:  # None: spent meanwhile by a concurrent login
            return CodeVerdict("accepted", "recovery_code", left)
    return CodeVerdict("wrong")


def matching_authenticator_step(
    deps: IdentityDependencies, authenticator: domain.Authenticator, code: str, now: datetime
) -> tuple[str, int | None]:
    """The authenticator's secret, opened, and the time step ``code`` matches (None: no match)."""
    secret = deps.authenticator_secrets.open(
        authenticator.secret_encrypted,
        authenticator_id=authenticator.id,
        user_id=authenticator.user_id,
    )
    step = matching_step(
        secret, code, now, parameters=authenticator.parameters, drift_steps=deps.totp.drift_steps
    )
    return secret, step


async def code_already_used(
    scope: IdentityScope, authenticator: domain.Authenticator, code: str, now: datetime
) -> bool:
    """Whether ``code`` is the authenticator's code of a step already spent (read only: nothing is
    claimed or counted)."""
    _, step = matching_authenticator_step(scope.dependencies, authenticator, code, now)
    subject = domain.totp_subject(authenticator.user_id)
    return step is not None and await scope.dependencies.used_steps.used(subject, step)


@dataclass(frozen=True)
class LoginAttempt:
    """What a password (and, for a user with an authenticator app, a one-time code) decided."""

    password: domain.PasswordAttempt
    code: CodeVerdict | None = None
    """The one-time code's check: None when none was checked (no authenticator, no code, or a
    wrong password, which spends no code)."""
    authenticator: domain.Authenticator | None = None


async def attempt_password(
    scope: IdentityScope,
    command: AuthenticateUser | ChangePassword,
    password: Secret,
    now: datetime,
) -> LoginAttempt:
    """Check the password a command gives the same way whether or not the user exists, counting
    failures; for a user with a confirmed authenticator app, its one-time code must be proven too
    (`domain.login_proof`).

    A locked user's password is still checked in full, so that neither the answer nor its cost
    tells an unknown name from a wrong password, and a locked, disabled or expired account is
    revealed only to a caller who knows the password (and the code, if the user has an
    authenticator). The user's row is locked for the attempt, so attempts on one user are
    serialised across replicas; the counter counts the attempt (its command's event id) once,
    however often it is delivered.
    """
    user_name, attempt_id = domain.normalise_user_name(command.user_name), command.event_id
    one_time_code = command.one_time_code.get_secret_value() if command.one_time_code else None
    deps, connection = scope.dependencies, scope.transaction
    await deps.hasher.warm_up()
    user = await repository.select_user(connection, user_name, for_update=True)
    secret = password.get_secret_value()
    verification = await deps.hasher.verify(user.password_hash if user else None, secret)
    matches = user is not None and verification.matches

    authenticator = None
    if user is not None:
        enrolled = await repository.select_authenticator(connection, user.id)
        authenticator = enrolled if enrolled is not None and enrolled.confirmed else None
    code = None
    if authenticator is not None and one_time_code is not None and not matches:
        # nothing is spent, but past the ceiling the answer is its 429 all the same, and a code
        # already used is totp_code_used as it would be with the right password: neither answer
        # may tell that the password was right
        subject = domain.totp_subject(authenticator.user_id)
        await deps.totp_guesses.admit(subject, str(attempt_id), now, wrong=False)
        if await code_already_used(scope, authenticator, one_time_code, now):
            code = CodeVerdict("used", "totp")
    if authenticator is not None and matches and one_time_code is not None:
        assert user is not None
        code = await check_one_time_code(
            scope,
            authenticator,
            one_time_code,
            attempt_id,
            now,
            spend_recovery_code=not domain.account_refuses(user, now),
        )
    proof = domain.login_proof(
        password_matches=matches,
        has_authenticator=authenticator is not None,
        code_check=code.check if code else ("wrong" if one_time_code is not None else None),
    )

    if user is not None and matches and verification.needs_rehash:
        await repository.update_password_hash(connection, user.id, await deps.hasher.hash(secret))
    if user is not None and proof.proven:
        attempt = domain.right_password(user, now, deps.passwords)
        if attempt.ends_failure_run:
            if user.failed_attempts or user.lock_mode:  # nothing recorded: nothing to clear
                await repository.update_lock_cleared(connection, user.id, now)
            await deps.counters.clear(user_name)
        return LoginAttempt(attempt, code, authenticator)
    if not proof.counts_failure:
        return LoginAttempt(domain.uncounted_refusal(user, proof), code, authenticator)

    attempt = await count_failure(scope, user_name, user, attempt_id, now, proof.refusal)
    return LoginAttempt(attempt, code, authenticator)


async def count_failure(
    scope: IdentityScope,
    user_name: str,
    user: domain.User | None,
    attempt_id: uuid.UUID,
    now: datetime,
    second_factor: domain.SecondFactorRefusal | None = None,
) -> domain.PasswordAttempt:
    """Count a failed proof (a wrong password or one-time code, or a name that is nobody's) in the
    user's one budget, once per attempt, and impose the lock it reaches."""
    deps, connection = scope.dependencies, scope.transaction
    count = await deps.counters.record_failure(
        user_name,
        attempt_id,
        threshold=deps.lockout.threshold,
        hard_after=deps.lockout.hard_after,
        durable_total=user.failed_attempts if user else 0,
    )
    attempt = domain.wrong_password(
        user,
        locks=count.locks,
        consecutive_failures=count.total,
        policy=deps.lockout,
        now=now,
        second_factor=second_factor,
    )
    if user is not None and attempt.lock is not None:
        await repository.update_lock(
            connection,
            user.id,
            mode=attempt.lock.mode,
            until=attempt.lock.until,
            failed_attempts=attempt.consecutive_failures,
            now=now,
        )
    elif user is not None:
        await repository.update_failed_attempts(connection, user.id, attempt.consecutive_failures)
    return attempt


def failure_events(
    scope: IdentityScope, user_name: str, attempt: domain.PasswordAttempt, now: datetime
) -> list[Outgoing]:
    """What a refused authentication publishes: the failure, with its reasons, by the digest of the
    name typed; and, if it locked the user, the lockout, by the user id."""
    effects = [failure(user_name, attempt.reasons, scope.dependencies.keys, now)]
    if attempt.user is not None and attempt.lock is not None:
        effects.append(
            fact(
                UserLockedOutV2(
                    user_id=attempt.user.id,
                    mode=attempt.lock.mode,
                    locked_until=attempt.lock.until,
                    consecutive_failures=attempt.consecutive_failures,
                    occurred_at=now,
                )
            )
        )
    return effects


# -- authenticating --


async def handle_authenticate_user(
    command: AuthenticateUser, scope: IdentityScope
) -> list[Outgoing]:
    """AssureSign's AuthenticateUser: a token and the user's accounts, or the reasons why not.

    The answer goes only to the caller's ``reply_to`` (or ``signgate.identity.replies``); the
    events topic gets the fact (``UserAuthenticatedV2`` with the token's id, never the token,
    or ``UserAuthenticationFailedV2`` with the reasons and the digest of the name typed). A
    refusal for an expired password, or one that must be changed, carries the portal's page
    for it (`domain.login_refusal`).
    """
    deps = scope.dependencies
    now = deps.clock()
    name = domain.normalise_user_name(command.user_name)
    login = await attempt_password(scope, command, command.password, now)
    attempt = login.password
    spent = recovery_code_spent(login.code, login.authenticator, now)
    user = attempt.user

    if attempt.reasons:
        refused = domain.login_refusal(attempt, deps.password_links, now)
        return [
            Outgoing.answer(command, IDENTITY_REPLIES.name, name, refused),
            *failure_events(scope, name, attempt, now),
            *spent,
        ]

    assert user is not None  # no reasons: the password was proven, so there is a user
    accounts = await repository.select_memberships(scope.transaction, user.id)
    issued = deps.issuer.issue(
        str(user.id),
        user.user_name,
        accounts=[str(a.context_identifier) for a in accounts],
        primary_account=next((str(a.context_identifier) for a in accounts if a.is_primary), None),
        roles=user.roles,
    )
    answer = AuthenticationSucceeded(
        access_token=SecretStr(issued.token),
        expires_at=issued.claims.expires_at,
        user_name=user.user_name,
        first_name=user.first_name,
        last_name=user.last_name,
        accounts=accounts,
        change_password_url=deps.password_links.change(user_name=user.user_name, user_id=user.id),
        occurred_at=issued.claims.issued_at,
    )
    return [
        Outgoing.answer(command, IDENTITY_REPLIES.name, name, answer),
        fact(
            UserAuthenticatedV2(
                user_id=user.id,
                token_id=issued.claims.token_id,
                expires_at=issued.claims.expires_at,
                second_factor=login.code.kind if login.code else None,
                occurred_at=issued.claims.issued_at,
            )
        ),
        *spent,
    ]


def recovery_code_spent(
    code: CodeVerdict | None, authenticator: domain.Authenticator | None, now: datetime
) -> list[Outgoing]:
    """The announcement that a recovery code was spent (how many are left), if one was."""
    if code is None or code.recovery_codes_left is None or authenticator is None:
        return []
    return [
        fact(
            RecoveryCodeUsed(
                user_id=authenticator.user_id,
                authenticator_id=authenticator.id,
                remaining=code.recovery_codes_left,
                occurred_at=now,
            )
        )
    ]


async def handle_change_password(command: ChangePassword, scope: IdentityScope) -> list[Outgoing]:
    """A user replaces their password by proving the current one (the way out of "expired" and
    "change required") and, with an authenticator app, a one-time code; a wrong current password
    or code counts as a failed authentication."""
    deps = scope.dependencies
    now = deps.clock()
    name = domain.normalise_user_name(command.user_name)
    new_password = command.new_password.get_secret_value()
    domain.check_new_password(new_password, name, deps.passwords)  # before any state changes
    login = await attempt_password(scope, command, command.current_password, now)
    attempt = login.password
    spent = recovery_code_spent(login.code, login.authenticator, now)
    refusal = domain.password_change_refusal(attempt)
    if refusal is not None:
        wrong = attempt.standing is None  # a wrong current password is a failed authentication
        return [
            outcome_for_name(name, rejection(command, refusal, now), deps.keys),
            *(failure_events(scope, name, attempt, now) if wrong else []),
            *spent,
        ]
    user = attempt.user
    assert user is not None  # no refusal: the current password was proven, so there is a user
    password_hash = await deps.hasher.hash(new_password)
    await repository.update_password(
        scope.transaction, user.id, password_hash, must_change=False, now=now
    )
    return [fact(PasswordChangedV2(user_id=user.id, changed_by="user", occurred_at=now)), *spent]


# -- API keys --


async def api_key_owner(
    access_token: Secret | None, user_name: str, scope: IdentityScope, *, for_update: bool = False
) -> tuple[Claims, domain.User, ChangedBy]:
    """The caller's claims and the user whose keys they manage (themself, or as an administrator)."""
    claims = await verified_caller(access_token, scope)
    user = await repository.select_user(
        scope.transaction, domain.normalise_user_name(user_name), for_update=for_update
    )
    owner, by = domain.api_key_owner(claims, user)
    return claims, owner, by


async def handle_issue_api_key(command: IssueApiKey, scope: IdentityScope) -> list[Outgoing]:
    """A user (or an administrator for them) gets a new API key for one of their accounts: the key
    only in the reply, its digest in the table, its id on the events topic."""
    claims, user, issued_by = await api_key_owner(
        command.access_token, command.user_name, scope, for_update=True
    )
    deps, connection = scope.dependencies, scope.transaction
    now = deps.clock()
    account = domain.api_key_account(
        await repository.select_memberships(connection, user.id),
        command.account,
        await repository.count_active_api_keys(connection, user.id),
        caller=claims if issued_by == "user" else None,
    )
    new = deps.api_keys.new_key()
    await repository.insert_api_key(
        connection,
        key_id=new.key_id,
        user_id=user.id,
        account=account,
        name=command.name,
        digest=new.digest,
        created_by=claims.subject,
        now=now,
    )
    answer = IssuedApiKey(
        api_key=SecretStr(new.api_key),
        key_id=new.key_id,
        name=command.name,
        user_id=user.id,
        account=account,
        created_at=now,
        occurred_at=now,
    )
    return [
        Outgoing.answer(command, IDENTITY_REPLIES.name, user.user_name, answer),
        fact(
            ApiKeyIssued(
                user_id=user.id,
                key_id=new.key_id,
                account=account,
                issued_by=issued_by,
                occurred_at=now,
            )
        ),
    ]


async def handle_list_api_keys(command: ListApiKeys, scope: IdentityScope) -> list[Outgoing]:
    """A user's keys (ids, names, accounts, times), answered to the caller only."""
    _, user, _ = await api_key_owner(command.access_token, command.user_name, scope)
    keys = await repository.select_api_keys(
        scope.transaction, user.id, include_revoked=command.include_revoked
    )
    answer = ApiKeysListed(
        user_id=user.id,
        keys=[
            ApiKeySummary(
                key_id=k.id,
                name=k.name,
                account=k.context_identifier,
                created_at=k.created_at,
                last_used_at=k.last_used_at,
                revoked_at=k.revoked_at,
            )
            for k in keys
        ],
        occurred_at=scope.dependencies.clock(),
    )
    return [Outgoing.answer(command, IDENTITY_REPLIES.name, user.user_name, answer)]


async def handle_revoke_api_key(command: RevokeApiKey, scope: IdentityScope) -> list[Outgoing]:
    """The user (or an administrator) revokes one of the user's keys: no exchange succeeds after."""
    _, user, revoked_by = await api_key_owner(command.access_token, command.user_name, scope)
    now = scope.dependencies.clock()
    key = domain.api_key_to_revoke(
        user, await repository.select_api_key(scope.transaction, command.key_id, for_update=True)
    )
    await repository.update_api_key_revoked(scope.transaction, key.id, now)
    return [
        fact(ApiKeyRevoked(user_id=user.id, key_id=key.id, revoked_by=revoked_by, occurred_at=now))
    ]


async def handle_exchange_api_key(command: ExchangeApiKey, scope: IdentityScope) -> list[Outgoing]:
    """A valid, unrevoked key of an enabled user becomes a short-lived token of that user, acting
    for the key's account only and with no roles; the token goes only to the caller."""
    deps, connection = scope.dependencies, scope.transaction
    now = deps.clock()
    presented = command.api_key.get_secret_value()
    key_id = api_key_id(presented)
    key = await repository.select_api_key(connection, key_id, for_update=True) if key_id else None
    matches = deps.api_keys.matches(key.digest if key else None, presented)
    user = await repository.select_user_by_id(connection, key.user_id) if key else None
    memberships = await repository.select_memberships(connection, user.id) if user else []
    key, user = domain.api_key_holder(key, matches, user, memberships)
    account = str(key.context_identifier)
    issued = deps.issuer.issue(
        str(user.id),
        user.user_name,
        accounts=[account],
        primary_account=account,
        ttl=deps.api_key_token_ttl,
    )
    await repository.update_api_key_used(connection, key.id, now)
    answer = ApiKeyToken(
        access_token=SecretStr(issued.token),
        expires_at=issued.claims.expires_at,
        key_id=key.id,
        user_id=user.id,
        user_name=user.user_name,
        account=key.context_identifier,
        occurred_at=issued.claims.issued_at,
    )
    return [
        Outgoing.answer(command, IDENTITY_REPLIES.name, command_key(command), answer),
        fact(
            ApiKeyExchanged(
                user_id=user.id,
                key_id=key.id,
                account=key.context_identifier,
                token_id=issued.claims.token_id,
                expires_at=issued.claims.expires_at,
                occurred_at=issued.claims.issued_at,
            )
        ),
    ]


# -- authenticator apps --


async def authenticator_owner(
    access_token: Secret | None,
    user_name: str,
    scope: IdentityScope,
    *,
    administrator_may: bool = False,
) -> tuple[domain.User, ChangedBy]:
    """The user whose authenticator a command manages (row-locked: a code check and a login of
    the same user are serialised), and who acts: the user, or (where allowed) an administrator."""
    claims = await verified_caller(access_token, scope)
    user = await repository.select_user(
        scope.transaction, domain.normalise_user_name(user_name), for_update=True
    )
    return domain.authenticator_user(claims, user, administrator_may=administrator_may)


async def handle_enrol_authenticator(
    command: EnrolAuthenticator, scope: IdentityScope
) -> list[Outgoing]:
    """The user starts enrolling an authenticator app: a fresh secret, encrypted at rest, pending
    until a first code confirms it; the secret and its otpauth:// URI go only to the caller."""
    user, _ = await authenticator_owner(command.access_token, command.user_name, scope)
    deps, connection = scope.dependencies, scope.transaction
    now = deps.clock()
    domain.authenticator_to_enrol(await repository.select_authenticator(connection, user.id))
    await repository.delete_pending_authenticator(connection, user.id)
    secret, parameters = new_secret(), TotpParameters()
    authenticator_id = uuid.uuid4()
    authenticator = domain.Authenticator(
        id=authenticator_id,
        user_id=user.id,
        secret_encrypted=deps.authenticator_secrets.seal(
            secret, authenticator_id=authenticator_id, user_id=user.id
        ),
        digits=parameters.digits,
        algorithm=parameters.algorithm,
        period_seconds=parameters.period,
        created_at=now,
        confirmed_at=None,
    )
    await repository.insert_authenticator(connection, authenticator)
    uri = provisioning_uri(
        secret, account_name=user.user_name, issuer=deps.totp.issuer, parameters=parameters
    )
    answer = AuthenticatorEnrolment(
        user_id=user.id,
        authenticator_id=authenticator_id,
        secret=SecretStr(secret),
        otpauth_uri=SecretStr(uri),
        digits=parameters.digits,
        algorithm=parameters.algorithm,
        period_seconds=parameters.period,
        occurred_at=now,
    )
    return [
        Outgoing.answer(command, IDENTITY_REPLIES.name, user.user_name, answer),
        fact(
            AuthenticatorEnrolled(
                user_id=user.id, authenticator_id=authenticator_id, occurred_at=now
            )
        ),
    ]


def new_recovery_codes(
    scope: IdentityScope, user: domain.User, authenticator: domain.Authenticator
) -> tuple[RecoveryCodesIssued, list[str]]:
    """A fresh set of recovery codes: the reply that tells them once, and their digests to store."""
    made = scope.dependencies.recovery_codes.new_codes(authenticator.id, domain.RECOVERY_CODE_COUNT)
    answer = RecoveryCodesIssued(
        user_id=user.id,
        authenticator_id=authenticator.id,
        recovery_codes=[SecretStr(code) for code in made.codes],
        occurred_at=scope.dependencies.clock(),
    )
    return answer, made.digests


async def handle_confirm_authenticator(
    command: ConfirmAuthenticator, scope: IdentityScope
) -> list[Outgoing]:
    """The user confirms the pending authenticator with its first code (which is spent: it opens no
    login): it becomes their second factor, its secret goes sealed to the authentication service,
    and the recovery codes go only to the caller. A wrong code is a 401 and counts nothing: the
    caller holds the user's token already, and the app is theirs."""
    user, by = await authenticator_owner(command.access_token, command.user_name, scope)
    deps, connection = scope.dependencies, scope.transaction
    now = deps.clock()
    authenticator = domain.authenticator_to_confirm(
        await repository.select_authenticator(connection, user.id)
    )
    verdict = await check_one_time_code(
        scope, authenticator, command.one_time_code.get_secret_value(), command.event_id, now
    )
    refusal = domain.code_refusal(verdict.check)
    if refusal is not None:
        raise refusal
    await repository.update_authenticator_confirmed(connection, authenticator.id, now)
    answer, digests = new_recovery_codes(scope, user, authenticator)
    await repository.replace_recovery_codes(connection, authenticator.id, digests, now)
    secret = deps.authenticator_secrets.open(
        authenticator.secret_encrypted, authenticator_id=authenticator.id, user_id=user.id
    )
    memberships = await repository.select_memberships(connection, user.id)
    return [
        Outgoing.answer(command, IDENTITY_REPLIES.name, user.user_name, answer),
        fact(
            AuthenticatorConfirmed(
                user_id=user.id,
                authenticator_id=authenticator.id,
                secret_sealed=sealed_totp_secret(user.id, secret, deps.keys),
                digits=authenticator.digits,
                algorithm=authenticator.algorithm,
                period_seconds=authenticator.period_seconds,
                changed_by=by,
                accounts=[m.context_identifier for m in memberships],
                occurred_at=now,
            )
        ),
    ]


async def prove_code(
    command: DisableAuthenticator | RegenerateRecoveryCodes,
    scope: IdentityScope,
    user: domain.User,
    authenticator: domain.Authenticator,
    code: str,
) -> tuple[CodeVerdict, list[Outgoing]]:
    """Check the user's code for a command that changes their second factor. A wrong code counts as
    a failed login (so codes cannot be guessed here past the lockout) and is answered 401 with the
    failure's effects; a right code already used is a 409 and counts nothing."""
    now = scope.dependencies.clock()
    verdict = await check_one_time_code(scope, authenticator, code, command.event_id, now)
    if verdict.check == "wrong":
        attempt = await count_failure(scope, user.user_name, user, command.event_id, now)
        refused = rejection(command, domain.InvalidOneTimeCode(), now)
        return verdict, [
            outcome_for_name(user.user_name, refused, scope.dependencies.keys),
            *failure_events(scope, user.user_name, attempt, now),
        ]
    refusal = domain.code_refusal(verdict.check)
    if refusal is not None:
        raise refusal
    return verdict, []


async def handle_disable_authenticator(
    command: DisableAuthenticator, scope: IdentityScope
) -> list[Outgoing]:
    """The user (with a current code or a recovery code) or an administrator removes the user's
    authenticator app: logins need the password alone again, and its codes open nothing."""
    user, by = await authenticator_owner(
        command.access_token, command.user_name, scope, administrator_may=True
    )
    deps, connection = scope.dependencies, scope.transaction
    now = deps.clock()
    authenticator = domain.confirmed_authenticator(
        await repository.select_authenticator(connection, user.id)
    )
    spent: list[Outgoing] = []
    if by == "user":
        code = domain.required_code(command.one_time_code)
        verdict, refused = await prove_code(command, scope, user, authenticator, code)
        if refused:
            return refused
        spent = recovery_code_spent(verdict, authenticator, now)
    await repository.update_authenticator_removed(connection, authenticator.id, by, now)
    removed = AuthenticatorRemoved(
        user_id=user.id, authenticator_id=authenticator.id, changed_by=by, occurred_at=now
    )
    return [fact(removed), *spent]  # the outcome first: a caller's client takes the first fact


async def handle_regenerate_recovery_codes(
    command: RegenerateRecoveryCodes, scope: IdentityScope
) -> list[Outgoing]:
    """The user, proving a current code (or a recovery code), gets a new set of recovery codes,
    told only to the caller; the old set opens nothing from now on."""
    user, _ = await authenticator_owner(command.access_token, command.user_name, scope)
    deps, connection = scope.dependencies, scope.transaction
    now = deps.clock()
    authenticator = domain.confirmed_authenticator(
        await repository.select_authenticator(connection, user.id)
    )
    _, refused = await prove_code(
        command, scope, user, authenticator, command.one_time_code.get_secret_value()
    )
    if refused:
        return refused
    answer, digests = new_recovery_codes(scope, user, authenticator)
    await repository.replace_recovery_codes(connection, authenticator.id, digests, now)
    return [
        Outgoing.answer(command, IDENTITY_REPLIES.name, user.user_name, answer),
        fact(
            RecoveryCodesRegenerated(
                user_id=user.id,
                authenticator_id=authenticator.id,
                count=len(digests),
                occurred_at=now,
            )
        ),
    ]


HANDLERS: Mapping[type[Message], MessageHandler] = {
    RegisterUser: handle_register_user,
    UpdateUser: handle_update_user,
    UpdateUserProfile: handle_update_user_profile,
    SetPassword: handle_set_password,
    ChangePassword: handle_change_password,
    DisableUser: handle_disable_or_enable_user,
    EnableUser: handle_disable_or_enable_user,
    UnlockUser: handle_unlock_user,
    ExpirePassword: handle_expire_password,
    AuthenticateUser: handle_authenticate_user,
    IssueApiKey: handle_issue_api_key,
    ListApiKeys: handle_list_api_keys,
    RevokeApiKey: handle_revoke_api_key,
    ExchangeApiKey: handle_exchange_api_key,
    EnrolAuthenticator: handle_enrol_authenticator,
    ConfirmAuthenticator: handle_confirm_authenticator,
    DisableAuthenticator: handle_disable_authenticator,
    RegenerateRecoveryCodes: handle_regenerate_recovery_codes,
}
