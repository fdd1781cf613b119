"""What the authentication service does with each command, and with OTP dispatch's answers.

Each handler reads what its decision needs (`repository`, the Redis counters and the OTP store),
decides with `domain` (every count's meaning is `domain.RecipientAttempts`'s), writes what the
decision says and returns what to publish.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from pydantic import SecretStr

from libs.runtime.errors import BadRequest, Forbidden, NotFound
from libs.runtime.messaging.outgoing import Outgoing, caused_by
from libs.runtime.service import MessageHandler
from libs.security.accounts import PostgresAccountStates
from libs.security.invitations import CredentialRequired
from libs.security.otp_store import OtpRecipient, VerifyOutcome
from libs.security.tokens import AccountDisabled, Claims
from libs.security.totp import TotpParameters, matching_step
from services.authentication import repository
from services.authentication.dependencies import AuthenticationScope
from services.authentication.domain import (
    DOCUMENT_NOT_FOUND,
    NO_USER_AT_ORDER,
    OTP_METHODS,
    RECIPIENT_LOCKED,
    SECRET_METHODS,
    SIGNER_NOT_MEMBER,
    TOTP_METHODS,
    TOTP_NOT_SET_UP,
    AttemptKind,
    Failure,
    InvitationNotValid,
    Method,
    RecipientAttempts,
    RecipientLocked,
    RecipientPolicy,
    SignerNotMember,
    TotpCodeUsed,
    TotpNotSetUp,
    admit_invitation,
    check_attempt,
    grant_expiry,
    grant_still_current,
    otp_delivery_plan,
)
from signgate_contracts import Command, CommandRejected, Event, Message, otp
from signgate_contracts import authentication as auth
from signgate_contracts.identity import TotpAlgorithm, user_totp_context
from signgate_contracts.topics import AUTHENTICATION_EVENTS, AUTHENTICATION_REPLIES, OTP_REQUESTS
from signgate_contracts.workflow import recipient_totp_context

DOCUMENT_NOT_OWNED = "Document does not belong to user"
NO_MOBILE_NUMBER = (
    "No mobile number is set in the user's profile: add one to receive the one-time password"
)
DELIVERY_FAILED = "The one-time password could not be delivered; ask for a new one"
FailureReason = Literal["wrong_secret", "expired_code", "no_pending_code"]
FAILURE_REASONS: dict[VerifyOutcome, FailureReason] = {
    VerifyOutcome.WRONG: "wrong_secret",
    VerifyOutcome.EXPIRED: "expired_code",
    VerifyOutcome.NO_PENDING: "no_pending_code",
}

RecipientCommand = (
    auth.OpenDocumentWithPassword
    | auth.RequestDocumentOtp
    | auth.VerifyDocumentOtp
    | auth.VerifyDocumentTotp
    | auth.GetRecipientAuthenticationStatus
)


def event(message: Event, package_id: str) -> Outgoing:
    return Outgoing(AUTHENTICATION_EVENTS.name, package_id, message)


async def handle_open_document_with_password(
    command: auth.OpenDocumentWithPassword, scope: AuthenticationScope
) -> list[Outgoing]:
    dependencies = scope.dependencies
    now = dependencies.now()
    _, policy = await recipient_attempting(command, scope, now, SECRET_METHODS)
    method = policy.method_for(SECRET_METHODS)
    verification = await dependencies.hasher.verify(
        policy.secret_hash, command.password.get_secret_value()
    )
    if verification.matches:
        await dependencies.secret_failures.succeeded(policy.package_id, policy.order)
        return await authenticated(command, scope, policy, method, now)
    attempts = await attempts_besides(scope, policy, "secret")
    used, counted = await dependencies.secret_failures.count(
        policy.package_id, policy.order, attempts.ceiling("secret"), command.event_id
    )
    failure = attempts.wrong_attempt("secret", used if counted else None)
    return await failed(scope, policy, method, "wrong_secret", failure, now)


async def handle_verify_document_otp(
    command: auth.VerifyDocumentOtp, scope: AuthenticationScope
) -> list[Outgoing]:
    dependencies = scope.dependencies
    now = dependencies.now()
    _, policy = await recipient_attempting(command, scope, now, OTP_METHODS)
    method = policy.method_for(OTP_METHODS)
    attempts = await attempts_besides(scope, policy, "otp")
    result = await dependencies.otp.verify_and_consume(
        document_recipient(policy),
        command.code,
        retry_count=attempts.ceiling("otp"),
        now=now,
        attempt=command.event_id,
    )
    if result.ok:
        return await authenticated(command, scope, policy, method, now)
    failure = attempts.wrong_attempt("otp", None if result.spent else result.attempts_used)
    reason = FAILURE_REASONS.get(result.outcome, "wrong_secret")
    return await failed(scope, policy, method, reason, failure, now)


async def handle_verify_document_totp(
    command: auth.VerifyDocumentTotp, scope: AuthenticationScope
) -> list[Outgoing]:
    """A code from the recipient's authenticator app: a match is claimed for its time step (once
    per subject, atomically across replicas); a right code already used is refused (409) without
    spending an attempt; a wrong one spends one of the recipient's retry count, as every method's,
    and one of the subject's ceiling of wrong codes (`GuessCeiling`, shared by every package naming
    the same API user, and by their logins): past it, 429 whatever the code, spending nothing."""
    dependencies = scope.dependencies
    now = dependencies.now()
    _, policy = await recipient_attempting(command, scope, now, TOTP_METHODS)
    key = await totp_key(scope, policy)
    drift = dependencies.totp.drift_steps
    step = matching_step(
        key.secret,
        command.code.get_secret_value(),
        now,
        parameters=key.parameters,
        drift_steps=drift,
    )
    await dependencies.totp_guesses.admit(
        policy.totp_subject, str(command.event_id), now, wrong=step is None
    )
    if step is not None:
        if not await dependencies.used_steps.claim(
            policy.totp_subject,
            step,
            str(command.event_id),
            parameters=key.parameters,
            drift_steps=drift,
        ):
            raise TotpCodeUsed(auth.TOTP_CODE_USED)
        await dependencies.secret_failures.succeeded(policy.package_id, policy.order, "totp")
        return await authenticated(command, scope, policy, "totp", now)
    attempts = await attempts_besides(scope, policy, "totp")
    used, counted = await dependencies.secret_failures.count(
        policy.package_id, policy.order, attempts.ceiling("totp"), command.event_id, kind="totp"
    )
    failure = attempts.wrong_attempt("totp", used if counted else None)
    return await failed(scope, policy, "totp", "wrong_secret", failure, now)


async def handle_request_document_otp(
    command: auth.RequestDocumentOtp, scope: AuthenticationScope
) -> list[Outgoing]:
    stored, policy = await recipient_attempting(
        command, scope, scope.dependencies.now(), OTP_METHODS
    )
    assert stored.channel and policy.destination
    plan = otp_delivery_plan(policy, stored.channel, command.channel)
    return await request_delivery(
        command,
        scope,
        otp.OtpDeliveryRequested(
            purpose="document_opening",
            package_id=policy.package_id,
            order=policy.order,
            channel=plan.channel,
            destination=policy.destination,
            locale=stored.locale,
            brand_name=stored.brand_name,
            fallback=plan.fallback,
        ),
    )


async def handle_get_recipient_authentication_status(
    command: auth.GetRecipientAuthenticationStatus, scope: AuthenticationScope
) -> list[Outgoing]:
    dependencies = scope.dependencies
    stored = await named_recipient(command, scope)
    if stored is None:
        raise NotFound(NO_USER_AT_ORDER, code="recipient_not_found")
    policy = stored.policy
    otp_status = await dependencies.otp.status(document_recipient(policy))
    attempts = RecipientAttempts(
        policy.retry_count,
        secret_failures=await dependencies.secret_failures.used(policy.package_id, policy.order),
        otp_failures=otp_status.failures,
        totp_failures=await dependencies.secret_failures.used(
            policy.package_id, policy.order, "totp"
        ),
        locked=policy.locked,
        locked_failures=stored.locked_failures,
    )
    status = auth.RecipientAuthenticationStatus(
        package_id=policy.package_id,
        order=policy.order,
        method=policy.methods[0] if policy.methods else None,
        attempts_used=attempts.used,
        attempts_remaining=attempts.remaining,
        locked=policy.locked,
        locked_since=policy.locked_at,
        last_failure_reason=stored.last_failure,
        otp_expires_at=otp_status.pending.expires_at if otp_status.pending else None,
        resend_available_at=otp_status.resend_available_at,
        destination=stored.destination_masked,
    )
    return [Outgoing.answer(command, AUTHENTICATION_REPLIES.name, policy.package_id, status)]


async def handle_request_signing_otp(
    command: auth.RequestSigningOtp, scope: AuthenticationScope
) -> list[Outgoing]:
    claims = await signer_claims(command, scope)
    profile = await repository.select_user_profile(scope.transaction, claims.subject)
    if profile is None or not profile.mobile_number:
        raise BadRequest(NO_MOBILE_NUMBER, code="mobile_number_missing", field="mobile_number")
    return await request_delivery(
        command,
        scope,
        otp.OtpDeliveryRequested(
            purpose="signing",
            package_id=command.package_id,
            user_id=claims.subject,
            document_id=command.document_id,
            field_name=command.field_name,
            channel=command.channel,
            destination=profile.mobile_number,
            locale=profile.locale,
        ),
    )


async def handle_verify_signing_otp(
    command: auth.VerifySigningOtp, scope: AuthenticationScope
) -> list[Outgoing]:
    """A signer's code for one field: no recipient policy, so the retry count is the setting's,
    and the spent count (in Redis) is the signer's lock."""
    dependencies = scope.dependencies
    claims = await signer_claims(command, scope)
    attempts = RecipientAttempts(dependencies.signing_retry_count)
    result = await dependencies.otp.verify_and_consume(
        OtpRecipient.signing(
            command.package_id, claims.subject, command.document_id, command.field_name
        ),
        command.code,
        retry_count=attempts.ceiling("otp"),
        now=dependencies.now(),
        attempt=command.event_id,
    )
    if result.ok:
        authenticated = auth.SignerAuthenticated(
            package_id=command.package_id,
            document_id=command.document_id,
            field_name=command.field_name,
            user_id=claims.subject,
        )
        return [event(authenticated, command.package_id)]
    failure = attempts.wrong_attempt("otp", None if result.spent else result.attempts_used)
    if not failure.counted:
        raise RecipientLocked(RECIPIENT_LOCKED)
    return [
        event(
            auth.SignerAuthenticationFailed(
                package_id=command.package_id,
                document_id=command.document_id,
                field_name=command.field_name,
                user_id=claims.subject,
                reason=FAILURE_REASONS.get(result.outcome, "wrong_secret"),
                attempts_remaining=failure.attempts_remaining,
            ),
            command.package_id,
        )
    ]


def recipient_named(outcome: otp.OtpSent | otp.OtpDeliveryFailed) -> dict[str, Any]:
    """Who a code was for, as this service's events name them: a signer's field, or a recipient."""
    if outcome.purpose == "signing":
        assert outcome.user_id and outcome.document_id and outcome.field_name
        return {
            "package_id": outcome.package_id,
            "document_id": outcome.document_id,
            "field_name": outcome.field_name,
            "user_id": outcome.user_id,
        }
    assert outcome.order is not None
    return {"package_id": outcome.package_id, "order": outcome.order}


async def handle_otp_sent(sent: otp.OtpSent, scope: AuthenticationScope) -> list[Outgoing]:
    """OTP dispatch sent the code: that is the outcome of the command that asked for it; unless the
    command was answered already (a fallback's code, after the text it was answered with went
    undelivered): then the fact that the code went another way, which is no second answer."""
    if sent.answered_before:
        return [event(code_rerouted(sent), sent.package_id)]
    sent_fields: dict[str, Any] = {
        "destination": sent.destination,
        "expires_at": sent.expires_at,
        "resend_available_at": sent.resend_available_at,
    }
    outcome: Event
    if sent.purpose == "signing":
        signing_channel: Literal["sms", "voice"] = "voice" if sent.channel == "voice" else "sms"
        outcome = auth.SigningOtpSent(
            **recipient_named(sent), **sent_fields, channel=signing_channel
        )
    else:
        outcome = auth.DocumentOtpSent(**recipient_named(sent), **sent_fields, channel=sent.channel)
    return [event(outcome, sent.package_id)]


async def handle_otp_delivery_failed(
    failure: otp.OtpDeliveryFailed, scope: AuthenticationScope
) -> list[Outgoing]:
    """OTP dispatch could not deliver the code: the command's outcome is a 500; unless the command
    was answered already (a fallback's code failed after the text it was answered with went
    undelivered): then the fact that no code is on its way, and no rejection after the success."""
    if failure.answered_before:
        return [event(code_undelivered(failure), failure.package_id)]
    rejection = CommandRejected(status=500, code="otp_delivery_failed", message=DELIVERY_FAILED)
    return [event(rejection, failure.package_id)]


def code_rerouted(sent: otp.OtpSent) -> Event:
    """The fact of a fallback's code sent after the command was answered, for the code's purpose."""
    rerouted = auth.SigningOtpRerouted if sent.purpose == "signing" else auth.DocumentOtpRerouted
    return rerouted(
        **recipient_named(sent),
        channel=sent.channel,
        destination=sent.destination,
        reason=sent.fallback_reason or "no_receipt",
        expires_at=sent.expires_at,
        resend_available_at=sent.resend_available_at,
    )


def code_undelivered(failure: otp.OtpDeliveryFailed) -> Event:
    """The fact of a fallback's code undelivered after the command was answered."""
    undelivered = (
        auth.SigningOtpUndelivered if failure.purpose == "signing" else auth.DocumentOtpUndelivered
    )
    return undelivered(
        **recipient_named(failure),
        channel=failure.channel,
        destination=failure.destination,
        resend_available_at=failure.resend_available_at,
    )


async def handle_command_rejected(
    rejection: CommandRejected, scope: AuthenticationScope
) -> list[Outgoing]:
    """OTP dispatch refused a request of ours (a send limit): the caller gets that refusal."""
    if rejection.command_event_id is None:
        return []
    request = await repository.select_otp_request(scope.transaction, rejection.command_event_id)
    if request is None:
        return []  # another service's rejection, seen on a topic this service reads
    return [event(rejection.model_copy(update={"command_type": None}), request["package_id"])]


# -- the steps handlers share --


async def attempts_besides(
    scope: AuthenticationScope, policy: RecipientPolicy, kind: AttemptKind
) -> RecipientAttempts:
    """The recipient's retry count with their wrong attempts of the kinds other than ``kind`` that
    their policy uses (one retry count for all; the counter of ``kind`` is counted by the caller)."""
    dependencies = scope.dependencies
    secret = otp = totp = 0
    if kind != "secret" and policy.uses("secret"):
        secret = await dependencies.secret_failures.used(policy.package_id, policy.order)
    if kind != "otp" and policy.uses("otp"):
        otp = await dependencies.otp.failures(document_recipient(policy))
    if kind != "totp" and policy.uses("totp"):
        totp = await dependencies.secret_failures.used(policy.package_id, policy.order, "totp")
    return RecipientAttempts(
        policy.retry_count, secret_failures=secret, otp_failures=otp, totp_failures=totp
    )


@dataclass(frozen=True)
class TotpKey:
    """What a recipient's authenticator-app codes are checked against, opened for one check."""

    secret: str
    parameters: TotpParameters


async def totp_key(scope: AuthenticationScope, policy: RecipientPolicy) -> TotpKey:
    """The recipient's TOTP secret, opened from its sealed form: the authenticator the API user
    named as their signer confirmed (identity sealed it; a disabled user's opens nothing, as
    their tokens; nor does a user's who is not a member of the package's account, as their token
    would not sign for it: otherwise any owner could name any user and guess at their app), or
    the one workflow provisioned."""
    opener, connection = scope.dependencies.opener, scope.transaction
    if policy.totp_source == "user_authenticator":
        found = await repository.select_user_authenticator(connection, policy.signer_user_id)
        if found is None:
            raise TotpNotSetUp(TOTP_NOT_SET_UP)
        state = await PostgresAccountStates(connection).get(str(found.user_id))
        if state is not None and state.disabled:
            raise AccountDisabled()
        package = await repository.select_package(connection, policy.package_id)
        account = package.account if package else None
        if account is not None and not await repository.user_in_account(
            connection, found.user_id, account
        ):
            raise SignerNotMember(SIGNER_NOT_MEMBER)
        secret = opener.open(user_totp_context(found.user_id), found.secret_sealed)
        algorithm = cast(TotpAlgorithm, found.algorithm)
        return TotpKey(secret, TotpParameters(found.digits, algorithm, found.period_seconds))
    if policy.totp_sealed is None or policy.totp_authenticator_id is None:
        raise TotpNotSetUp(TOTP_NOT_SET_UP)
    opened = opener.open(
        recipient_totp_context(policy.package_id, policy.totp_authenticator_id), policy.totp_sealed
    )
    parameters = TotpParameters(opened["digits"], opened["algorithm"], opened["period_seconds"])
    return TotpKey(opened["secret"], parameters)


def document_recipient(policy: RecipientPolicy) -> OtpRecipient:
    return OtpRecipient.document_opening(policy.package_id, policy.order)


async def named_recipient(
    command: RecipientCommand, scope: AuthenticationScope
) -> repository.StoredRecipient | None:
    """The recipient the command names, once it has proved it may act for them: with the
    recipient's invitation, or the package owner's token. Anything else is refused (401) here,
    before a counter moves, a code is sent or a status is read."""
    dependencies, connection = scope.dependencies, scope.transaction
    digest = dependencies.digests.email(command.email) if command.email else None
    if command.invitation is not None:
        invitation = dependencies.invitations.verify(command.invitation.get_secret_value())
        if invitation.package_id != command.package_id:
            raise InvitationNotValid()
        stored = await repository.select_recipient(
            connection, command.package_id, invitation.order, read_ahead=scope.read_ahead
        )
        admit_invitation(
            invitation, command.package_id, command.order, digest, stored.policy if stored else None
        )
        return stored
    if command.access_token is None:
        raise CredentialRequired()
    claims = await dependencies.tokens.verify(command.access_token)
    package = await repository.select_package(connection, command.package_id)
    if package is None:
        raise NotFound(DOCUMENT_NOT_FOUND, code="document_not_found")
    if package.owner_id != claims.subject:
        raise Forbidden(DOCUMENT_NOT_OWNED, code="document_not_owned")
    return await repository.select_recipient(
        connection, command.package_id, command.order, digest, read_ahead=scope.read_ahead
    )


async def recipient_attempting(
    command: RecipientCommand,
    scope: AuthenticationScope,
    now: datetime,
    methods: frozenset[str],
) -> tuple[repository.StoredRecipient, RecipientPolicy]:
    """The recipient the command names and their policy, once `check_attempt` admits an attempt
    by one of ``methods`` now (refusals: not found, locked, outside the window, wrong method)."""
    stored = await named_recipient(command, scope)
    policy = check_attempt(stored.policy if stored else None, now, methods)
    assert stored is not None  # check_attempt refuses a recipient that was not found
    return stored, policy


async def authenticated(
    command: Command,
    scope: AuthenticationScope,
    policy: RecipientPolicy,
    method: Method,
    now: datetime,
) -> list[Outgoing]:
    """A method succeeded: say so, and grant access once every required method has."""
    dependencies = scope.dependencies
    if set(policy.methods) <= {method}:  # one method: nothing to remember for a later one
        satisfied: set[str] = {method}
    else:
        satisfied = await dependencies.secret_failures.satisfy(
            policy.package_id, policy.order, method
        )
    expires_at = grant_expiry(policy, now, dependencies.grants.lifetime)
    if not satisfied.issuperset(policy.methods):
        return [
            event(
                auth.RecipientAuthenticated(
                    package_id=policy.package_id,
                    order=policy.order,
                    method=method,
                    access_until=expires_at,
                ),
                policy.package_id,
            )
        ]
    return await grant_access(command, scope, policy, method, now, expires_at)


async def grant_access(
    command: Command,
    scope: AuthenticationScope,
    policy: RecipientPolicy,
    method: Method,
    now: datetime,
    expires_at: datetime,
) -> list[Outgoing]:
    """Sign a grant and record it (to revoke it later) with the reply that carries it and the event
    that announces the authentication, in the command's transaction."""
    connection = scope.transaction
    current = await repository.select_recipient_for_grant(
        connection, policy.package_id, policy.order
    )
    grant_still_current(policy, *(current or (None, None)))
    grant = scope.dependencies.grants.sign(policy.package_id, policy.order, now, expires_at)
    await repository.insert_issued_grant(
        connection,
        grant.grant_id,
        policy.package_id,
        policy.order,
        grant.issued_at,
        grant.expires_at,
    )
    return [
        event(
            auth.RecipientAuthenticated(
                package_id=policy.package_id,
                order=policy.order,
                method=method,
                access_until=grant.expires_at,
            ),
            policy.package_id,
        ),
        Outgoing.answer(
            command,
            AUTHENTICATION_REPLIES.name,
            policy.package_id,
            auth.DocumentAccessGranted(
                package_id=policy.package_id,
                order=policy.order,
                grant=SecretStr(grant.token),
                expires_at=grant.expires_at,
                frequency=policy.frequency,
                grant_id=grant.grant_id,
            ),
        ),
    ]


async def failed(
    scope: AuthenticationScope,
    policy: RecipientPolicy,
    method: Method,
    reason: FailureReason,
    failure: Failure,
    now: datetime,
) -> list[Outgoing]:
    """A wrong attempt: record it, and the durable lock if it locks; its one outcome is the
    failure, or the lockout it caused."""
    connection = scope.transaction
    await repository.update_recipient_last_failure(
        connection, policy.package_id, policy.order, reason
    )
    if failure.locks:
        if not await repository.update_recipient_locked(
            connection, policy.package_id, policy.order, now, failure.attempts_used
        ):  # another attempt took the lock, and announced it
            raise RecipientLocked(RECIPIENT_LOCKED)
        return [
            event(
                auth.RecipientLockedOut(
                    package_id=policy.package_id,
                    order=policy.order,
                    method=method,
                    failures=failure.attempts_used,
                    locked_at=now,
                ),
                policy.package_id,
            )
        ]
    return [
        event(
            auth.RecipientAuthenticationFailed(
                package_id=policy.package_id,
                order=policy.order,
                method=method,
                reason=reason,
                attempts_used=failure.attempts_used,
                attempts_remaining=failure.attempts_remaining,
            ),
            policy.package_id,
        )
    ]


async def request_delivery(
    command: Command, scope: AuthenticationScope, request: otp.OtpDeliveryRequested
) -> list[Outgoing]:
    """Ask OTP dispatch to send a code; its answer becomes this command's outcome."""
    stamped = caused_by(command, request, index=0)  # the id the handler stamps it with
    await repository.insert_otp_request(
        scope.transaction,
        stamped.event_id,
        request.package_id,
        request.order,
        request.user_id,
        request.document_id,
        request.field_name,
    )
    return [Outgoing(OTP_REQUESTS.name, str(request.challenge_id), stamped)]


async def signer_claims(
    command: auth.RequestSigningOtp | auth.VerifySigningOtp, scope: AuthenticationScope
) -> Claims:
    """The caller's claims, after the seed's checks: token, document, who may sign, access period.

    The owner may sign; anyone else only as the signer the owner named for a recipient (by user
    id, or by a user name an administrator set), and only as a member of the package's account.
    Nothing a user edits about themself (their profile's email or mobile) widens that.
    """
    dependencies, connection = scope.dependencies, scope.transaction
    claims = await dependencies.tokens.verify(command.access_token)
    package = await repository.select_package(connection, command.package_id)
    if package is None or command.document_id not in package.document_ids:
        raise NotFound(DOCUMENT_NOT_FOUND, code="document_not_found")
    orders: list[int] = []
    if package.owner_id != claims.subject:
        if package.account is None or package.account in claims.accounts:
            orders = await repository.select_recipients_signed_by(
                connection,
                package.package_id,
                claims.subject,
                dependencies.digests.user_name(claims.user_name),
            )
        if not orders:
            raise Forbidden(DOCUMENT_NOT_OWNED, code="document_not_owned")
    for order in orders:
        stored = await repository.select_recipient(connection, package.package_id, order)
        if stored is not None:
            stored.policy.window.check(dependencies.now(), stored.policy.received_at)
    return claims


COMMAND_HANDLERS: dict[type[Message], MessageHandler] = {
    auth.OpenDocumentWithPassword: handle_open_document_with_password,
    auth.RequestDocumentOtp: handle_request_document_otp,
    auth.VerifyDocumentOtp: handle_verify_document_otp,
    auth.VerifyDocumentTotp: handle_verify_document_totp,
    auth.RequestSigningOtp: handle_request_signing_otp,
    auth.VerifySigningOtp: handle_verify_signing_otp,
    auth.GetRecipientAuthenticationStatus: handle_get_recipient_authentication_status,
}
OTP_HANDLERS: dict[type[Message], MessageHandler] = {
    otp.OtpSent: handle_otp_sent,
    otp.OtpDeliveryFailed: handle_otp_delivery_failed,
    CommandRejected: handle_command_rejected,
}
