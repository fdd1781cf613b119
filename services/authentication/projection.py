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

from typing import Any

from libs.runtime.messaging.outgoing import Outgoing
from libs.runtime.service import Scope
from services.authentication import repository as db
from services.authentication.domain import REVOCATION_MARGIN, revocation_for
from services.authentication.runtime import runtime
from signgate_contracts import authentication as auth
from signgate_contracts import identity, workflow
from signgate_contracts.identity import user_mobile_context
from signgate_contracts.topics import AUTHENTICATION_EVENTS
from signgate_contracts.workflow import sealed_policy_context


async def revoked_grants(event: workflow.Event, unit: Scope[Any]) -> list[Outgoing]:
    """Revoke the grants ``event`` ends, and announce each: by its jti, never its text."""
    revocation = revocation_for(event.type, getattr(event, "order", None))
    if revocation is None:
        return []
    now = runtime(unit).now()
    revoked = await db.update_grants_revoked(
        unit.connection,
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


def revoking(project):
    """``project``, then the revocation of the grants its fact ends."""

    async def handle(event: workflow.Event, unit: Scope[Any]) -> list[Outgoing]:
        return [*await project(event, unit), *await revoked_grants(event, unit)]

    handle.__name__ = handle.__qualname__ = project.__name__
    handle.__doc__ = project.__doc__
    return handle


async def recipient_declined(event: workflow.RecipientDeclined, unit: Scope[Any]) -> list[Outgoing]:
    return []  # nothing to project: the recipient's grants end (`revoking`), and the package with them


async def package_registered(event: workflow.PackageRegistered, unit: Scope[Any]) -> list[Outgoing]:
    await db.upsert_package(
        unit.connection,
        event.package_id,
        event.owner_id,
        event.state,
        [d.document_id for d in event.documents],
        event.account,
    )
    for recipient in event.recipients:
        await db.insert_recipient(
            unit.connection,
            event.package_id,
            recipient.order,
            recipient.email_digest,
            recipient.signer_user_id,
            recipient.signer_user_name_digest,
        )
    return []


def _package_state(state: str):
    async def record(event: workflow.Event, unit: Scope[Any]) -> list[Outgoing]:
        await db.update_package_state(unit.connection, event.package_id, state)
        return []

    return record


def _workflow_lock(locked: bool):
    async def record(event: workflow.Event, unit: Scope[Any]) -> list[Outgoing]:
        await db.update_workflow_locked(unit.connection, event.package_id, locked)
        return []

    return record


async def recipient_received(event: workflow.RecipientReceived, unit: Scope[Any]) -> list[Outgoing]:
    await db.update_recipient_received(
        unit.connection, event.package_id, event.order, event.received_at
    )
    return []


async def recipient_signed(event: workflow.RecipientSigned, unit: Scope[Any]) -> list[Outgoing]:
    await db.update_recipient_signed(
        unit.connection, event.package_id, event.order, event.signed_at
    )
    return []


async def recipient_authentication_updated(
    event: workflow.RecipientAuthenticationUpdated, unit: Scope[Any]
) -> list[Outgoing]:
    await db.update_recipient_policy(
        unit.connection,
        event.package_id,
        event.order,
        event.email_digest,
        event.authentication.model_dump() if event.authentication else None,
        event.access_window.model_dump() if event.access_window else None,
    )
    return []


async def recipient_policy(
    event: workflow.RecipientAuthenticationUpdatedV2 | workflow.RecipientAuthenticationResetV2,
    unit: Scope[Any],
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
            opened = runtime(unit).opener.open(context, policy.sealed)
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
        }
    await db.update_recipient_policy(
        unit.connection,
        event.package_id,
        event.order,
        event.email_digest,
        stored,
        event.access_window.model_dump() if event.access_window else None,
        event.authentication_version,
    )
    return []


async def recipient_authentication_removed(
    event: workflow.RecipientAuthenticationRemoved, unit: Scope[Any]
) -> list[Outgoing]:
    stored = await db.select_recipient(unit.connection, event.package_id, event.order)
    if stored is not None:
        await db.update_recipient_policy(
            unit.connection,
            event.package_id,
            event.order,
            stored.policy.email,
            None,
            None,
            event.authentication_version,
        )
    return []


async def recipient_authentication_reset(
    event: workflow.RecipientAuthenticationReset | workflow.RecipientAuthenticationResetV2,
    unit: Scope[Any],
) -> list[Outgoing]:
    """The sender's unlock: this recipient's failures, pending code and lock are cleared; nobody else's."""
    if isinstance(event, workflow.RecipientAuthenticationResetV2):
        await recipient_policy(event, unit)  # the policy as it stands now
    else:
        await recipient_authentication_updated(event, unit)
    was_locked = await db.update_recipient_unlocked(unit.connection, event.package_id, event.order)
    services = runtime(unit)
    await services.failures.reset(event.package_id, event.order)
    await services.otp.reset(services.document_recipient(event.package_id, event.order))
    cleared = auth.RecipientAuthenticationCleared(
        package_id=event.package_id, order=event.order, was_locked=was_locked
    )
    return [Outgoing(AUTHENTICATION_EVENTS.name, event.package_id, cleared)]


async def user_profile(
    event: identity.UserRegisteredV2 | identity.UserProfileUpdatedV2, unit: Scope[Any]
) -> list[Outgoing]:
    """The mobile number signer codes go to (seed 002), opened from its sealed form."""
    mobile_number = None
    if event.mobile_sealed is not None:
        mobile_number = runtime(unit).opener.open(
            user_mobile_context(event.user_id), event.mobile_sealed
        )
    await db.upsert_user_profile(
        unit.connection, event.user_id, event.email_digest, mobile_number, event.occurred_at
    )
    return []


async def first_user_profile(
    event: identity.UserRegistered | identity.UserProfileUpdated, unit: Scope[Any]
) -> list[Outgoing]:
    """A profile in the first shape (the email and mobile number in clear), still read while such
    records are on the topic."""
    digest = runtime(unit).digests.email(event.email) if event.email else None
    await db.upsert_user_profile(
        unit.connection, event.user_id, digest, event.mobile_number, event.occurred_at
    )
    return []


HANDLERS = {
    workflow.PackageRegistered: package_registered,
    workflow.WorkflowShared: _package_state("in_progress"),
    workflow.WorkflowCompleted: revoking(_package_state("completed")),
    workflow.WorkflowDeclined: revoking(_package_state("declined")),
    workflow.WorkflowTerminated: revoking(_package_state("terminated")),
    workflow.WorkflowLocked: _workflow_lock(True),
    workflow.WorkflowUnlocked: _workflow_lock(False),
    workflow.RecipientReceived: recipient_received,
    workflow.RecipientSigned: revoking(recipient_signed),
    workflow.RecipientDeclined: revoking(recipient_declined),
    workflow.RecipientAuthenticationUpdated: revoking(recipient_authentication_updated),
    workflow.RecipientAuthenticationRemoved: revoking(recipient_authentication_removed),
    workflow.RecipientAuthenticationReset: revoking(recipient_authentication_reset),
    workflow.RecipientAuthenticationUpdatedV2: revoking(recipient_policy),
    workflow.RecipientAuthenticationResetV2: revoking(recipient_authentication_reset),
    identity.UserRegisteredV2: user_profile,
    identity.UserProfileUpdatedV2: user_profile,
    identity.UserRegistered: first_user_profile,
    identity.UserProfileUpdated: first_user_profile,
}
