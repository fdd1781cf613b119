"""What the outside sees of a package: the events a decision publishes, and the query replies.

Events carry each recipient's whole policy (a projection replaces what it had): the secret
only as its peppered hash, the OTP destination in clear only inside the policy (the
authentication service needs it to ask for a delivery), and masked everywhere else.
Replies to the owner's queries carry no hash and no clear destination.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from libs.masking import mask_email, mask_phone
from services.workflow.domain import Authentication, Change, Decision, Package, Recipient
from signgate_contracts.envelope import Event
from signgate_contracts.workflow import (
    AuthenticationPolicy,
    Destination,
    DocumentSummary,
    PackageRegistered,
    PublicAuthenticationPolicy,
    RecipientAuthenticationDescribed,
    RecipientAuthenticationRemoved,
    RecipientAuthenticationReset,
    RecipientAuthenticationUpdated,
    RecipientDeclined,
    RecipientReceived,
    RecipientSigned,
    RecipientSummary,
    WorkflowCompleted,
    WorkflowDeclined,
    WorkflowLocked,
    WorkflowShared,
    WorkflowTerminated,
    WorkflowUnlocked,
    email_digest,
)


def destination(recipient: Recipient, authentication: Authentication) -> Destination | None:
    if "sms_otp" in authentication.methods and authentication.mobile_number:
        number = authentication.mobile_number
        return Destination(channel="sms", address=number, masked=mask_phone(number))
    if "email_otp" in authentication.methods:
        return Destination(channel="email", address=recipient.email, masked=mask_email(recipient.email))
    return None


def policy(recipient: Recipient) -> AuthenticationPolicy | None:
    authentication = recipient.authentication
    if authentication is None:
        return None
    return AuthenticationPolicy(
        methods=list(authentication.methods),
        secret_hash=authentication.secret_hash,
        destination=destination(recipient, authentication),
        retry_count=authentication.retry_count,
        frequency=authentication.frequency,
        identity_verification=authentication.identity_verification,
        on_behalf_of=mask_email(authentication.on_behalf_of) if authentication.on_behalf_of else None,
    )


def public_policy(recipient: Recipient) -> PublicAuthenticationPolicy | None:
    full = policy(recipient)
    if full is None:
        return None
    return PublicAuthenticationPolicy(
        methods=full.methods,
        secret_set=full.secret_hash is not None,
        destination_masked=full.destination.masked if full.destination else None,
        retry_count=full.retry_count,
        frequency=full.frequency,
        identity_verification=full.identity_verification,
        on_behalf_of=full.on_behalf_of,
    )


def summary(recipient: Recipient) -> RecipientSummary:
    return RecipientSummary(
        order=recipient.order,
        name=recipient.name,
        role=recipient.role,
        email_masked=mask_email(recipient.email),
        email_digest=email_digest(recipient.email),
        mobile_masked=mask_phone(recipient.mobile_number) if recipient.mobile_number else None,
        status=recipient.status,
    )


def describe(package: Package, recipient: Recipient) -> RecipientAuthenticationDescribed:
    return RecipientAuthenticationDescribed(
        package_id=package.package_id,
        order=recipient.order,
        recipient=summary(recipient),
        package_state=package.state,
        locked_workflow=package.locked,
        authentication=public_policy(recipient),
        access_window=recipient.access_window,
        received_at=recipient.received_at,
        failed_attempts=recipient.failed_attempts,
        locked_out_at=recipient.locked_out_at,
    )


# -- a decision's events --

EventBuilder = Callable[[Package, Change], Event]


def _registered(package: Package, _change: Change) -> Event:
    return PackageRegistered(
        package_id=package.package_id,
        owner_id=package.owner_id,
        name=package.name,
        workflow_type=package.workflow_type,
        state=package.state,
        documents=[DocumentSummary(document_id=d.document_id, name=d.name) for d in package.documents],
        recipients=[summary(r) for r in package.recipients],
    )


def _policy_event(kind: type[RecipientAuthenticationUpdated] | type[RecipientAuthenticationReset]) -> EventBuilder:
    def build(package: Package, change: Change) -> Event:
        assert change.order is not None
        recipient = package.recipient(change.order)
        return kind(
            package_id=package.package_id,
            order=recipient.order,
            email_digest=email_digest(recipient.email),
            authentication=policy(recipient),
            access_window=recipient.access_window,
        )

    return build


def _at(package: Package, change: Change, attribute: str):
    assert change.order is not None
    return getattr(package.recipient(change.order), attribute)


BUILDERS: Mapping[str, EventBuilder] = {
    "package_registered": _registered,
    "workflow_shared": lambda p, c: WorkflowShared(
        package_id=p.package_id, workflow_type=p.workflow_type, shared_at=p.shared_at),
    "workflow_locked": lambda p, c: WorkflowLocked(package_id=p.package_id),
    "workflow_unlocked": lambda p, c: WorkflowUnlocked(package_id=p.package_id),
    "workflow_completed": lambda p, c: WorkflowCompleted(package_id=p.package_id, completed_at=p.finished_at),
    "workflow_declined": lambda p, c: WorkflowDeclined(
        package_id=p.package_id, order=c.order, declined_at=p.finished_at),
    "workflow_terminated": lambda p, c: WorkflowTerminated(
        package_id=p.package_id, terminated_at=p.finished_at, reason=c.details.get("reason")),
    "recipient_received": lambda p, c: RecipientReceived(
        package_id=p.package_id, order=c.order, received_at=_at(p, c, "received_at")),
    "recipient_signed": lambda p, c: RecipientSigned(
        package_id=p.package_id, order=c.order, signed_at=_at(p, c, "signed_at")),
    "recipient_declined": lambda p, c: RecipientDeclined(
        package_id=p.package_id, order=c.order, declined_at=_at(p, c, "declined_at"),
        reason=c.details.get("reason")),
    "recipient_authentication_updated": _policy_event(RecipientAuthenticationUpdated),
    "recipient_authentication_reset": _policy_event(RecipientAuthenticationReset),
    "recipient_authentication_removed": lambda p, c: RecipientAuthenticationRemoved(
        package_id=p.package_id, order=c.order),
}
"""Change action -> its event; changes not listed (facts from other services) publish none."""


def events(decision: Decision) -> list[Event]:
    """The events a decision publishes, in the order its changes happened."""
    return [
        BUILDERS[change.action](decision.package, change)
        for change in decision.changes
        if change.action in BUILDERS
    ]
