"""What the authentication service does with each command, and with OTP dispatch's answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from libs.runtime.errors import BadRequest, Forbidden, NotFound
from libs.runtime.messaging.outgoing import Outgoing, caused_by
from libs.runtime.service import Scope
from libs.security.invitations import CredentialRequired
from libs.security.otp_store import OtpRecipient, Verification, VerifyOutcome
from services.authentication import repository as db
from services.authentication.domain import (
    DOCUMENT_NOT_FOUND,
    OTP_METHODS,
    RECIPIENT_LOCKED,
    SECRET_METHODS,
    FailureCount,
    InvitationNotValid,
    RecipientLocked,
    RecipientPolicy,
    admit_invitation,
    check_attempt,
    grant_expiry,
    grant_still_current,
)
from services.authentication.read_ahead import RecipientsAhead
from services.authentication.runtime import AuthenticationRuntime, runtime
from signgate_contracts import Command, CommandRejected, Event, otp
from signgate_contracts import authentication as auth
from signgate_contracts.topics import AUTHENTICATION_EVENTS, AUTHENTICATION_REPLIES, OTP_REQUESTS
from signgate_contracts.workflow import DEFAULT_RETRY_COUNT

DOCUMENT_NOT_OWNED = "Document does not belong to user"
NO_MOBILE_NUMBER = (
    "No mobile number is set in the user's profile: add one to receive the one-time password"
)
DELIVERY_FAILED = "The one-time password could not be delivered; ask for a new one"
FAILURE_REASONS = {
    VerifyOutcome.WRONG: "wrong_secret",
    VerifyOutcome.EXPIRED: "expired_code",
    VerifyOutcome.NO_PENDING: "no_pending_code",
}


def event(message: Event, package_id: str) -> Outgoing:
    return Outgoing(AUTHENTICATION_EVENTS.name, package_id, message)


RecipientCommand = (
    auth.OpenDocumentWithPassword
    | auth.RequestDocumentOtp
    | auth.VerifyDocumentOtp
    | auth.GetRecipientAuthenticationStatus
)


async def recipient(command: RecipientCommand, unit: Scope[Any]) -> db.StoredRecipient | None:
    """The recipient the command names, once it has proved it may act for them: with the
    recipient's invitation, or the package owner's token. Anything else is refused (401) here,
    before a counter moves, a code is sent or a status is read."""
    services = runtime(unit)
    digest = services.digests.email(command.email) if command.email else None
    if command.invitation is not None:
        invitation = services.invitations.verify(command.invitation.get_secret_value())
        if invitation.package_id != command.package_id:
            raise InvitationNotValid()
        stored = await stored_recipient(unit, command.package_id, invitation.order, None)
        admit_invitation(
            invitation, command.package_id, command.order, digest, stored.policy if stored else None
        )
        return stored
    if command.access_token is None:
        raise CredentialRequired()
    claims = await services.verifier.verify(command.access_token)
    package = await db.select_package(unit.connection, command.package_id)
    if package is None:
        raise NotFound(DOCUMENT_NOT_FOUND, code="document_not_found")
    if package.owner_id != claims.subject:
        raise Forbidden(DOCUMENT_NOT_OWNED, code="document_not_owned")
    return await stored_recipient(unit, command.package_id, command.order, digest)


async def stored_recipient(
    unit: Scope[Any], package_id: str, order: int | None, digest: str | None
) -> db.StoredRecipient | None:
    """The recipient at ``order`` (as the lane read it ahead, else read now), or by email digest."""
    if isinstance(unit.read_ahead, RecipientsAhead) and order is not None:
        known, stored = unit.read_ahead.recall(package_id, order)
        if known:
            return stored
    return await db.select_recipient(unit.connection, package_id, order, digest)


async def authenticated(
    command: Command, unit: Scope[Any], policy: RecipientPolicy, method: str, now: datetime
) -> list[Outgoing]:
    """A method succeeded: say so, and grant access once every required method has."""
    services = runtime(unit)
    if set(policy.methods) <= {method}:  # one method: nothing to remember for a later one
        satisfied = {method}
    else:
        satisfied = await services.failures.satisfy(policy.package_id, policy.order, method)
    expires_at = grant_expiry(policy, now, services.grants.lifetime)
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
    return await grant_access(command, unit, policy, method, now, expires_at)


async def grant_access(
    command: Command,
    unit: Scope[Any],
    policy: RecipientPolicy,
    method: str,
    now: datetime,
    expires_at: datetime,
) -> list[Outgoing]:
    """Sign a grant and record it (to revoke it later) with the reply that carries it and the event
    that announces the authentication, in the command's transaction."""
    current = await db.select_recipient_for_grant(unit.connection, policy.package_id, policy.order)
    grant_still_current(policy, *(current or (None, None)))
    grant = runtime(unit).grants.sign(policy.package_id, policy.order, now, expires_at)
    await db.insert_issued_grant(
        unit.connection,
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
                grant=grant.token,
                expires_at=grant.expires_at,
                frequency=policy.frequency,
                grant_id=grant.grant_id,
            ),
        ),
    ]


async def failed(
    unit: Scope[Any], policy: RecipientPolicy, method: str, reason: str, used: int, now: datetime
) -> list[Outgoing]:
    """A wrong attempt: its one outcome is the failure, or the lockout it caused."""
    count = FailureCount(used=used, retry_count=policy.retry_count)
    await db.update_recipient_last_failure(unit.connection, policy.package_id, policy.order, reason)
    if count.locks:
        if not await db.update_recipient_locked(
            unit.connection, policy.package_id, policy.order, now, used
        ):
            raise RecipientLocked(
                RECIPIENT_LOCKED
            )  # another attempt took the lock and announced it
        return [
            event(
                auth.RecipientLockedOut(
                    package_id=policy.package_id,
                    order=policy.order,
                    method=method,
                    failures=used,
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
                attempts_used=used,
                attempts_remaining=count.remaining,
            ),
            policy.package_id,
        )
    ]


async def failures_of_the_other_kind(
    services: AuthenticationRuntime, policy: RecipientPolicy, kind: frozenset[str]
) -> int:
    """Wrong attempts counted by the recipient's method of ``kind``, if it has one.

    A recipient who must pass a password and an OTP has one retry count for both: each counter
    is given what the other has left. Both are read and written only by this package's commands,
    handled one at a time in order (one key, one partition), so their sum is exact.
    """
    if not kind.intersection(policy.methods):
        return 0
    if kind == OTP_METHODS:
        return (
            await services.otp.status(services.document_recipient(policy.package_id, policy.order))
        ).failures
    return await services.failures.used(policy.package_id, policy.order)


async def open_document_with_password(
    command: auth.OpenDocumentWithPassword, unit: Scope[Any]
) -> list[Outgoing]:
    services = runtime(unit)
    now = services.now()
    stored = await recipient(command, unit)
    policy = check_attempt(stored.policy if stored else None, now, SECRET_METHODS)
    method = policy.method_for(SECRET_METHODS)
    verification = await services.hasher.verify(
        policy.secret_hash, command.password.get_secret_value()
    )
    if verification.matches:
        await services.failures.succeeded(policy.package_id, policy.order)
        return await authenticated(command, unit, policy, method, now)
    other = await failures_of_the_other_kind(services, policy, OTP_METHODS)
    budget = max(policy.retry_count - other, 0)
    used, counted = await services.failures.count(
        policy.package_id, policy.order, budget, command.event_id
    )
    if not counted:  # spent in Redis but not yet locked here: take the lock now
        used = max(used, budget)
    return await failed(unit, policy, method, "wrong_secret", used + other, now)


async def request_document_otp(
    command: auth.RequestDocumentOtp, unit: Scope[Any]
) -> list[Outgoing]:
    services = runtime(unit)
    stored = await recipient(command, unit)
    policy = check_attempt(stored.policy if stored else None, services.now(), OTP_METHODS)
    assert stored is not None and stored.channel and policy.destination
    return await request_delivery(
        command,
        unit,
        services,
        otp.OtpDeliveryRequested(
            purpose="document_opening",
            package_id=policy.package_id,
            order=policy.order,
            channel=stored.channel,
            destination=policy.destination,
        ),
    )


async def request_delivery(
    command: Command,
    unit: Scope[Any],
    services: AuthenticationRuntime,
    request: otp.OtpDeliveryRequested,
) -> list[Outgoing]:
    """Ask OTP dispatch to send a code; its answer becomes this command's outcome."""
    request = caused_by(command, request, index=0)  # the id the handler stamps it with
    await db.insert_otp_request(
        unit.connection,
        request.event_id,
        request.package_id,
        request.order,
        request.user_id,
        request.document_id,
        request.field_name,
    )
    return [Outgoing(OTP_REQUESTS.name, str(request.challenge_id), request)]


async def verify_document_otp(command: auth.VerifyDocumentOtp, unit: Scope[Any]) -> list[Outgoing]:
    services = runtime(unit)
    now = services.now()
    stored = await recipient(command, unit)
    policy = check_attempt(stored.policy if stored else None, now, OTP_METHODS)
    method = policy.method_for(OTP_METHODS)
    other = await failures_of_the_other_kind(services, policy, SECRET_METHODS)
    budget = policy.retry_count - other
    if budget < 1:  # spent by wrong secrets but not yet locked here: take the lock now
        return await failed(unit, policy, method, "wrong_secret", policy.retry_count, now)
    result = await services.otp.verify_and_consume(
        OtpRecipient.document_opening(policy.package_id, policy.order),
        command.code,
        retry_count=budget,
        now=now,
        attempt=command.event_id,
    )
    if result.ok:
        return await authenticated(command, unit, policy, method, now)
    reason = FAILURE_REASONS.get(result.outcome, "wrong_secret")
    return await failed(unit, policy, method, reason, locked_or_used(result, budget) + other, now)


def locked_or_used(result: Verification, retry_count: int) -> int:
    return retry_count if result.outcome is VerifyOutcome.LOCKED else result.attempts_used


async def signer_package(command: auth.RequestSigningOtp | auth.VerifySigningOtp, unit: Scope[Any]):
    """The caller's claims, after the seed's checks: token, document, who may sign, access period.

    The owner may sign; anyone else only as the signer the owner named for a recipient (by user
    id, or by a user name an administrator set), and only as a member of the package's account.
    Nothing a user edits about themself (their profile's email or mobile) widens that.
    """
    services = runtime(unit)
    claims = await services.verifier.verify(command.access_token)
    package = await db.select_package(unit.connection, command.package_id)
    if package is None or command.document_id not in package.document_ids:
        raise NotFound(DOCUMENT_NOT_FOUND, code="document_not_found")
    profile = await db.select_user_profile(unit.connection, claims.subject)
    orders = []
    if package.owner_id != claims.subject:
        if package.account is None or package.account in claims.accounts:
            orders = await db.select_recipients_signed_by(
                unit.connection,
                package.package_id,
                claims.subject,
                services.digests.user_name(claims.user_name),
            )
        if not orders:
            raise Forbidden(DOCUMENT_NOT_OWNED, code="document_not_owned")
    for order in orders:
        stored = await db.select_recipient(unit.connection, package.package_id, order)
        if stored is not None:
            stored.policy.window.check(services.now(), stored.policy.received_at)
    return services, claims, profile


async def request_signing_otp(command: auth.RequestSigningOtp, unit: Scope[Any]) -> list[Outgoing]:
    services, claims, profile = await signer_package(command, unit)
    if profile is None or not profile.mobile_number:
        raise BadRequest(NO_MOBILE_NUMBER, code="mobile_number_missing", field="mobile_number")
    return await request_delivery(
        command,
        unit,
        services,
        otp.OtpDeliveryRequested(
            purpose="signing",
            package_id=command.package_id,
            user_id=claims.subject,
            document_id=command.document_id,
            field_name=command.field_name,
            channel="sms",
            destination=profile.mobile_number,
        ),
    )


SIGNING_RETRY_COUNT = DEFAULT_RETRY_COUNT  # a signer has no policy of their own


async def verify_signing_otp(command: auth.VerifySigningOtp, unit: Scope[Any]) -> list[Outgoing]:
    services, claims, _ = await signer_package(command, unit)
    fields = dict(
        package_id=command.package_id,
        document_id=command.document_id,
        field_name=command.field_name,
        user_id=claims.subject,
    )
    result = await services.otp.verify_and_consume(
        OtpRecipient.signing(
            command.package_id, claims.subject, command.document_id, command.field_name
        ),
        command.code,
        retry_count=SIGNING_RETRY_COUNT,
        now=services.now(),
        attempt=command.event_id,
    )
    if result.ok:
        return [event(auth.SignerAuthenticated(**fields), command.package_id)]
    if result.outcome is VerifyOutcome.LOCKED and not result.locked_now:
        raise RecipientLocked(RECIPIENT_LOCKED)
    return [
        event(
            auth.SignerAuthenticationFailed(
                **fields,
                reason=FAILURE_REASONS.get(result.outcome, "wrong_secret"),
                attempts_remaining=result.attempts_remaining,
            ),
            command.package_id,
        )
    ]


async def get_recipient_authentication_status(
    command: auth.GetRecipientAuthenticationStatus, unit: Scope[Any]
) -> list[Outgoing]:
    services = runtime(unit)
    stored = await recipient(command, unit)
    if stored is None:
        raise NotFound("No user found at given order", code="recipient_not_found")
    policy = stored.policy
    otp_status = await services.otp.status(
        OtpRecipient.document_opening(policy.package_id, policy.order)
    )
    secret_failures = await services.failures.used(policy.package_id, policy.order)
    used = (
        stored.locked_failures or secret_failures + otp_status.failures
    )  # one retry count for both
    status = auth.RecipientAuthenticationStatus(
        package_id=policy.package_id,
        order=policy.order,
        method=policy.methods[0] if policy.methods else None,
        attempts_used=used,
        attempts_remaining=max(policy.retry_count - used, 0) if not policy.locked else 0,
        locked=policy.locked,
        locked_since=policy.locked_at,
        last_failure_reason=stored.last_failure,
        otp_expires_at=otp_status.pending.expires_at if otp_status.pending else None,
        resend_available_at=otp_status.resend_available_at,
        destination=stored.destination_masked,
    )
    return [Outgoing.answer(command, AUTHENTICATION_REPLIES.name, policy.package_id, status)]


async def otp_sent(sent: otp.OtpSent, unit: Scope[Any]) -> list[Outgoing]:
    """OTP dispatch sent the code: that is the outcome of the command that asked for it."""
    if sent.purpose == "signing":
        assert sent.user_id and sent.document_id and sent.field_name
        outcome: Event = auth.SigningOtpSent(
            package_id=sent.package_id,
            document_id=sent.document_id,
            field_name=sent.field_name,
            user_id=sent.user_id,
            destination=sent.destination,
            expires_at=sent.expires_at,
            resend_available_at=sent.resend_available_at,
        )
    else:
        assert sent.order is not None
        outcome = auth.DocumentOtpSent(
            package_id=sent.package_id,
            order=sent.order,
            channel=sent.channel,
            destination=sent.destination,
            expires_at=sent.expires_at,
            resend_available_at=sent.resend_available_at,
        )
    return [event(outcome, sent.package_id)]


async def otp_delivery_failed(failure: otp.OtpDeliveryFailed, unit: Scope[Any]) -> list[Outgoing]:
    rejection = CommandRejected(status=500, code="otp_delivery_failed", message=DELIVERY_FAILED)
    return [event(rejection, failure.package_id)]


async def otp_request_rejected(rejection: CommandRejected, unit: Scope[Any]) -> list[Outgoing]:
    """OTP dispatch refused a request of ours (a send limit): the caller gets that refusal."""
    if rejection.command_event_id is None:
        return []
    request = await db.select_otp_request(unit.connection, rejection.command_event_id)
    if request is None:
        return []  # another service's rejection, seen on a topic this service reads
    return [event(rejection.model_copy(update={"command_type": None}), request["package_id"])]


COMMAND_HANDLERS = {
    auth.OpenDocumentWithPassword: open_document_with_password,
    auth.RequestDocumentOtp: request_document_otp,
    auth.VerifyDocumentOtp: verify_document_otp,
    auth.RequestSigningOtp: request_signing_otp,
    auth.VerifySigningOtp: verify_signing_otp,
    auth.GetRecipientAuthenticationStatus: get_recipient_authentication_status,
}
OTP_HANDLERS = {
    otp.OtpSent: otp_sent,
    otp.OtpDeliveryFailed: otp_delivery_failed,
    CommandRejected: otp_request_rejected,
}
