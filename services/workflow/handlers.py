"""Use cases of the workflow service, each inside the handler's transaction.

A command that changes a package identifies the caller, hashes any secret it carries
(before taking the package's row lock), reads the package for update, lets `domain.decide`
apply the rule, writes what changed and a history entry per change, and returns the
events. A query answers the caller's ``reply_to``. Facts from the authentication service
are appended to the history. A refusal raised anywhere becomes the `command.rejected`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from libs.runtime.logging import get_logger
from libs.runtime.messaging.outgoing import Outgoing
from libs.runtime.service import Scope
from libs.security.tokens import utc_now
from services.workflow import domain, repository, views
from services.workflow.callers import caller_of, hash_secret, identify_caller, keys_of
from services.workflow.domain import AuthenticationFact, Change, Decision, Package
from services.workflow.read_ahead import PackagesAhead
from services.workflow.repository import NewHistoryEntry
from signgate_contracts import authentication as auth
from signgate_contracts.envelope import Command, Event, Message
from signgate_contracts.topics import WORKFLOW_EVENTS, WORKFLOW_REPLIES
from signgate_contracts.workflow import (
    GetRecipientAuthentication,
    GetWorkflowHistory,
    HistoryEntry,
    IssueRecipientInvitation,
    ShareWorkflow,
    WorkflowHistoryListed,
)

log = get_logger(__name__)

Rule = Callable[[Package | None], Decision]


async def apply(
    message: Message, package_id: str, actor: str, unit: Scope[Any], rule: Rule
) -> list[Outgoing]:
    """Decide on the package under its row lock; write the new state, history and events."""
    assert unit.connection is not None
    before = await repository.select_package(unit.connection, package_id, for_update=True)
    return await save(message, actor, unit, before, rule(before))


async def save(
    message: Message, actor: str, unit: Scope[Any], before: Package | None, decision: Decision
) -> list[Outgoing]:
    connection = unit.connection
    assert connection is not None
    package_id = decision.package.package_id
    if before is None:
        await repository.insert_package(connection, decision.package)
    else:
        await repository.update_package(connection, before, decision.package)
    await repository.insert_history_entries(
        connection, package_id, history(message, actor, decision.changes)
    )
    return [
        Outgoing(WORKFLOW_EVENTS.name, package_id, event)
        for event in views.events(decision, keys_of(unit))
    ]


def history(message: Message, actor: str, changes: Sequence[Change]) -> list[NewHistoryEntry]:
    return [
        NewHistoryEntry(
            occurred_at=message.occurred_at,
            actor=actor,
            action=change.action,
            order=change.order,
            correlation_id=message.correlation_id,
            cause_id=message.event_id,
            position=position,
            details=dict(change.details),
        )
        for position, change in enumerate(changes)
    ]


# -- commands that change a package --


async def change_package(command: Command, unit: Scope[Any]) -> list[Outgoing]:
    """Any of `domain.CHANGES`: who asks, the hash of any secret, then the rule under the lock.
    Sharing also answers the caller with every recipient's invitation."""
    caller = await caller_of(command, unit)
    secret_hash = await hash_secret(unit, domain.secret_of(command))
    package_id: str = command.package_id  # type: ignore[attr-defined]
    decisions: list[Decision] = []

    def rule(package: Package | None) -> Decision:
        decisions.append(domain.decide(command, package, caller, secret_hash))
        return decisions[-1]

    outgoing = await apply(command, package_id, caller.user_id, unit, rule)
    if isinstance(command, ShareWorkflow):
        issued = views.invitations_issued(decisions[-1].package, keys_of(unit), utc_now())
        outgoing.append(Outgoing.answer(command, WORKFLOW_REPLIES.name, package_id, issued))
    return outgoing


# -- queries --


async def get_recipient_authentication(
    command: GetRecipientAuthentication, unit: Scope[Any]
) -> list[Outgoing]:
    caller = await identify_caller(command, unit)
    assert unit.connection is not None
    found = await repository.select_package(unit.connection, command.package_id)
    package, recipient = domain.readable_recipient(found, caller, command.order)
    described = views.describe(package, recipient, keys_of(unit))
    return [Outgoing.answer(command, WORKFLOW_REPLIES.name, package.package_id, described)]


async def issue_recipient_invitation(
    command: IssueRecipientInvitation, unit: Scope[Any]
) -> list[Outgoing]:
    """A new invitation for one recipient, to the owner only."""
    caller = await identify_caller(command, unit)
    assert unit.connection is not None
    found = await repository.select_package(unit.connection, command.package_id)
    package, recipient = domain.invitable_recipient(found, caller, command.order)
    issued = views.invitation_issued(package, recipient, keys_of(unit), utc_now())
    log.info("recipient invitation issued", package_id=package.package_id, order=recipient.order)
    return [Outgoing.answer(command, WORKFLOW_REPLIES.name, package.package_id, issued)]


async def get_workflow_history(command: GetWorkflowHistory, unit: Scope[Any]) -> list[Outgoing]:
    caller = await identify_caller(command, unit)
    assert unit.connection is not None
    domain.readable_history(
        await repository.select_package(unit.connection, command.package_id), caller
    )
    records = await repository.select_history(
        unit.connection,
        command.package_id,
        after_sequence=command.after_sequence,
        limit=command.limit + 1,
    )
    page = records[: command.limit]
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
    next_after = page[-1].sequence if len(records) > command.limit else None
    return [
        Outgoing.answer(
            command,
            WORKFLOW_REPLIES.name,
            command.package_id,
            WorkflowHistoryListed(
                package_id=command.package_id, entries=entries, next_after=next_after
            ),
        )
    ]


# -- facts from the authentication service --

FactReader = Callable[[Any], AuthenticationFact]

FACTS: Mapping[type[Event], FactReader] = {
    auth.RecipientAuthenticated: lambda e: AuthenticationFact(
        "recipient_authenticated",
        e.order,
        e.occurred_at,
        failed_attempts=0,
        details={"method": e.method},
    ),
    auth.RecipientAuthenticationFailed: lambda e: AuthenticationFact(
        "recipient_authentication_failed",
        e.order,
        e.occurred_at,
        failed_attempts=e.attempts_used,
        details={
            "method": e.method,
            "reason": e.reason,
            "attempts_remaining": e.attempts_remaining,
        },
    ),
    auth.RecipientLockedOut: lambda e: AuthenticationFact(
        "recipient_locked_out",
        e.order,
        e.locked_at,
        failed_attempts=e.failures,
        locked=True,
        details={"method": e.method, "failures": e.failures},
    ),
    auth.RecipientAuthenticationCleared: lambda e: AuthenticationFact(
        "recipient_authentication_cleared",
        e.order,
        e.occurred_at,
        failed_attempts=0,
        locked=False,
        details={"was_locked": e.was_locked},
    ),
    auth.SignerAuthenticated: lambda e: AuthenticationFact(
        "signer_authenticated",
        None,
        e.occurred_at,
        details={"user_id": e.user_id, "document_id": e.document_id, "field_name": e.field_name},
    ),
    auth.SignerAuthenticationFailed: lambda e: AuthenticationFact(
        "signer_authentication_failed",
        None,
        e.occurred_at,
        details={
            "user_id": e.user_id,
            "document_id": e.document_id,
            "field_name": e.field_name,
            "reason": e.reason,
            "attempts_remaining": e.attempts_remaining,
        },
    ),
}
"""The authentication service's facts the history records, and what each says."""


async def record_authentication_fact(event: Event, unit: Scope[Any]) -> list[Outgoing]:
    """Append a success, failure, lockout or clearing to the package's history."""
    fact = FACTS[type(event)](event)
    package_id: str = event.package_id  # type: ignore[attr-defined]
    package = await locked_package(unit, package_id)
    if package is None:
        log.warning("authentication fact about an unknown package ignored", package_id=package_id)
        return []
    return await save(
        event, "authentication", unit, package, domain.record_authentication_fact(package, fact)
    )


async def locked_package(unit: Scope[Any], package_id: str) -> Package | None:
    """The package, locked for update: as its lane read it ahead, else read now."""
    if isinstance(unit.read_ahead, PackagesAhead):
        known, package = unit.read_ahead.recall(package_id, None)
        if known:
            return package
    assert unit.connection is not None
    return await repository.select_package(unit.connection, package_id, for_update=True)


HANDLERS: Mapping[type[Message], Callable[[Any, Scope], Any]] = {
    **dict.fromkeys(domain.CHANGES, change_package),
    GetRecipientAuthentication: get_recipient_authentication,
    GetWorkflowHistory: get_workflow_history,
    IssueRecipientInvitation: issue_recipient_invitation,
    **dict.fromkeys(FACTS, record_authentication_fact),
}
