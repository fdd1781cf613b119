"""Voice codes and delivery fallback through all four services over the broker: the sender's policy,
the recipient's pick, OTP dispatch's own fallback sweep, and the code that opens the document."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from signgate_contracts import authentication as auth
from signgate_contracts import workflow as wf
from tests.e2e.conftest import System
from tests.e2e.steps import SharedPackage, authentication, owner_token, shared_package
from tests.support.kafka import correlated
from tests.support.otp_servers import code_in, text_body
from tests.support.outcomes import answers_to, outcome_findings
from tests.support.system import REFUSED_NUMBERS

CAROL_MOBILE = "+447700900601"
DAN_MOBILE = "+447700900602"
GUS_MOBILE = "+447700900603"
GUS_MAILBOX = "gus@example.com"
"""Gus's mailbox refuses mail (SMTP 550): his text's fallback fails."""


@pytest.fixture
async def package(system: System) -> SharedPackage:
    """Carol (1) and Gus (3) have SMS OTP falling back to email; Dan (2) has SMS OTP without fallback
    (SigningHub's body)."""
    token = await owner_token(system)
    return await shared_package(
        system, token,
        [wf.RecipientSpec(order=1, email="carol@example.com", name="Carol", mobile_number=CAROL_MOBILE),
         wf.RecipientSpec(order=2, email="dan@example.com", name="Dan", mobile_number=DAN_MOBILE),
         wf.RecipientSpec(order=3, email=GUS_MAILBOX, name="Gus", mobile_number=GUS_MOBILE)],
        {"order": 1, "body": {"authentication": {"enabled": True, "sms_otp": {
            "enabled": True, "mobile_number": CAROL_MOBILE, "fallback": ["email"]}}}},
        {"order": 2, "body": {"authentication": {"enabled": True, "sms_otp": {
            "enabled": True, "mobile_number": DAN_MOBILE}}}},
        {"order": 3, "body": {"authentication": {"enabled": True, "sms_otp": {
            "enabled": True, "mobile_number": GUS_MOBILE, "fallback": ["email"]}}}},
    )


def authentication_values(system: System) -> list[bytes]:
    return [r.value for r in system.watch.records if r.topic.endswith("signgate.authentication.events")]


def deliveries(system: System, destination: str) -> list[dict]:
    """What the sandbox delivered to ``destination`` (nothing yet, when it has delivered nothing at all)."""
    lines = system.sandbox.read_text().splitlines() if system.sandbox.exists() else []
    return [d for d in map(json.loads, lines) if d["destination"] == destination]


async def test_a_text_without_a_receipt_falls_back_to_email_and_the_mailed_code_opens(
    system: System, package: SharedPackage
) -> None:
    """Carol's text is sent but never confirmed: the caller's one answer is that it went by text; once the
    receipt timeout passes, OTP dispatch's sweep says it falls back to email, mails her a new code,
    authentication publishes the fact that the code was rerouted to email (no second answer), and the
    mailed code opens the document (the text's does not)."""
    request = auth.RequestDocumentOtp(package_id=package.package_id, invitation=package.invitations[1])
    mails_before = len(system.smtp.to("carol@example.com"))  # the session's other tests mail her too
    texts_before = len(deliveries(system, CAROL_MOBILE))
    first = await authentication(system, request)
    system.clock.advance(timedelta(seconds=61))

    records = await system.watch.wait_for(
        lambda r: r.topic.endswith("authentication.events") and correlated(r, request.correlation_id), count=2)
    steps = {(s["type"], s["channel"]): s for s in map(json.loads, (r.value for r in await system.watch.wait_for(
        lambda r: r.topic.endswith("otp.events") and correlated(r, request.correlation_id), count=3)))}
    [mail] = system.smtp.to("carol@example.com")[mails_before:]
    [text] = deliveries(system, CAROL_MOBILE)[texts_before:]
    mailed_code = code_in(text_body(mail))
    with_text = await authentication(system, auth.VerifyDocumentOtp(
        package_id=package.package_id, invitation=package.invitations[1], code=text["code"]))
    with_mail = await authentication(system, auth.VerifyDocumentOtp(
        package_id=package.package_id, invitation=package.invitations[1], code=mailed_code))

    assert (first["type"], first["channel"]) == ("authentication.document_otp_sent", "sms")
    assert [(json.loads(r.value)["type"], json.loads(r.value)["channel"]) for r in records] == [
        ("authentication.document_otp_sent", "sms"), ("authentication.document_otp_rerouted", "email")]
    assert answers_to(authentication_values(system), request.correlation_id) == ["authentication.document_otp_sent"]
    assert outcome_findings(authentication_values(system), [request.correlation_id]) == []
    assert sorted(steps) == [("otp.fallback_started", "email"), ("otp.sent", "email"), ("otp.sent", "sms")]
    started = steps[("otp.fallback_started", "email")]  # keyed by the text's challenge, the mail by its own
    assert (started["reason"], started["destination"]) == ("no_receipt", "c***@example.com")
    assert with_text["type"] == "authentication.recipient_authentication_failed"
    assert with_mail["type"] == "authentication.recipient_authenticated"


async def test_a_text_without_a_receipt_whose_mail_fails_keeps_its_one_answer(
    system: System, package: SharedPackage
) -> None:
    """Gus's text is sent (the caller's one answer) but never confirmed, and his mailbox refuses the
    fallback's mail: authentication publishes the fact that the code was undelivered, and no
    `command.rejected` follows the success for that command."""
    system.smtp.refuse.add(GUS_MAILBOX)
    request = auth.RequestDocumentOtp(package_id=package.package_id, invitation=package.invitations[3])
    first = await authentication(system, request)
    system.clock.advance(timedelta(seconds=61))

    records = await system.watch.wait_for(
        lambda r: r.topic.endswith("authentication.events") and correlated(r, request.correlation_id), count=2)
    steps = {s["type"]: s for s in map(json.loads, (r.value for r in await system.watch.wait_for(
        lambda r: r.topic.endswith("otp.events") and correlated(r, request.correlation_id), count=3)))}

    assert (first["type"], first["channel"]) == ("authentication.document_otp_sent", "sms")
    assert sorted((s["type"], s["channel"]) for s in steps.values()) == [  # keyed by two challenges
        ("otp.delivery_failed", "email"), ("otp.fallback_started", "email"), ("otp.sent", "sms")]
    assert steps["otp.delivery_failed"]["answered_before"] is True
    assert [(json.loads(r.value)["type"], json.loads(r.value)["destination"]) for r in records] == [
        ("authentication.document_otp_sent", "+44******0603"),
        ("authentication.document_otp_undelivered", "g***@example.com")]
    assert answers_to(authentication_values(system), request.correlation_id) == ["authentication.document_otp_sent"]
    assert outcome_findings(authentication_values(system), [request.correlation_id]) == []
    assert GUS_MAILBOX in system.smtp.attempts and system.smtp.to(GUS_MAILBOX) == []


async def test_a_recipient_picks_a_call_and_its_spoken_code_opens(system: System, package: SharedPackage) -> None:
    """Dan asks for a call: the code goes by voice (no fallback step), the caller is told so, and the code
    read out opens the document."""
    request = auth.RequestDocumentOtp(package_id=package.package_id, invitation=package.invitations[2],
                                      channel="voice")

    sent = await authentication(system, request)
    [call] = deliveries(system, DAN_MOBILE)
    opened = await authentication(system, auth.VerifyDocumentOtp(
        package_id=package.package_id, invitation=package.invitations[2], code=call["code"]))

    assert (sent["type"], sent["channel"], sent["destination"]) == (
        "authentication.document_otp_sent", "voice", "+44******0602")
    assert call["channel"] == "voice" and ", ".join(call["code"]) in call["text"]
    assert opened["type"] == "authentication.recipient_authenticated"


@pytest.fixture
async def refused(system: System) -> SharedPackage:
    """Erin (1) and Fay (2), whose numbers the gateway refuses to text: Erin's policy falls back to voice,
    Fay's has no fallback."""
    token = await owner_token(system)
    erin, fay = REFUSED_NUMBERS
    return await shared_package(
        system, token,
        [wf.RecipientSpec(order=1, email="erin@example.com", name="Erin", mobile_number=erin),
         wf.RecipientSpec(order=2, email="fay@example.com", name="Fay", mobile_number=fay)],
        {"order": 1, "body": {"authentication": {"enabled": True, "sms_otp": {
            "enabled": True, "mobile_number": erin, "fallback": ["voice"]}}}},
        {"order": 2, "body": {"authentication": {"enabled": True, "sms_otp": {
            "enabled": True, "mobile_number": fay}}}},
    )


async def test_a_refused_text_falls_back_to_a_call_at_once(system: System, refused: SharedPackage) -> None:
    """The gateway refuses Erin's text: the caller's one answer is that the code went by voice, the call's
    code opens the document."""
    erin = REFUSED_NUMBERS[0]
    request = auth.RequestDocumentOtp(package_id=refused.package_id, invitation=refused.invitations[1])

    sent = await authentication(system, request)
    [call] = deliveries(system, erin)
    opened = await authentication(system, auth.VerifyDocumentOtp(
        package_id=refused.package_id, invitation=refused.invitations[1], code=call["code"]))

    assert (sent["type"], sent["channel"], sent["destination"]) == (
        "authentication.document_otp_sent", "voice", "+44******0961")
    assert answers_to(authentication_values(system), request.correlation_id) == ["authentication.document_otp_sent"]
    assert outcome_findings(authentication_values(system), [request.correlation_id]) == []
    assert call["channel"] == "voice"
    assert opened["type"] == "authentication.recipient_authenticated"


async def test_a_refused_text_without_fallback_is_the_failure_and_nothing_else(
    system: System, refused: SharedPackage
) -> None:
    """Fay's policy has no fallback: her refused text answers the caller with the delivery failure, and no
    call or mail is made."""
    fay = REFUSED_NUMBERS[1]
    request = auth.RequestDocumentOtp(package_id=refused.package_id, invitation=refused.invitations[2])

    failed = await authentication(system, request)
    steps = [json.loads(r.value)["type"] for r in await system.watch.wait_for(
        lambda r: r.topic.endswith("otp.events") and correlated(r, request.correlation_id))]

    assert (failed["type"], failed["status"], failed["code"]) == ("command.rejected", 500, "otp_delivery_failed")
    assert steps == ["otp.delivery_failed"]  # with any fallback step, published in the same batch
    assert deliveries(system, fay) == [] and system.smtp.to("fay@example.com") == []
