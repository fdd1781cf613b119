"""What the events topic sees of a user: their id, masked contacts and keyed digests, and the mobile
number and authenticator secret sealed to the authentication service (which sends signers their
codes, and checks the authenticator codes of recipients who are API users).

A record about a user is keyed by the user id. A failed authentication is keyed by, and names, the
keyed digest of the name typed, known or not, so that nothing on the topic tells a user's name
from any other text; a rejection of an identity command is keyed the same way.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from libs.runtime.errors import Refusal
from libs.runtime.messaging.outgoing import Outgoing
from libs.runtime.service import ServiceSettings
from libs.security.digests import Digests, DigestSettings
from libs.security.masking import mask_email, mask_phone
from libs.security.sealing import Sealer
from services.identity.settings import IdentitySettings
from signgate_contracts import Message
from signgate_contracts.envelope import Event
from signgate_contracts.identity import (
    ChangedBy,
    FailureReason,
    UserAuthenticationFailedV2,
    UserMobileNumberChanged,
    user_mobile_context,
    user_totp_context,
)
from signgate_contracts.rejection import CommandRejected
from signgate_contracts.topics import IDENTITY_EVENTS


@dataclass(frozen=True)
class PublishingKeys:
    """What identity digests and seals what it publishes with; built once."""

    digests: Digests
    sealer: Sealer

    @classmethod
    def build(cls, settings: IdentitySettings) -> PublishingKeys:
        """Refuses without the digest key or the authentication service's sealing key: nothing goes
        out in clear instead."""
        return cls(
            Digests.from_settings(settings.digests),
            Sealer.for_consumer("authentication", settings.sealing),
        )


def contacts(
    user_id: uuid.UUID,
    email: str | None,
    mobile_number: str | None,
    keys: PublishingKeys,
    locale: str | None = None,
) -> dict[str, Any]:
    """A profile's email, mobile number and language as events carry them (`_ProfileContacts`'
    fields)."""
    return {
        "locale": locale,
        "email_masked": mask_email(email) if email else None,
        "email_digest": keys.digests.email(email) if email else None,
        "mobile_masked": mask_phone(mobile_number) if mobile_number else None,
        "mobile_sealed": keys.sealer.seal(user_mobile_context(user_id), mobile_number)
        if mobile_number
        else None,
    }


def sealed_totp_secret(user_id: uuid.UUID, secret: str, keys: PublishingKeys) -> str:
    """An authenticator's secret as `AuthenticatorConfirmed` carries it: sealed to the authentication
    service (which checks the codes of recipients who are this user), opening as this user's only."""
    return keys.sealer.seal(user_totp_context(user_id), secret)


def fact(event: Event) -> Outgoing:
    """A fact about one user (an event with ``user_id``), keyed by the user id."""
    return Outgoing(IDENTITY_EVENTS.name, str(event.user_id), event)  # type: ignore[attr-defined]


def mobile_number_change(
    user_id: uuid.UUID, old: str | None, new: str | None, changed_by: ChangedBy, now: datetime
) -> Outgoing:
    """The announcement that the number signer codes go to changed: both numbers masked."""
    return fact(
        UserMobileNumberChanged(
            user_id=user_id,
            old_mobile_masked=mask_phone(old) if old else None,
            new_mobile_masked=mask_phone(new) if new else None,
            changed_by=changed_by,
            occurred_at=now,
        )
    )


def failure(
    user_name: str, reasons: list[FailureReason], keys: PublishingKeys, now: datetime
) -> Outgoing:
    """A failed authentication of ``user_name`` (typed, known or not), named and keyed by its digest."""
    digest = keys.digests.user_name(user_name)
    return Outgoing(
        IDENTITY_EVENTS.name,
        digest,
        UserAuthenticationFailedV2(user_name_digest=digest, reasons=reasons, occurred_at=now),
    )


def outcome_for_name(user_name: str, event: Event, keys: PublishingKeys) -> Outgoing:
    """An outcome about a name given in a command (a rejection), keyed by the name's digest."""
    return Outgoing(IDENTITY_EVENTS.name, keys.digests.user_name(user_name), event)


def rejection(command: Message, refusal: Refusal, now: datetime) -> CommandRejected:
    """The ``command.rejected`` outcome of a command whose refusal has effects to keep (a counted
    failure), so it is returned with them rather than raised (which would roll them back)."""
    return CommandRejected.model_validate(
        {
            "status": refusal.status,
            "code": refusal.code,
            "message": refusal.message,
            "field": refusal.field,
            "command_type": command.type,
            "command_event_id": command.event_id,
            "occurred_at": now,
        }
    )


def rejection_key(settings: ServiceSettings) -> Callable[[str], str]:
    """How the pipeline keys identity's rejections: by the digest of the command's key (the user
    name the caller gave), never by the name itself. Refuses without the digest key."""
    digests = settings.digests if isinstance(settings, IdentitySettings) else DigestSettings()
    return Digests.from_settings(digests).user_name
