"""A recipient's code by voice and by fallback through workflow, authentication and OTP dispatch without
a broker: the sender's policy says where a failed text falls back to (sealed where it is an address), the
recipient picks sms or voice, and the events say each step with destinations masked."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from libs.runtime.messaging.outgoing import Outgoing
from services.authentication.app import DEFINITION as AUTHENTICATION
from services.otp_dispatch.app import DEFINITION as OTP_DISPATCH
from services.otp_dispatch.handlers import run_due_fallbacks
from services.workflow.app import DEFINITION as WORKFLOW
from signgate_contracts import Command
from signgate_contracts import authentication as auth
from signgate_contracts import workflow as wf
from signgate_contracts.envelope import Secret
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
from tests.support.outcomes import answers_to, outcome_findings
from tests.support.scanning import bus_findings

pytestmark = ON_SERVER_AND_CLUSTER

BOB, CAROL, DAVE = "+447700900401", "+447700900402", "+447700900403"


@dataclass
class Services:
    workflow: ComponentService
    authentication: ComponentService
    otp_dispatch: ComponentService
    sandbox: Path
    stack: ComponentStack
    clock: MovableClock
    records: list[Published]

    async def to_workflow(self, command: Command) -> list[Published]:
        published = await self.workflow.handle(command)
        self.records += published
        self.records += await self.authentication.handle_published(on(published, WORKFLOW_EVENTS))
        return published

    async def to_authentication(self, command: Command) -> tuple[list[Published], list[Published]]:
        """What OTP dispatch published for the command's request, and authentication's events after."""
        published = await self.authentication.handle(command)
        self.records += published
        answers: list[Published] = []
        if requests := on(published, OTP_REQUESTS):
            answers = on(await self.otp_dispatch.handle_published(requests), OTP_EVENTS)
            published = await self.authentication.handle_published(answers)
            self.records += answers + published
        return answers, on(published, AUTHENTICATION_EVENTS)

    def deliveries(self) -> list[dict[str, Any]]:
        if not self.sandbox.exists():
            return []
        return [json.loads(line) for line in self.sandbox.read_text().splitlines()]


@pytest.fixture(scope="module")
async def services(stack: ComponentStack) -> AsyncIterator[Services]:
    """The three services; the sandbox refuses every text (a gateway that is down)."""
    clock = MovableClock()
    sandbox = stack.workdir / f"sandbox-{uuid.uuid4().hex[:6]}.jsonl"
    async with (
        stack.service(WORKFLOW) as workflow,
        stack.service(AUTHENTICATION, clock=clock) as authentication,
        stack.service(OTP_DISPATCH, clock=clock, sandbox_outbox=sandbox, sandbox_refuse_channels=["sms"],
                      resend_cooldown_seconds=0, delivery_retry_delay_seconds=0.01) as otp_dispatch,
    ):
        yield Services(workflow, authentication, otp_dispatch, sandbox, stack, clock, [])


def sms_otp(order: int, number: str, fallback: list[str] | None = None) -> dict[str, Any]:
    """SigningHub's body turning on SMS OTP for one recipient, with a fallback if given."""
    setting: dict[str, Any] = {"enabled": True, "mobile_number": number}
    if fallback is not None:
        setting["fallback"] = fallback
    return {"order": order, "body": {"authentication": {"enabled": True, "sms_otp": setting}}}


async def shared_package(services: Services) -> tuple[str, dict[int, Secret]]:
    """Bob (1) falls back to voice then email; Carol (2) has no fallback; Dave (3) falls back to email only;
    Erin (4) gets her code by email (BoldSign's EmailOTP)."""
    token = services.stack.token_issuer().issue(str(uuid.uuid4()), "owner").token
    package_id = f"pkg-{uuid.uuid4().hex[:8]}"
    people = [(1, "bob", BOB), (2, "carol", CAROL), (3, "dave", DAVE), (4, "erin", None)]
    commands: list[Command] = [
        wf.RegisterPackage(
            package_id=package_id, name="Lease", access_token=token,
            documents=[wf.DocumentSpec(document_id="doc-1", name="lease.pdf")],
            recipients=[wf.RecipientSpec(order=order, email=f"{name}@example.com", name=name.title(),
                                         mobile_number=number) for order, name, number in people]),
        *(wf.UpdateRecipientAuthentication.model_validate({"package_id": package_id, "access_token": token,
                                                           **body})
          for body in (sms_otp(1, BOB, ["voice", "email"]), sms_otp(2, CAROL), sms_otp(3, DAVE, ["email"]))),
        wf.AddAuthentication.model_validate({"package_id": package_id, "access_token": token, "body": {
            "authenticationType": "EmailOTP", "emailId": "erin@example.com"}}),
    ]
    for command in commands:
        [event, *_] = on(await services.to_workflow(command), WORKFLOW_EVENTS)
        assert event.type != "command.rejected", event.document
    reply = outcome(await services.to_workflow(wf.ShareWorkflow(package_id=package_id, access_token=token)),
                    WORKFLOW_REPLIES)
    return package_id, {item["order"]: Secret(item["invitation"]) for item in reply["invitations"]}


@pytest.fixture(scope="module")
async def package(services: Services) -> tuple[str, dict[int, Secret]]:
    return await shared_package(services)


async def test_a_refused_text_falls_back_to_a_call_whose_code_opens_the_document(
    services: Services, package: tuple[str, dict[int, Secret]]
) -> None:
    """Bob's text is refused: OTP dispatch says it falls back from sms to voice, the call is made,
    authentication tells the caller the code went by voice (the request's one answer), and the spoken
    code opens the document."""
    package_id, invitations = package
    request = auth.RequestDocumentOtp(package_id=package_id, invitation=invitations[1])

    answers, events = await services.to_authentication(request)
    [call] = [d for d in services.deliveries() if d["destination"] == BOB]
    _, opened = await services.to_authentication(
        auth.VerifyDocumentOtp(package_id=package_id, invitation=invitations[1], code=call["code"]))

    assert [(a.type, a.get("from_channel"), a["channel"]) for a in answers] == [
        ("otp.fallback_started", "sms", "voice"), ("otp.sent", None, "voice")]
    assert answers[0]["destination"] == "+44******0401"
    assert [(e.type, e.get("channel")) for e in events] == [("authentication.document_otp_sent", "voice")]
    assert answers[1].get("answered_before") is False  # the request's one answer, not a fact after it
    assert outcome_findings(authentication_values(services), [request.correlation_id]) == []
    assert call["channel"] == "voice"
    assert [e.type for e in opened] == ["authentication.recipient_authenticated"]


async def test_a_recipient_without_fallback_gets_the_failure_and_nothing_else(
    services: Services, package: tuple[str, dict[int, Secret]]
) -> None:
    """Carol's policy has no fallback: her refused text is OtpDeliveryFailed, the caller gets the failure,
    and no call or email goes out."""
    package_id, invitations = package

    answers, events = await services.to_authentication(
        auth.RequestDocumentOtp(package_id=package_id, invitation=invitations[2]))

    assert [a.type for a in answers] == ["otp.delivery_failed"]
    assert [(e.type, e["code"]) for e in events] == [("command.rejected", "otp_delivery_failed")]
    assert [d for d in services.deliveries() if d["destination"] in (CAROL, "carol@example.com")] == []


async def test_a_text_falls_back_to_the_recipients_email_sealed_on_the_way(
    services: Services, package: tuple[str, dict[int, Secret]]
) -> None:
    """Dave's policy falls back to email only: the refused text goes to his email on the package, which
    crossed workflow's events topic sealed (no address in clear on any events topic)."""
    package_id, invitations = package

    answers, _ = await services.to_authentication(
        auth.RequestDocumentOtp(package_id=package_id, invitation=invitations[3]))

    assert [(a.type, a["channel"], a["destination"]) for a in answers] == [
        ("otp.fallback_started", "email", "d***@example.com"), ("otp.sent", "email", "d***@example.com")]
    assert [d["channel"] for d in services.deliveries() if d["destination"] == "dave@example.com"] == ["email"]
    events_topics = [r for r in services.records if r.topic.endswith(".events")]
    assert bus_findings(events_topics, lambda topic: "events", "signgate.replies.") == []


async def test_the_recipient_picks_voice_and_a_channel_the_policy_does_not_allow_is_refused(
    services: Services, package: tuple[str, dict[int, Secret]]
) -> None:
    """Carol asks for a call (her number allows sms and voice) and gets one, with no fallback step; Erin,
    whose code goes by email, asking for a call is refused with 400."""
    package_id, invitations = package

    answers, events = await services.to_authentication(
        auth.RequestDocumentOtp(package_id=package_id, invitation=invitations[2], channel="voice"))
    _, refused = await services.to_authentication(
        auth.RequestDocumentOtp(package_id=package_id, invitation=invitations[4], channel="voice"))

    assert [(a.type, a["channel"]) for a in answers] == [("otp.sent", "voice")]
    assert [(e.type, e["channel"], e["destination"]) for e in events] == [
        ("authentication.document_otp_sent", "voice", "+44******0402")]
    assert [(r.type, r["status"], r["code"], r["field"]) for r in refused] == [
        ("command.rejected", 400, "otp_channel_not_allowed", "channel")]


@dataclass
class NoReceipt:
    """A text sent by an OTP dispatch whose texts are never confirmed, then its receipt timeout passed
    and the sweep run: what each service published at each step."""

    sent: list[Published]
    answered: list[Published]
    swept_early: int
    swept_late: int
    swept: list[Published]
    after: list[Published]
    deliveries: list[dict[str, Any]]


async def text_not_confirmed(services: Services, command: Command, **otp_settings: Any) -> NoReceipt:
    """Hand ``command``'s request to an OTP dispatch (with ``otp_settings``) whose texts are never
    confirmed, its outcome to authentication; sweep before and after the receipt timeout, publishing
    as the service does, and hand the sweep's events to authentication."""
    sandbox = services.stack.workdir / f"receipts-{uuid.uuid4().hex[:6]}.jsonl"
    async with services.stack.service(
        OTP_DISPATCH, clock=services.clock, sandbox_outbox=sandbox, sandbox_sms_receipts="never",
        receipt_timeout_seconds=60, resend_cooldown_seconds=0, delivery_retry_delay_seconds=0.01, **otp_settings,
    ) as otp_dispatch:
        resources = otp_dispatch.service.resources

        async def publish(outgoing: list[Outgoing]) -> None:
            for message in outgoing:
                await resources.publisher.publish(message)

        requested = await services.authentication.handle(command)
        sent = on(await otp_dispatch.handle_published(on(requested, OTP_REQUESTS)), OTP_EVENTS)
        answered = on(await services.authentication.handle_published(sent), AUTHENTICATION_EVENTS)
        early = await run_due_fallbacks(resources.dependencies, publish)
        services.clock.advance(timedelta(seconds=61))
        start = len(otp_dispatch.recorder.records)
        late = await run_due_fallbacks(resources.dependencies, publish)
        swept = on(otp_dispatch.recorder.records[start:], OTP_EVENTS)
    after = on(await services.authentication.handle_published(swept), AUTHENTICATION_EVENTS)
    services.records += requested + sent + answered + swept + after
    deliveries = [json.loads(line) for line in sandbox.read_text().splitlines()] if sandbox.exists() else []
    return NoReceipt(sent, answered, early, late, swept, after, deliveries)


def authentication_values(services: Services) -> list[bytes]:
    return [r.value for r in on(services.records, AUTHENTICATION_EVENTS)]


async def test_a_text_whose_receipt_never_comes_falls_back_to_a_call_that_opens_the_document(
    services: Services, package: tuple[str, dict[int, Secret]]
) -> None:
    """With a gateway that takes texts but never confirms them, Bob's text is sent and answers the caller;
    nothing moves before the receipt timeout; after it the sweep calls him, which authentication tells as
    the fact that the code was rerouted (no second answer), and the code read out opens the document while
    the text's no longer does."""
    package_id, invitations = package
    request = auth.RequestDocumentOtp(package_id=package_id, invitation=invitations[1])

    run = await text_not_confirmed(services, request)
    text, call = (next(d for d in run.deliveries if d["channel"] == channel) for channel in ("sms", "voice"))
    _, with_text = await services.to_authentication(
        auth.VerifyDocumentOtp(package_id=package_id, invitation=invitations[1], code=text["code"]))
    _, with_call = await services.to_authentication(
        auth.VerifyDocumentOtp(package_id=package_id, invitation=invitations[1], code=call["code"]))

    assert ([s.type for s in run.sent], run.sent[0]["channel"], run.swept_early, run.swept_late) == (
        ["otp.sent"], "sms", 0, 1)
    assert [(s.type, s["channel"], s.get("answered_before")) for s in run.swept] == [
        ("otp.fallback_started", "voice", None), ("otp.sent", "voice", True)]
    assert (run.swept[0]["reason"], run.swept[1]["fallback_of"]) == ("no_receipt", str(run.sent[0]["challenge_id"]))
    assert [(e.type, e["channel"]) for e in run.answered] == [("authentication.document_otp_sent", "sms")]
    assert [(e.type, e["channel"], e["destination"], e["reason"]) for e in run.after] == [
        ("authentication.document_otp_rerouted", "voice", "+44******0401", "no_receipt")]
    assert run.after[0]["correlation_id"] == str(request.correlation_id)
    assert answers_to(authentication_values(services), request.correlation_id) == ["authentication.document_otp_sent"]
    assert outcome_findings(authentication_values(services), [request.correlation_id]) == []
    assert [e.type for e in with_text] == ["authentication.recipient_authentication_failed"]
    assert [e.type for e in with_call] == ["authentication.recipient_authenticated"]


async def test_a_text_whose_receipt_never_comes_and_whose_fallbacks_fail_is_a_fact_not_a_rejection(
    services: Services, package: tuple[str, dict[int, Secret]]
) -> None:
    """Bob's text is sent and answers the caller; after the receipt timeout the call and then the email are
    refused: OTP dispatch marks the last failure answered before, and authentication publishes that the code
    was undelivered instead of a 500 after the success, so the command keeps its one answer."""
    package_id, invitations = package
    request = auth.RequestDocumentOtp(package_id=package_id, invitation=invitations[1])

    run = await text_not_confirmed(  # Bob has had his five codes of the day in this module: room for more
        services, request, sandbox_refuse_channels=["voice", "email"], max_sends_per_recipient=20)

    assert [(s.type, s["channel"], s.get("reason"), s.get("answered_before")) for s in run.swept] == [
        ("otp.fallback_started", "voice", "no_receipt", None),
        ("otp.fallback_started", "email", "provider_refused", None),
        ("otp.delivery_failed", "email", "sandbox refused", True)]
    assert [(e.type, e["channel"]) for e in run.answered] == [("authentication.document_otp_sent", "sms")]
    assert [(e.type, e["channel"], e["destination"]) for e in run.after] == [
        ("authentication.document_otp_undelivered", "email", "b***@example.com")]
    assert answers_to(authentication_values(services), request.correlation_id) == ["authentication.document_otp_sent"]
    assert outcome_findings(authentication_values(services), [request.correlation_id]) == []
