"""Keeping the projection: workflow's and identity's facts, applied to this service's tables.

The authentication service never reads another service's tables; it learns recipients'
policies from ``signgate.workflow.events`` and users' mobile numbers from
``signgate.identity.events``. Each handler returns nothing to publish, except the reset,
which clears the recipient's counters and lock and says so, and the facts that revoke grants
(`domain.revocation_for`): one ``authentication.document_access_revoked`` per grant they end.
A replayed fact revokes nothing again: its event id was claimed with its effects, and a grant
once revoked is not revoked twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from libs.runtime.messaging.outgoing import Outgoing
from libs.runtime.service import MessageHandler
from libs.security.otp_store import OtpRecipient
from services.authentication import repository
from services.authentication.dependencies import AuthenticationScope
from services.authentication.domain import REVOCATION_MARGIN, revocation_for
from signgate_contracts import Message, identity, workflow
from signgate_contracts import authentication as auth
from signgate_contracts.identity import user_mobile_context, user_totp_context
from signgate_contracts.topics import AUTHENTICATION_EVENTS
from signgate_contracts.workflow import recipient_totp_context, sealed_policy_context


class PackageFact(Protocol):
    """A workflow fact about one package."""

    type: str
    package_id: str


Projector = Callable[[Any, AuthenticationScope], Awaitable[list[Outgoing]]]


async def revoked_grants(event: PackageFact, scope: AuthenticationScope) -> list[Outgoing]:
    """Revoke the grants ``event`` ends, and announce each: by its jti, never its text."""
    revocation = revocation_for(event.type, getattr(event, "order", None))
    if revocation is None:
        return []
    now = scope.dependencies.now()
    revoked = await repository.update_grants_revoked(
        scope.transaction,
        event.package_id,
        revocation.order,
        revocation.reason,
        now,
        now - REVOCATION_MARGIN,
    )
    return [
        Outgoing(
            AUTHENTICATION_EVENTS.name,
            grant.package_id,
            auth.DocumentAccessRevoked(
                jti=str(grant.jti),
                package_id=grant.package_id,
                order=grant.order,
                reason=revocation.reason,
                expires_at=grant.expires_at,
                occurred_at=now,
            ),
        )
        for grant in revoked
    ]


def revoking(project: Projector) -> Projector:
    """``project``, then the revocation of the grants its fact ends."""

    async def handle(event: Any, scope: AuthenticationScope) -> list[Outgoing]:
        return [*await project(event, scope), *await revoked_grants(event, scope)]

    handle.__name__ = handle.__qualname__ = project.__name__
    handle.__doc__ = project.__doc__
    return handle


async def handle_recipient_declined(
    event: workflow.RecipientDeclined, scope: AuthenticationScope
) -> list[Outgoing]:
    return []  # nothing to project: the recipient's grants end (`revoking`), and the package with them


async def handle_package_registered(
    event: workflow.PackageRegistered, scope: AuthenticationScope
) -> list[Outgoing]:
    await repository.upsert_package(
        scope.transaction,
        event.package_id,
        event.owner_id,
        event.state,
        [d.document_id for d in event.documents],
        event.account,
    )
    for recipient in event.recipients:
        await repository.insert_recipient(
            scope.transaction,
            event.package_id,
            recipient.order,
            recipient.email_digest,
            recipient.signer_user_id,
            recipient.signer_user_name_digest,
        )
    return []


def handle_package_state(state: str) -> Projector:
    """A fact that puts the package in ``state``."""

    async def handle(event: PackageFact, scope: AuthenticationScope) -> list[Outgoing]:
        await repository.update_package_state(scope.transaction, event.package_id, state)
        return []

    handle.__name__ = handle.__qualname__ = f"handle_package_{state}"
    return handle


async def handle_recipient_received(
    event: workflow.RecipientReceived, scope: AuthenticationScope
) -> list[Outgoing]:
    await repository.update_recipient_received(
        scope.transaction, event.package_id, event.order, event.received_at
    )
    return []


async def handle_recipient_signed(
    event: workflow.RecipientSigned, scope: AuthenticationScope
) -> list[Outgoing]:
    await repository.update_recipient_signed(
        scope.transaction, event.package_id, event.order, event.signed_at
    )
    return []


async def handle_recipient_authentication_updated(
    event: workflow.RecipientAuthenticationUpdated | workflow.RecipientAuthenticationReset,
    scope: AuthenticationScope,
) -> list[Outgoing]:
    await repository.update_recipient_policy(
        scope.transaction,
        event.package_id,
        event.order,
        event.email_digest,
        event.authentication.model_dump() if event.authentication else None,
        event.access_window.model_dump() if event.access_window else None,
    )
    return []


async def handle_recipient_authentication_updated_v2(
    event: workflow.RecipientAuthenticationUpdatedV2 | workflow.RecipientAuthenticationResetV2,
    scope: AuthenticationScope,
) -> list[Outgoing]:
    """The recipient's policy as workflow published it, its sealed part opened with this service's key."""
    policy = event.authentication
    stored = None
    if policy is not None:
        opened = {}
        if policy.sealed is not None:
            context = sealed_policy_context(
                event.package_id, event.order, event.authentication_version
            )
            opened = scope.dependencies.opener.open(context, policy.sealed)
        if policy.totp_sealed is not None:  # kept sealed; opened now only to refuse a bad one
            scope.dependencies.opener.open(
                recipient_totp_context(event.package_id, policy.totp_authenticator_id or ""),
                policy.totp_sealed,
            )
        destination = (
            {
                "channel": policy.channel,
                "address": opened.get("destination"),
                "masked": policy.destination_masked,
            }
            if policy.channel
            else None
        )
        stored = {
            **policy.model_dump(exclude={"sealed", "channel", "destination_masked", "secret_set"}),
            "secret_hash": opened.get("secret_hash"),
            "destination": destination,
            "fallback_email": opened.get("fallback_email"),
        }
    await repository.update_recipient_policy(
        scope.transaction,
        event.package_id,
        event.order,
        event.email_digest,
        stored,
        event.access_window.model_dump() if event.access_window else None,
        event.authentication_version,
    )
    return []


async def handle_recipient_authentication_removed(
    event: workflow.RecipientAuthenticationRemoved, scope: AuthenticationScope
) -> list[Outgoing]:
    stored = await repository.select_recipient(scope.transaction, event.package_id, event.order)
    if stored is not None:
        await repository.update_recipient_policy(
            scope.transaction,
            event.package_id,
            event.order,
            stored.policy.email,
            None,
            None,
            event.authentication_version,
        )
    return []


async def handle_recipient_authentication_reset(
    event: workflow.RecipientAuthenticationReset | workflow.RecipientAuthenticationResetV2,
    scope: AuthenticationScope,
) -> list[Outgoing]:
    """The sender's unlock: this recipient's failures, pending code and lock are cleared; nobody else's."""
    if isinstance(event, workflow.RecipientAuthenticationResetV2):
        await handle_recipient_authentication_updated_v2(
            event, scope
        )  # the policy as it stands now
    else:
        await handle_recipient_authentication_updated(event, scope)
    was_locked = await repository.update_recipient_unlocked(
        scope.transaction, event.package_id, event.order
    )
    await scope.dependencies.secret_failures.reset(event.package_id, event.order)
    await scope.dependencies.otp.reset(OtpRecipient.document_opening(event.package_id, event.order))
    cleared = auth.RecipientAuthenticationCleared(
        package_id=event.package_id, order=event.order, was_locked=was_locked
    )
    return [Outgoing(AUTHENTICATION_EVENTS.name, event.package_id, cleared)]


async def handle_user_profile(
    event: identity.UserRegisteredV2 | identity.UserProfileUpdatedV2, scope: AuthenticationScope
) -> list[Outgoing]:
    """The mobile number signer codes go to (seed 002), opened from its sealed form, and the
    language they are written in."""
    mobile_number = None
    if event.mobile_sealed is not None:
        mobile_number = scope.dependencies.opener.open(
            user_mobile_context(event.user_id), event.mobile_sealed
        )
    await repository.upsert_user_profile(
        scope.transaction,
        event.user_id,
        event.email_digest,
        mobile_number,
        event.occurred_at,
        event.locale,
    )
    if isinstance(event, identity.UserRegisteredV2):
        await handle_user_accounts(event, scope)
    return []


async def handle_user_accounts(
    event: identity.UserRegisteredV2 | identity.UserUpdatedV2 | identity.UserUpdated,
    scope: AuthenticationScope,
) -> list[Outgoing]:
    """The accounts the user is a member of: a recipient opens with their signer's authenticator
    app only while the signer is a member of the package's account."""
    await repository.upsert_user_accounts(
        scope.transaction,
        event.user_id,
        [a.context_identifier for a in event.accounts],
        event.occurred_at,
    )
    return []


async def handle_user_profile_in_first_shape(
    event: identity.UserRegistered | identity.UserProfileUpdated, scope: AuthenticationScope
) -> list[Outgoing]:
    """A profile in the first shape (the email and mobile number in clear), still read while such
    records are on the topic."""
    digest = scope.dependencies.digests.email(event.email) if event.email else None
    await repository.upsert_user_profile(
        scope.transaction, event.user_id, digest, event.mobile_number, event.occurred_at
    )
    return []


async def handle_authenticator_confirmed(
    event: identity.AuthenticatorConfirmed, scope: AuthenticationScope
) -> list[Outgoing]:
    """The user's authenticator app, whose codes open packages for the recipients they sign for:
    kept as identity sealed it (opened now only to refuse one that does not open as theirs)."""
    scope.dependencies.opener.open(user_totp_context(event.user_id), event.secret_sealed)
    await repository.upsert_user_authenticator(
        scope.transaction,
        repository.UserAuthenticator(
            user_id=event.user_id,
            authenticator_id=event.authenticator_id,
            secret_sealed=event.secret_sealed,
            digits=event.digits,
            algorithm=event.algorithm,
            period_seconds=event.period_seconds,
        ),
        event.occurred_at,
    )
    if event.accounts:  # confirmations published before they carried the accounts have none
        await repository.upsert_user_accounts(
            scope.transaction, event.user_id, event.accounts, event.occurred_at
        )
    return []


async def handle_authenticator_removed(
    event: identity.AuthenticatorRemoved, scope: AuthenticationScope
) -> list[Outgoing]:
    """Its codes open nothing from now on."""
    await repository.delete_user_authenticator(
        scope.transaction, event.user_id, event.authenticator_id
    )
    return []


HANDLERS: dict[type[Message], MessageHandler] = {
    workflow.PackageRegistered: handle_package_registered,
    workflow.WorkflowShared: handle_package_state("in_progress"),
    workflow.WorkflowCompleted: revoking(handle_package_state("completed")),
    workflow.WorkflowDeclined: revoking(handle_package_state("declined")),
    workflow.WorkflowTerminated: revoking(handle_package_state("terminated")),
    # workflow.WorkflowLocked and WorkflowUnlocked: not projected. The workflow's lock stops the
    # owner's changes, which workflow refuses itself; recipients still open, sign and decline.
    workflow.RecipientReceived: handle_recipient_received,
    workflow.RecipientSigned: revoking(handle_recipient_signed),
    workflow.RecipientDeclined: revoking(handle_recipient_declined),
    workflow.RecipientAuthenticationUpdated: revoking(handle_recipient_authentication_updated),
    workflow.RecipientAuthenticationRemoved: revoking(handle_recipient_authentication_removed),
    workflow.RecipientAuthenticationReset: revoking(handle_recipient_authentication_reset),
    workflow.RecipientAuthenticationUpdatedV2: revoking(handle_recipient_authentication_updated_v2),
    workflow.RecipientAuthenticationResetV2: revoking(handle_recipient_authentication_reset),
    identity.UserRegisteredV2: handle_user_profile,
    identity.UserProfileUpdatedV2: handle_user_profile,
    identity.UserRegistered: handle_user_profile_in_first_shape,
    identity.UserProfileUpdated: handle_user_profile_in_first_shape,
    identity.UserUpdatedV2: handle_user_accounts,
    identity.UserUpdated: handle_user_accounts,
    identity.AuthenticatorConfirmed: handle_authenticator_confirmed,
    identity.AuthenticatorRemoved: handle_authenticator_removed,
}
