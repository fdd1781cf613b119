"""What the end-to-end tests do, as an upstream system would: publish commands, read outcomes."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from libs.security.tokens import TokenSettings
from libs.tools.operator_token import operator_token
from signgate_contracts import Command, encode
from signgate_contracts import identity as idn
from signgate_contracts import workflow as wf
from signgate_contracts.envelope import Secret
from signgate_contracts.topics import OUTCOME_TOPIC
from tests.e2e.conftest import System
from tests.support.kafka import correlated, producer
from tests.support.recipients import invitations_in
from tests.support.waiting import until

OWNER_PASSWORD = "Owner-pass-4417"


async def send(system: System, topic: str, command: Command, *, answer_on: str | None = None,
               key: str = "k") -> dict[str, Any]:
    """Publish a command and return its outcome (or, with ``answer_on``, the record there)."""
    connections = system.connections
    target = connections.topic(answer_on or OUTCOME_TOPIC[topic].name)
    async with producer(connections.kafka_bootstrap) as client:
        await client.send_and_wait(connections.topic(topic), encode(command), key=key.encode())
    [record, *_] = await system.watch.wait_for(
        lambda r: r.topic == target and correlated(r, command.correlation_id), timeout=30
    )
    return json.loads(record.value)


async def owner_token(system: System, accounts: list[idn.AccountMembership] | None = None) -> str:
    """Register an API user (a member of ``accounts``, else of an account of their own) with the
    bootstrap operator's token, and authenticate as them."""
    secrets = system.secrets
    admin = operator_token(TokenSettings(
        private_key=secrets["SIGNGATE_TOKEN_PRIVATE_KEY"], public_key=secrets["SIGNGATE_TOKEN_PUBLIC_KEY"]
    )).token
    user_name = f"owner-{uuid.uuid4().hex[:6]}@example.com"
    registered = await send(system, "signgate.identity.commands", idn.RegisterUser(
        user_name=user_name, first_name="Olive", last_name="Owner", password=OWNER_PASSWORD,
        accounts=accounts or [idn.AccountMembership(name="Acme", context_identifier=uuid.uuid4(), is_primary=True)],
        access_token=admin,
    ), key=user_name)
    assert registered["type"] == "identity.user_registered_v2", registered
    reply = await send(system, "signgate.identity.commands",
                       idn.AuthenticateUser(user_name=user_name, password=OWNER_PASSWORD),
                       answer_on="signgate.identity.replies", key=user_name)
    assert reply["success"] is True, reply
    return reply["access_token"]


async def workflow(system: System, command: Command) -> dict[str, Any]:
    outcome = await send(system, "signgate.workflow.commands", command, key=command.package_id)
    assert outcome["type"] != "command.rejected", outcome
    return outcome


async def authentication(system: System, command: Command, **kwargs: Any) -> dict[str, Any]:
    return await send(system, "signgate.authentication.commands", command, key=command.package_id, **kwargs)


@dataclass(frozen=True)
class SharedPackage:
    """A shared package and what the signing platform got back when it shared it: each recipient's
    invitation, to put in their signing link."""

    package_id: str
    invitations: dict[int, Secret]


async def invitations_of(system: System, share: wf.ShareWorkflow) -> dict[int, Secret]:
    """Share a package; the invitations the workflow answers with, by order."""
    reply = await send(system, "signgate.workflow.commands", share, answer_on="signgate.workflow.replies",
                       key=share.package_id)
    return invitations_in(reply)


async def new_invitation(system: System, package_id: str, order: int, token: str) -> Secret:
    """The owner asks for a new invitation for one recipient (after a reset, say)."""
    reply = await send(system, "signgate.workflow.commands", wf.IssueRecipientInvitation(
        package_id=package_id, order=order, access_token=token), answer_on="signgate.workflow.replies", key=package_id)
    assert reply["type"] == "workflow.recipient_invitation_issued", reply
    return Secret(reply["invitation"])


async def shared_package(system: System, token: str, recipients: list[wf.RecipientSpec],
                         *settings: dict[str, Any]) -> SharedPackage:
    """Register a package, apply each authentication command (as JSON bodies), share it (keeping the
    invitations it answers with), and wait until the authentication service has projected it."""
    package_id = f"pkg-{uuid.uuid4().hex[:8]}"
    await workflow(system, wf.RegisterPackage(
        package_id=package_id, name="Lease", access_token=token, recipients=recipients,
        documents=[wf.DocumentSpec(document_id="doc-1", name="lease.pdf")],
    ))
    for setting in settings:
        command = {"package_id": package_id, "access_token": token, **setting}
        model = wf.UpdateRecipientAuthentication if "order" in setting else wf.AddAuthentication
        await workflow(system, model.model_validate(command))
    invitations = await invitations_of(system, wf.ShareWorkflow(package_id=package_id, access_token=token))
    pool = system.services["authentication"].resources.pool
    await until(lambda: pool.fetchval(
        "SELECT count(*) = $2 FROM recipients r JOIN packages p USING (package_id)"
        " WHERE package_id = $1 AND methods <> '{}' AND p.state = 'in_progress'", package_id, len(settings)),
        what="the authentication service's projection of the package")
    return SharedPackage(package_id, invitations)


def latest_sms_code(system: System, destination: str) -> str:
    deliveries = [json.loads(line) for line in system.sandbox.read_text().splitlines()]
    return [d for d in deliveries if d["destination"] == destination][-1]["code"]
