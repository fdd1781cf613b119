"""Handlers of the workflow service, each inside its record's transaction.

A command that changes a package identifies the caller, hashes any secret it carries (before
taking the package's row lock), reads the package for update, lets `domain.decide` apply the
rule, writes what changed and a history entry per change, and returns the events. A query
answers the caller's ``reply_to``. Facts from the authentication service are appended to the
history. A refusal raised anywhere becomes the `command.rejected`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import asyncpg

from libs.runtime.logging import get_logger
from libs.runtime.messaging.outgoing import Outgoing
from libs.runtime.service import MessageHandler
from libs.security.accounts import PostgresAccountStates
from libs.security.tokens import Claims
from services.workflow import domain, repository, views
from services.workflow.dependencies import PublishingKeys, WorkflowScope
from services.workflow.domain import AuthenticationFact, Caller, Change, Decision, Package
from services.workflow.repository import NewHistoryEntry
from signgate_contracts import authentication as auth
from signgate_contracts.envelope import Command, Event, Message, Secret
from signgate_contracts.topics import WORKFLOW_EVENTS, WORKFLOW_REPLIES
from signgate_contracts.workflow import (
    GetRecipientAuthentication,
    GetWorkflowHistory,
    IssueRecipientInvitation,
    ShareWorkflow,
    provisions_totp,
)

log = get_logger(__name__)


# -- commands that change a package --


async def handle_package_change(command: Command, scope: WorkflowScope) -> list[Outgoing]:
    """Any of `domain.CHANGES`: who asks, the hash of any secret (and a new TOTP secret, for a
    command that asks for one), then the rule under the package's row lock. Sharing also answers
    the caller with every recipient's invitation; provisioning a TOTP secret, with its URI."""
    caller = await caller_of(command, scope)
    secret_hash = await hash_secret(scope, domain.secret_of(command))
    package_id: str = command.package_id  # type: ignore[attr-defined]
    keys = scope.dependencies.keys
    provisioned = views.provision_totp(package_id, keys) if provisions_totp(command) else None
    connection = scope.transaction
    before = await repository.select_package(connection, package_id, for_update=True)
    decision = domain.decide(
        command, before, caller, secret_hash, provisioned.totp if provisioned else None
    )
    outgoing = await save(connection, keys, command, caller.user_id, before, decision)
    if provisioned is not None:  # the secret to the caller only, never on the events topic
        answer = views.totp_provisioned(
            decision.package, provisioned, scope.dependencies.totp.issuer
        )
        outgoing.append(Outgoing.answer(command, WORKFLOW_REPLIES.name, package_id, answer))
    if isinstance(command, ShareWorkflow):
        issued = views.invitations_issued(decision.package, keys, scope.dependencies.clock())
        outgoing.append(Outgoing.answer(command, WORKFLOW_REPLIES.name, package_id, issued))
    return outgoing


# -- queries --


async def handle_get_recipient_authentication(
    command: GetRecipientAuthentication, scope: WorkflowScope
) -> list[Outgoing]:
    """The recipient's authentication as the owner may see it (no hash, no clear destination)."""
    caller = await identify_caller(command, scope)
    found = await repository.select_package(scope.transaction, command.package_id)
    package, recipient = domain.readable_recipient(found, caller, command.order)
    described = views.describe(package, recipient, scope.dependencies.keys)
    return [Outgoing.answer(command, WORKFLOW_REPLIES.name, package.package_id, described)]


async def handle_issue_recipient_invitation(
    command: IssueRecipientInvitation, scope: WorkflowScope
) -> list[Outgoing]:
    """A new invitation for one recipient, to the owner only."""
    caller = await identify_caller(command, scope)
    found = await repository.select_package(scope.transaction, command.package_id)
    package, recipient = domain.invitable_recipient(found, caller, command.order)
    issued = views.invitation_issued(
        package, recipient, scope.dependencies.keys, scope.dependencies.clock()
    )
    log.info("recipient invitation issued", package_id=package.package_id, order=recipient.order)
    return [Outgoing.answer(command, WORKFLOW_REPLIES.name, package.package_id, issued)]


async def handle_get_workflow_history(
    command: GetWorkflowHistory, scope: WorkflowScope
) -> list[Outgoing]:
    """A page of the package's history, to the owner only."""
    caller = await identify_caller(command, scope)
    connection = scope.transaction
    domain.readable_history(await repository.select_package(connection, command.package_id), caller)
    records = await repository.select_history(
        connection,
        command.package_id,
        after_sequence=command.after_sequence,
        limit=command.limit + 1,
    )
    listed = views.history_listed(command.package_id, records, command.limit)
    return [Outgoing.answer(command, WORKFLOW_REPLIES.name, command.package_id, listed)]


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


async def handle_authentication_fact(event: Event, scope: WorkflowScope) -> list[Outgoing]:
    """Append a success, failure, lockout or clearing to the package's history."""
    fact = FACTS[type(event)](event)
    package_id: str = event.package_id  # type: ignore[attr-defined]
    connection = scope.transaction
    package = await repository.select_package(
        connection, package_id, for_update=True, read_ahead=scope.read_ahead
    )
    if package is None:
        log.warning("authentication fact about an unknown package ignored", package_id=package_id)
        return []
    decision = domain.record_authentication_fact(package, fact)
    return await save(
        connection, scope.dependencies.keys, event, "authentication", package, decision
    )


# -- what every change writes --


async def save(
    connection: asyncpg.Connection,
    keys: PublishingKeys,
    message: Message,
    actor: str,
    before: Package | None,
    decision: Decision,
) -> list[Outgoing]:
    """Write what the decision changed (the package, a history entry per change); its events."""
    package_id = decision.package.package_id
    if before is None:
        await repository.insert_package(connection, decision.package)
    else:
        await repository.update_package(connection, before, decision.package)
    await repository.insert_history_entries(
        connection, package_id, history_entries(message, actor, decision.changes)
    )
    return [
        Outgoing(WORKFLOW_EVENTS.name, package_id, event) for event in views.events(decision, keys)
    ]


def history_entries(
    message: Message, actor: str, changes: Sequence[Change]
) -> list[NewHistoryEntry]:
    """A history entry per change, in order, caused by ``message``."""
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


# -- who is calling, and hashing what they sent --


async def caller_of(command: Command, scope: WorkflowScope) -> Caller:
    """The command's caller, with the accounts their token names (refusals as `identify_caller`)."""
    claims = await _claims(command, scope)
    return Caller(claims.subject, tuple(claims.accounts), claims.primary_account)


async def identify_caller(command: Command, scope: WorkflowScope) -> str:
    """The user id (the token's subject) of the command's caller.

    Refuses with the seeds' texts: no token 401 "User authentication required"; a bad,
    expired or revoked one 401 "Request authorization denied"; a disabled user's 403
    "Account is disabled" (from this service's projection of identity's events).
    """
    return (await _claims(command, scope)).subject


async def _claims(command: Command, scope: WorkflowScope) -> Claims:
    # The account states are read through the record's own transaction: what this lane wrote of
    # identity's events is seen, and a command takes no second connection from the pool.
    states = PostgresAccountStates(scope.transaction)
    return await scope.dependencies.tokens.verify(command.access_token, states=states)


async def hash_secret(scope: WorkflowScope, secret: Secret | None) -> str | None:
    """The peppered argon2id hash of a password or access code (off the event loop); None for
    a secret left out or empty."""
    if secret is None or not secret.get_secret_value():
        return None
    return await scope.dependencies.hasher.hash(secret.get_secret_value())


HANDLERS: Mapping[type[Message], MessageHandler] = {
    **dict.fromkeys(domain.CHANGES, handle_package_change),
    GetRecipientAuthentication: handle_get_recipient_authentication,
    GetWorkflowHistory: handle_get_workflow_history,
    IssueRecipientInvitation: handle_issue_recipient_invitation,
    **dict.fromkeys(FACTS, handle_authentication_fact),
}
