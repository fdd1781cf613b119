"""A recipient's TOTP secret through the Kafka API: it reaches the sender who provisioned it and
nobody else. A caller who names an events topic as the reply topic gets a 400 and no secret; the
secret, its otpauth URI and the codes submitted appear on no events or dead-letter topic and in no
log line; identity's sealed authenticator secret is never opened onto the bus."""

from __future__ import annotations

import json
import logging
import uuid

import pyotp
import pytest

from libs.security.tokens import TokenIssuer, TokenSettings
from signgate_contracts import Command, encode
from signgate_contracts import authentication as auth
from signgate_contracts import identity as idn
from signgate_contracts import workflow as wf
from signgate_contracts.envelope import Secret
from signgate_contracts.topics import (
    AUTHENTICATION_COMMANDS,
    IDENTITY_EVENTS,
    OUTCOME_TOPIC,
    WORKFLOW_COMMANDS,
    WORKFLOW_EVENTS,
    WORKFLOW_REPLIES,
)
from tests.support.kafka import correlated, producer
from tests.support.scanning import bus_leaks, leaks
from tests.support.signing import as_writer, authentication_sealer
from tests.support.system import System

pytestmark = pytest.mark.timeout(120)


async def send(system: System, topic: str, command: Command) -> dict:
    """Publish one command; its outcome (event or rejection)."""
    async with producer(system.connections.kafka_bootstrap) as client:
        await client.send_and_wait(system.connections.topic(topic), encode(command),
                                   key=command.package_id.encode())  # type: ignore[attr-defined]
    outcomes = system.connections.topic(OUTCOME_TOPIC[topic].name)
    [record, *_] = await system.watch.wait_for(
        lambda r: r.topic == outcomes and correlated(r, command.correlation_id))
    return json.loads(record.value)


async def reply(system: System, command: Command) -> dict:
    replies = system.connections.topic(WORKFLOW_REPLIES.name)
    [record] = await system.watch.wait_for(lambda r: r.topic == replies and correlated(r, command.correlation_id))
    return json.loads(record.value)


def provisioned_totp(package_id: str, token: str, **envelope: str) -> wf.UpdateRecipientAuthentication:
    return wf.UpdateRecipientAuthentication.model_validate({
        "package_id": package_id, "access_token": token, "order": 1, **envelope, "body": {
            "authentication": {"enabled": True, "totp": {"enabled": True, "source": "provisioned"}}}})


async def test_a_provisioned_secret_goes_only_to_its_caller_and_never_onto_the_bus_or_logs(
        system: System, caplog: pytest.LogCaptureFixture) -> None:
    """Naming the workflow's events topic as reply_to is refused (400 invalid_reply_to) with no
    secret made; the genuine request's secret and URI reach the replies topic only; the recipient
    opens with the app's code, and the secret, URI, codes and the user's authenticator secret are
    found on no events or dead-letter topic and in no log line."""
    caplog.set_level(logging.INFO)
    connections = system.connections
    issuer = TokenIssuer.from_settings(TokenSettings(private_key=system.secrets["SIGNGATE_TOKEN_PRIVATE_KEY"],
                                                     public_key=system.secrets["SIGNGATE_TOKEN_PUBLIC_KEY"]))
    token = issuer.issue(str(uuid.uuid4()), "owner-totp-secrets").token
    package_id = f"pkg-{uuid.uuid4().hex[:8]}"
    registered = await send(system, WORKFLOW_COMMANDS.name, wf.RegisterPackage(
        package_id=package_id, name="Lease", access_token=token,
        documents=[wf.DocumentSpec(document_id="doc-1", name="lease.pdf")],
        recipients=[wf.RecipientSpec(order=1, email="erin@example.com", name="Erin")]))
    hijack = await send(system, WORKFLOW_COMMANDS.name, provisioned_totp(
        package_id, token, reply_to=connections.topic(WORKFLOW_EVENTS.name)))
    genuine = provisioned_totp(package_id, token)
    updated = await send(system, WORKFLOW_COMMANDS.name, genuine)
    provisioned = await reply(system, genuine)
    share = wf.ShareWorkflow(package_id=package_id, access_token=token)
    await send(system, WORKFLOW_COMMANDS.name, share)
    invitation = Secret((await reply(system, share))["invitations"][0]["invitation"])
    secret, uri = provisioned["secret"], provisioned["otpauth_uri"]
    code = pyotp.TOTP(secret).at(system.clock())
    wrong = f"{(int(code) + 500_000) % 1_000_000:06d}"
    opened = await send(system, AUTHENTICATION_COMMANDS.name, auth.VerifyDocumentTotp(
        package_id=package_id, invitation=invitation, code=code))
    used = await send(system, AUTHENTICATION_COMMANDS.name, auth.VerifyDocumentTotp(
        package_id=package_id, invitation=invitation, code=code))
    failed = await send(system, AUTHENTICATION_COMMANDS.name, auth.VerifyDocumentTotp(
        package_id=package_id, invitation=invitation, code=wrong))
    user, user_secret = uuid.uuid4(), pyotp.random_base32()  # as identity publishes a confirmed app
    confirmed = encode(idn.AuthenticatorConfirmed(
        user_id=user, authenticator_id=uuid.uuid4(), changed_by="user",
        secret_sealed=authentication_sealer().seal(idn.user_totp_context(user), user_secret)))
    identity_events = connections.topic(IDENTITY_EVENTS.name)
    async with producer(connections.kafka_bootstrap) as client:
        await client.send_and_wait(identity_events, confirmed, key=str(user).encode(),
                                   headers=as_writer(IDENTITY_EVENTS.name, identity_events, str(user).encode(),
                                                     confirmed))

    assert registered["type"] == "workflow.package_registered"
    assert (hijack["type"], hijack["status"], hijack["code"]) == ("command.rejected", 400, "invalid_reply_to")
    assert updated["type"] == "workflow.recipient_authentication_updated_v2"
    assert provisioned["type"] == "workflow.recipient_totp_provisioned" and uri.startswith("otpauth://totp/")
    assert opened["type"] == "authentication.recipient_authenticated"
    assert (used["status"], used["code"]) == (409, "totp_code_used")
    assert failed["type"] == "authentication.recipient_authentication_failed"
    provisionings = [r for r in system.watch.records if b"recipient_totp_provisioned" in r.value]
    assert [r.topic for r in provisionings] == [connections.topic(WORKFLOW_REPLIES.name)]  # none for the hijack
    shown = [r.value.decode(errors="replace") for r in system.watch.records
             if r.topic.endswith((".events", ".dlq", ".requests"))]
    logged = [logging.getLogger().handlers[0].format(record) for record in caplog.records]
    assert leaks(shown + logged, [secret, uri, code, wrong, user_secret]) == []
    assert leaks([provisionings[0].value.decode()], [secret, uri]) != []  # where the scan does find them
    assert len(logged) > 10
    assert bus_leaks(system.watch.records, connections) == []
