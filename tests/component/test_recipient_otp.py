"""Document OTPs through three services without a broker: workflow's facts feed authentication, its
OTP requests feed OTP dispatch (SMS to the sandbox outbox), whose answers feed authentication back;
and OTP dispatch's own rules (cooldown, send limits, duplicates, invalid requests)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from libs.security.otp_store import OtpRecipient, OtpStore
from services.authentication.app import DEFINITION as AUTHENTICATION
from services.otp_dispatch.app import DEFINITION as OTP_DISPATCH
from services.workflow.app import DEFINITION as WORKFLOW
from signgate_contracts import Command
from signgate_contracts import authentication as auth
from signgate_contracts import workflow as wf
from signgate_contracts.envelope import Secret
from signgate_contracts.otp import OtpDeliveryRequested
from signgate_contracts.topics import (
    AUTHENTICATION_EVENTS,
    OTP_EVENTS,
    OTP_REQUESTS,
    WORKFLOW_EVENTS,
    WORKFLOW_REPLIES,
)
from tests.support.clock import MovableClock
from tests.support.component import (
    ON_SERVER_AND_CLUSTER,
    ComponentService,
    ComponentStack,
    Published,
    on,
    outcome,
)

pytestmark = ON_SERVER_AND_CLUSTER

ACCESS_CODE = "Acme-7391-Code"


@dataclass
class Services:
    workflow: ComponentService
    authentication: ComponentService
    otp_dispatch: ComponentService
    sandbox: Path
    stack: ComponentStack

    async def to_workflow(self, command: Command) -> list[Published]:
        """A workflow command; its facts handed on to authentication, as the bus would."""
        published = await self.workflow.handle(command)
        await self.authentication.handle_published(on(published, WORKFLOW_EVENTS))
        return published

    async def to_authentication(self, command: Command) -> Published:
        """An authentication command, its OTP requests handed to OTP dispatch and the answers back;
        the command's outcome on authentication's events topic."""
        published = await self.authentication.handle(command)
        if requests := on(published, OTP_REQUESTS):
            answers = await self.otp_dispatch.handle_published(requests)
            published = await self.authentication.handle_published(on(answers, OTP_EVENTS))
        return outcome(published, AUTHENTICATION_EVENTS)

    def latest_code(self, destination: str) -> str:
        deliveries = [json.loads(line) for line in self.sandbox.read_text().splitlines()]
        return [d for d in deliveries if d["destination"] == destination][-1]["code"]

    def codes_for(self, challenge_id: object) -> list[str]:
        if not self.sandbox.exists():
            return []
        deliveries = [json.loads(line) for line in self.sandbox.read_text().splitlines()]
        return [d["code"] for d in deliveries if d["challenge_id"] == str(challenge_id)]


@pytest.fixture(scope="module")
async def services(stack: ComponentStack) -> AsyncIterator[Services]:
    clock = MovableClock()
    sandbox = stack.workdir / f"sandbox-{uuid.uuid4().hex[:6]}.jsonl"
    async with (
        stack.service(WORKFLOW) as workflow,
        stack.service(AUTHENTICATION, clock=clock) as authentication,
        stack.service(OTP_DISPATCH, clock=clock, sandbox_outbox=sandbox, sms_provider="sandbox",
                      resend_cooldown_seconds=0, max_sends_per_destination=100,  # as the e2e system's
                      delivery_retry_delay_seconds=0.01) as otp_dispatch,
    ):
        yield Services(workflow, authentication, otp_dispatch, sandbox, stack)


def reply_of(published: list[Published]) -> dict[str, Any]:
    return outcome(published, WORKFLOW_REPLIES).document


async def shared_package(services: Services, token: str, bob_mobile: str) -> tuple[str, dict[int, Secret]]:
    """Alice (1) opens with an access code (BoldSign's body), Bob (2) with an SMS OTP (SigningHub's
    body); shared, with the invitations workflow answered the share with."""
    package_id = f"pkg-{uuid.uuid4().hex[:8]}"
    commands: list[Command] = [
        wf.RegisterPackage(
            package_id=package_id, name="Lease", access_token=token,
            documents=[wf.DocumentSpec(document_id="doc-1", name="lease.pdf")],
            recipients=[wf.RecipientSpec(order=1, email="alice@example.com", name="Alice"),
                        wf.RecipientSpec(order=2, email="bob@example.com", name="Bob", mobile_number=bob_mobile)]),
        wf.AddAuthentication.model_validate({"package_id": package_id, "access_token": token, "body": {
            "accessCode": ACCESS_CODE, "authenticationType": "AccessCode", "emailId": "alice@example.com"}}),
        wf.UpdateRecipientAuthentication.model_validate({"package_id": package_id, "access_token": token, "order": 2,
            "body": {"apply_to_all": False, "authentication": {
                "enabled": True, "password": {"enabled": False, "user_password": ""},
                "sms_otp": {"enabled": True, "mobile_number": "00" + bob_mobile[1:]}}}}),
    ]
    for command in commands:
        [event, *_] = on(await services.to_workflow(command), WORKFLOW_EVENTS)
        assert event.type != "command.rejected", event.document
    reply = reply_of(await services.to_workflow(wf.ShareWorkflow(package_id=package_id, access_token=token)))
    assert reply["type"] == "workflow.recipient_invitations_issued", reply
    return package_id, {item["order"]: Secret(item["invitation"]) for item in reply["invitations"]}


async def test_sms_otp_lockout_and_reset_of_one_recipient(services: Services) -> None:
    """Bob authenticates by SMS OTP, is locked after three wrong codes, is reset by the owner and
    succeeds with a new code (his old invitation stale, the owner asks for a new one), while Alice's
    authentication status stays as it was."""
    bob_mobile = "+447700900123"
    owner = str(uuid.uuid4())
    token = services.stack.token_issuer().issue(owner, "owner").token
    package_id, invitations = await shared_package(services, token, bob_mobile)
    alice, bob = invitations[1], invitations[2]

    opened = await services.to_authentication(auth.OpenDocumentWithPassword(package_id=package_id, invitation=alice,
                                                                            password=ACCESS_CODE))
    alice_before = await alice_status(services, package_id, alice)
    sent = await services.to_authentication(auth.RequestDocumentOtp(package_id=package_id, invitation=bob))
    first = await services.to_authentication(auth.VerifyDocumentOtp(package_id=package_id, invitation=bob,
                                                                    code=services.latest_code(bob_mobile)))
    await services.to_authentication(auth.RequestDocumentOtp(package_id=package_id, invitation=bob))
    right = services.latest_code(bob_mobile)
    wrong = [await services.to_authentication(auth.VerifyDocumentOtp(
        package_id=package_id, invitation=bob, code=str((int(right) + n) % 10**6).zfill(6))) for n in (1, 2, 3)]
    while_locked = await services.to_authentication(auth.VerifyDocumentOtp(package_id=package_id, invitation=bob,
                                                                           code=right))
    resetting = await services.workflow.handle(wf.ResetRecipientAuthentication(package_id=package_id, order=2,
                                                                               access_token=token))
    [cleared] = [e for e in on(await services.authentication.handle_published(on(resetting, WORKFLOW_EVENTS)),
                               AUTHENTICATION_EVENTS) if e.type == "authentication.recipient_authentication_cleared"]
    stale = await services.to_authentication(auth.RequestDocumentOtp(package_id=package_id, invitation=bob))
    issued = reply_of(await services.to_workflow(wf.IssueRecipientInvitation(package_id=package_id, order=2,
                                                                             access_token=token)))
    bob = Secret(issued["invitation"])
    await services.to_authentication(auth.RequestDocumentOtp(package_id=package_id, invitation=bob))
    after_reset = await services.to_authentication(auth.VerifyDocumentOtp(package_id=package_id, invitation=bob,
                                                                          code=services.latest_code(bob_mobile)))
    alice_after = await alice_status(services, package_id, alice)

    assert opened["type"] == "authentication.recipient_authenticated"
    assert (sent["type"], sent["channel"], sent["destination"]) == (
        "authentication.document_otp_sent", "sms", "+44******0123")
    assert first["type"] == "authentication.recipient_authenticated"
    assert [(w["type"], w.get("attempts_remaining")) for w in wrong] == [
        ("authentication.recipient_authentication_failed", 2),
        ("authentication.recipient_authentication_failed", 1),
        ("authentication.recipient_locked_out", None),
    ]
    assert (while_locked["status"], while_locked["code"]) == (403, "recipient_locked")
    assert outcome(resetting, WORKFLOW_EVENTS).type == "workflow.recipient_authentication_reset_v2"
    assert cleared["was_locked"] is True
    assert (stale["status"], stale["code"]) == (401, "invitation_not_valid")
    assert issued["type"] == "workflow.recipient_invitation_issued"
    assert after_reset["type"] == "authentication.recipient_authenticated"
    assert alice_after == alice_before


async def alice_status(services: Services, package_id: str, invitation: Secret) -> dict[str, Any]:
    published = await services.authentication.handle(auth.GetRecipientAuthenticationStatus(
        package_id=package_id, invitation=invitation))
    status = dict(published[0].document)
    for volatile in ("event_id", "occurred_at", "correlation_id", "causation_id"):
        status.pop(volatile)
    return status


# -- OTP dispatch's own rules --


def sms_request(destination: str, **fields: Any) -> OtpDeliveryRequested:
    """A request, signed as authentication signs it, to text a code to a recipient of a fresh package."""
    values = {"package_id": f"pkg-{uuid.uuid4().hex[:8]}", "order": 2, "channel": "sms", "destination": destination}
    return OtpDeliveryRequested(**(values | fields))


async def answer(services: Services, request: OtpDeliveryRequested) -> Published:
    return outcome(await services.otp_dispatch.handle(request), OTP_EVENTS)


async def test_an_sms_request_is_sent_masked_and_its_code_verifies(services: Services) -> None:
    """A request yields OtpSent with a masked number; the sandbox holds the code, which verifies once."""
    request = sms_request("+447700908899")

    sent = await answer(services, request)

    assert sent["type"] == "otp.sent"
    assert (sent["destination"], sent["provider"], sent["challenge_id"]) == (
        "+44******8899", "sandbox", str(request.challenge_id))
    assert sent["causation_id"] == str(request.event_id)
    [code] = services.codes_for(request.challenge_id)
    assert len(code) == 6 and code.encode() not in sent.value
    store = OtpStore(services.otp_dispatch.service.resources.redis, prefix=services.stack.connections.redis_prefix,
                     pepper=services.stack.otp_pepper)
    assert (await store.verify_and_consume(OtpRecipient.of(request), code, retry_count=3)).ok
    assert not (await store.verify_and_consume(OtpRecipient.of(request), code, retry_count=3)).ok


async def test_the_eleventh_code_to_one_number_in_an_hour_gets_a_429(stack: ComponentStack) -> None:
    """Ten codes to one phone number for ten packages are sent; the eleventh is refused for up to an hour."""
    async with stack.service(OTP_DISPATCH, sandbox_outbox=stack.workdir / "eleven.jsonl", sms_provider="sandbox") as otp:
        number = "+447700900202"
        sent = [outcome(await otp.handle(sms_request(number)), OTP_EVENTS) for _ in range(10)]
        refused = outcome(await otp.handle(sms_request(number)), OTP_EVENTS)

    assert {s.type for s in sent} == {"otp.sent"}
    assert (refused["status"], refused["code"]) == (429, "otp_destination_send_limit")
    assert 1 <= refused["retry_after_seconds"] <= 3600


async def test_a_resend_inside_the_cooldown_gets_a_429_with_when_to_retry(stack: ComponentStack) -> None:
    """A second request for the same recipient right after the first is refused with 429 and the seconds to wait."""
    async with stack.service(OTP_DISPATCH, sandbox_outbox=stack.workdir / "cooldown.jsonl", sms_provider="sandbox") as otp:
        first = sms_request("+447700900201")
        again = sms_request("+447700900201", package_id=first.package_id, order=first.order)
        sent = outcome(await otp.handle(first), OTP_EVENTS)
        refused = outcome(await otp.handle(again), OTP_EVENTS)

    assert sent.type == "otp.sent"
    assert (refused["type"], refused["status"], refused["code"]) == ("command.rejected", 429, "otp_resend_cooldown")
    assert 1 <= refused["retry_after_seconds"] <= 30
    assert f"in {refused['retry_after_seconds']} seconds" in refused["message"]
    assert refused["command_type"] == "otp.delivery_requested"


async def test_a_request_delivered_twice_sends_one_code(services: Services) -> None:
    """The same request delivered twice in one batch is sent once and answered with one event id."""
    request = sms_request("+447700900203")
    record = services.otp_dispatch.record(request)

    published = await services.otp_dispatch.deliver([record, record])

    assert len(services.codes_for(request.challenge_id)) == 1
    answers = on(published, OTP_EVENTS)
    assert {a.type for a in answers} == {"otp.sent"} and len({a["event_id"] for a in answers}) == 1


async def test_an_invalid_request_is_rejected_without_echoing_the_destination(services: Services) -> None:
    """A request whose number is not E.164 gets a 400 that does not repeat the number."""
    correlation_id = str(uuid.uuid4())
    body = {"type": "otp.delivery_requested", "correlation_id": correlation_id, "package_id": "p",
            "order": 1, "channel": "sms", "destination": "07700 900999"}

    published = await services.otp_dispatch.handle(json.dumps(body).encode(), OTP_REQUESTS)

    rejection = outcome(published, OTP_EVENTS)
    assert rejection["correlation_id"] == correlation_id
    assert (rejection["status"], rejection["code"], rejection["field"]) == (400, "invalid_command", "destination")
    assert b"07700" not in rejection.value
