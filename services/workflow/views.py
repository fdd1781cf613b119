"""What the outside sees of a package: the events a decision publishes, and the query replies.

Events carry each recipient's whole policy (a projection replaces what it had): the secret's
peppered hash and the OTP destination only sealed to the authentication service (which needs
them to check a password and to ask for a delivery), masked everywhere else; emails only as
keyed digests. Replies to the owner's queries carry no hash and no clear destination; the
owner's replies to sharing carry the recipients' invitations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import uuid4

from pydantic import SecretStr

from libs.security.masking import mask_email, mask_phone
from libs.security.totp import TotpParameters, new_secret, provisioning_uri
from services.workflow.dependencies import PublishingKeys
from services.workflow.domain import (
    Authentication,
    Change,
    Decision,
    Package,
    Recipient,
    RecipientTotp,
)
from services.workflow.repository import HistoryRecord
from signgate_contracts.envelope import Event
from signgate_contracts.workflow import (
    Destination,
    DocumentSummary,
    HistoryEntry,
    InvitationView,
    PackageRegistered,
    PublicAuthenticationPolicy,
    RecipientAuthenticationDescribed,
    RecipientAuthenticationRemoved,
    RecipientAuthenticationResetV2,
    RecipientAuthenticationUpdatedV2,
    RecipientDeclined,
    RecipientInvitationIssued,
    RecipientInvitationsIssued,
    RecipientReceived,
    RecipientSigned,
    RecipientSummary,
    RecipientTotpProvisioned,
    SealedAuthenticationPolicy,
    WorkflowCompleted,
    WorkflowDeclined,
    WorkflowHistoryListed,
    WorkflowLocked,
    WorkflowShared,
    WorkflowTerminated,
    WorkflowUnlocked,
    recipient_totp_context,
    sealed_policy_context,
)


def destination(recipient: Recipient, authentication: Authentication) -> Destination | None:
    if "sms_otp" in authentication.methods and authentication.mobile_number:
        number = authentication.mobile_number
        return Destination(channel="sms", address=number, masked=mask_phone(number))
    if "email_otp" in authentication.methods:
        return Destination(
            channel="email", address=recipient.email, masked=mask_email(recipient.email)
        )
    return None


def policy(
    package_id: str, recipient: Recipient, keys: PublishingKeys
) -> SealedAuthenticationPolicy | None:
    """The recipient's policy as the events topic carries it: what only the authentication service
    may read sealed to it, bound to this recipient and authentication version."""
    authentication = recipient.authentication
    if authentication is None:
        return None
    where = destination(recipient, authentication)
    secret = {
        "secret_hash": authentication.secret_hash,
        "destination": where.address if where else None,
        **({"fallback_email": recipient.email} if "email" in authentication.otp_fallback else {}),
    }
    context = sealed_policy_context(package_id, recipient.order, recipient.authentication_version)
    return SealedAuthenticationPolicy(
        methods=list(authentication.methods),
        secret_set=authentication.secret_hash is not None,
        channel=where.channel if where else None,
        destination_masked=where.masked if where else None,
        sealed=keys.sealer.seal(context, secret) if authentication.secret_hash or where else None,
        retry_count=authentication.retry_count,
        frequency=authentication.frequency,
        identity_verification=authentication.identity_verification,
        on_behalf_of=mask_email(authentication.on_behalf_of)
        if authentication.on_behalf_of
        else None,
        locale=authentication.locale,
        brand_name=authentication.brand_name,
        **totp_fields(authentication),
        otp_fallback=list(authentication.otp_fallback),
    )


def totp_fields(authentication: Authentication) -> dict[str, Any]:
    """A policy's TOTP part: the provisioned secret as workflow holds it, sealed to the
    authentication service (`recipient_totp_context`)."""
    totp = authentication.totp
    if totp is None:
        return {}
    return {
        "totp_source": totp.source,
        "totp_authenticator_id": totp.authenticator_id,
        "totp_sealed": totp.secret_sealed,
    }


@dataclass(frozen=True)
class ProvisionedTotp:
    """A TOTP secret just made for a recipient: in clear only here, for the sender's reply; the
    recipient's policy holds it sealed (``totp``)."""

    secret: SecretStr
    totp: RecipientTotp
    parameters: TotpParameters


def provision_totp(package_id: str, keys: PublishingKeys) -> ProvisionedTotp:
    """A new secret (pyotp, 160 bits) and its id, sealed to the authentication service."""
    secret, authenticator_id, parameters = new_secret(), str(uuid4()), TotpParameters()
    sealed = keys.sealer.seal(
        recipient_totp_context(package_id, authenticator_id),
        {
            "secret": secret,
            "digits": parameters.digits,
            "algorithm": parameters.algorithm,
            "period_seconds": parameters.period,
        },
    )
    return ProvisionedTotp(
        SecretStr(secret), RecipientTotp("provisioned", authenticator_id, sealed), parameters
    )


def totp_provisioned(
    package: Package, provisioned: ProvisionedTotp, issuer: str
) -> RecipientTotpProvisioned:
    """The sender's reply: the secret and its otpauth URI (named after the recipient's email), for
    the recipient's authenticator app."""
    [recipient] = [
        r
        for r in package.recipients
        if r.authentication and r.authentication.totp == provisioned.totp
    ]
    secret = provisioned.secret.get_secret_value()
    uri = provisioning_uri(
        secret, account_name=recipient.email, issuer=issuer, parameters=provisioned.parameters
    )
    return RecipientTotpProvisioned(
        package_id=package.package_id,
        order=recipient.order,
        authenticator_id=provisioned.totp.authenticator_id or "",
        otpauth_uri=SecretStr(uri),
        secret=provisioned.secret,
        digits=provisioned.parameters.digits,
        algorithm=provisioned.parameters.algorithm,
        period_seconds=provisioned.parameters.period,
    )


def public_policy(recipient: Recipient) -> PublicAuthenticationPolicy | None:
    authentication = recipient.authentication
    if authentication is None:
        return None
    where = destination(recipient, authentication)
    return PublicAuthenticationPolicy(
        methods=list(authentication.methods),
        secret_set=authentication.secret_hash is not None,
        destination_masked=where.masked if where else None,
        retry_count=authentication.retry_count,
        frequency=authentication.frequency,
        identity_verification=authentication.identity_verification,
        on_behalf_of=mask_email(authentication.on_behalf_of)
        if authentication.on_behalf_of
        else None,
        locale=authentication.locale,
        brand_name=authentication.brand_name,
        totp_source=authentication.totp.source if authentication.totp else None,
        totp_authenticator_id=authentication.totp.authenticator_id if authentication.totp else None,
        otp_fallback=list(authentication.otp_fallback),
    )


def summary(recipient: Recipient, keys: PublishingKeys) -> RecipientSummary:
    return RecipientSummary(
        order=recipient.order,
        name=recipient.name,
        role=recipient.role,
        email_masked=mask_email(recipient.email),
        email_digest=keys.digests.email(recipient.email),
        mobile_masked=mask_phone(recipient.mobile_number) if recipient.mobile_number else None,
        status=recipient.status,
        signer_user_id=str(recipient.signer_user_id) if recipient.signer_user_id else None,
        signer_user_name_digest=keys.digests.user_name(recipient.signer_user_name)
        if recipient.signer_user_name
        else None,
    )


def invitation(
    package: Package, recipient: Recipient, keys: PublishingKeys, now: datetime
) -> InvitationView:
    token, issued = keys.invitations.issue(
        package.package_id, recipient.order, recipient.authentication_version, now
    )
    return InvitationView(
        order=recipient.order, invitation=SecretStr(token), expires_at=issued.expires_at
    )


def invitations_issued(
    package: Package, keys: PublishingKeys, now: datetime
) -> RecipientInvitationsIssued:
    """Every recipient's invitation, for the signing links of a package just shared."""
    return RecipientInvitationsIssued(
        package_id=package.package_id,
        invitations=[invitation(package, r, keys, now) for r in package.recipients],
    )


def invitation_issued(
    package: Package, recipient: Recipient, keys: PublishingKeys, now: datetime
) -> RecipientInvitationIssued:
    issued = invitation(package, recipient, keys, now)
    return RecipientInvitationIssued(
        package_id=package.package_id,
        order=recipient.order,
        invitation=issued.invitation,
        expires_at=issued.expires_at,
    )


def describe(
    package: Package, recipient: Recipient, keys: PublishingKeys
) -> RecipientAuthenticationDescribed:
    return RecipientAuthenticationDescribed(
        package_id=package.package_id,
        order=recipient.order,
        recipient=summary(recipient, keys),
        package_state=package.state,
        locked_workflow=package.locked,
        authentication=public_policy(recipient),
        access_window=recipient.access_window,
        received_at=recipient.received_at,
        failed_attempts=recipient.failed_attempts,
        locked_out_at=recipient.locked_out_at,
    )


def history_listed(
    package_id: str, records: Sequence[HistoryRecord], limit: int
) -> WorkflowHistoryListed:
    """A page of at most ``limit`` entries from ``records`` (read with one more than ``limit``, to
    know whether another page follows)."""
    page = records[:limit]
    entries = [
        HistoryEntry(
            sequence=r.sequence,
            occurred_at=r.occurred_at,
            recorded_at=r.recorded_at,
            actor=r.actor,
            action=r.action,
            order=r.order,
            correlation_id=str(r.correlation_id) if r.correlation_id else None,
            details=r.details,
        )
        for r in page
    ]
    next_after = page[-1].sequence if len(records) > limit else None
    return WorkflowHistoryListed(package_id=package_id, entries=entries, next_after=next_after)


# -- a decision's events --

EventBuilder = Callable[[Package, Change, PublishingKeys], Event]


def _registered(package: Package, _change: Change, keys: PublishingKeys) -> Event:
    return PackageRegistered(
        package_id=package.package_id,
        owner_id=package.owner_id,
        name=package.name,
        workflow_type=package.workflow_type,
        state=package.state,
        documents=[
            DocumentSummary(document_id=d.document_id, name=d.name) for d in package.documents
        ],
        recipients=[summary(r, keys) for r in package.recipients],
        account=package.account,
    )


def _policy_event(
    kind: type[RecipientAuthenticationUpdatedV2] | type[RecipientAuthenticationResetV2],
) -> EventBuilder:
    def build(package: Package, change: Change, keys: PublishingKeys) -> Event:
        assert change.order is not None
        recipient = package.recipient(change.order)
        return kind(
            package_id=package.package_id,
            order=recipient.order,
            email_digest=keys.digests.email(recipient.email),
            authentication_version=recipient.authentication_version,
            authentication=policy(package.package_id, recipient, keys),
            access_window=recipient.access_window,
        )

    return build


def _order(change: Change) -> int:
    assert change.order is not None, f"{change.action} is about one recipient"
    return change.order


def _at(package: Package, change: Change, attribute: str) -> Any:
    return getattr(package.recipient(_order(change)), attribute)


def _known(moment: datetime | None) -> datetime:
    assert moment is not None, "the decision that publishes this event sets this time"
    return moment


BUILDERS: Mapping[str, EventBuilder] = {
    "package_registered": _registered,
    "workflow_shared": lambda p, c, k: WorkflowShared(
        package_id=p.package_id, workflow_type=p.workflow_type, shared_at=_known(p.shared_at)
    ),
    "workflow_locked": lambda p, c, k: WorkflowLocked(package_id=p.package_id),
    "workflow_unlocked": lambda p, c, k: WorkflowUnlocked(package_id=p.package_id),
    "workflow_completed": lambda p, c, k: WorkflowCompleted(
        package_id=p.package_id, completed_at=_known(p.finished_at)
    ),
    "workflow_declined": lambda p, c, k: WorkflowDeclined(
        package_id=p.package_id, order=_order(c), declined_at=_known(p.finished_at)
    ),
    "workflow_terminated": lambda p, c, k: WorkflowTerminated(
        package_id=p.package_id,
        terminated_at=_known(p.finished_at),
        reason=c.details.get("reason"),
    ),
    "recipient_received": lambda p, c, k: RecipientReceived(
        package_id=p.package_id, order=_order(c), received_at=_at(p, c, "received_at")
    ),
    "recipient_signed": lambda p, c, k: RecipientSigned(
        package_id=p.package_id, order=_order(c), signed_at=_at(p, c, "signed_at")
    ),
    "recipient_declined": lambda p, c, k: RecipientDeclined(
        package_id=p.package_id,
        order=_order(c),
        declined_at=_at(p, c, "declined_at"),
        reason=c.details.get("reason"),
    ),
    "recipient_authentication_updated": _policy_event(RecipientAuthenticationUpdatedV2),
    "recipient_authentication_reset": _policy_event(RecipientAuthenticationResetV2),
    "recipient_authentication_removed": lambda p, c, k: RecipientAuthenticationRemoved(
        package_id=p.package_id,
        order=_order(c),
        authentication_version=_at(p, c, "authentication_version"),
    ),
}
"""Change action -> its event; changes not listed (facts from other services) publish none."""


def events(decision: Decision, keys: PublishingKeys) -> list[Event]:
    """The events a decision publishes, in the order its changes happened."""
    return [
        BUILDERS[change.action](decision.package, change, keys)
        for change in decision.changes
        if change.action in BUILDERS
    ]
