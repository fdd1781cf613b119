"""Recipient authentication through all four services, as the seeds describe it."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from signgate_contracts import authentication as auth
from signgate_contracts import workflow as wf
from signgate_contracts.topics import BY_NAME
from tests.e2e.conftest import System
from tests.e2e.steps import (
    OWNER_PASSWORD,
    SharedPackage,
    authentication,
    latest_sms_code,
    new_invitation,
    owner_token,
    send,
    shared_package,
    workflow,
)
from tests.support.kafka import correlated
from tests.support.scanning import leaks
from tests.support.waiting import until

ACCESS_CODE = "Acme-7391-Code"
BOB_MOBILE = "+447700900123"


async def alice_as_seen(system: System, shared: SharedPackage, token: str) -> tuple[dict, dict, list]:
    """Recipient 1 as both services see her: settings and status, authentication status, history."""
    package_id = shared.package_id
    described = await send(system, "signgate.workflow.commands", wf.GetRecipientAuthentication(
        package_id=package_id, order=1, access_token=token), answer_on="signgate.workflow.replies", key=package_id)
    status = await authentication(system, auth.GetRecipientAuthenticationStatus(
        package_id=package_id, invitation=shared.invitations[1]),
                                  answer_on="signgate.authentication.replies")
    history = await send(system, "signgate.workflow.commands", wf.GetWorkflowHistory(
        package_id=package_id, access_token=token), answer_on="signgate.workflow.replies", key=package_id)
    for volatile in ("event_id", "occurred_at", "correlation_id", "causation_id"):
        described.pop(volatile), status.pop(volatile)
    return described, status, [e for e in history["entries"] if e.get("order") == 1]


@pytest.fixture
async def package(system: System) -> tuple[SharedPackage, str]:
    """A shared package: Alice (1) opens with an access code (BoldSign's body), Bob (2) with an SMS
    OTP (SigningHub's body)."""
    token = await owner_token(system)
    shared = await shared_package(
        system, token,
        [wf.RecipientSpec(order=1, email="alice@example.com", name="Alice"),
         wf.RecipientSpec(order=2, email="bob@example.com", name="Bob", mobile_number=BOB_MOBILE)],
        {"body": {"accessCode": ACCESS_CODE, "authenticationType": "AccessCode", "emailId": "alice@example.com"}},
        {"order": 2, "body": {"apply_to_all": False, "authentication": {
            "enabled": True, "password": {"enabled": False, "user_password": ""},
            "sms_otp": {"enabled": True, "mobile_number": "00447700900123"}}}},
    )
    return shared, token


async def test_sms_otp_lockout_and_reset_of_one_recipient(system: System, package: tuple[SharedPackage, str],
                                                         caplog: pytest.LogCaptureFixture) -> None:
    """Bob authenticates by SMS OTP, is locked after three wrong codes, is reset by the owner and
    succeeds with a new code, while Alice's settings, status and history stay as they were. Each
    holds only the invitation from their signing link; the reset makes Bob's old one stale, and the
    owner asks for a new one."""
    caplog.set_level(logging.INFO)
    shared, token = package
    package_id, alice, bob = shared.package_id, shared.invitations[1], shared.invitations[2]
    opened = await authentication(system, auth.OpenDocumentWithPassword(package_id=package_id, invitation=alice,
                                                                        password=ACCESS_CODE))
    alice_before = await alice_as_seen(system, shared, token)

    sent = await authentication(system, auth.RequestDocumentOtp(package_id=package_id, invitation=bob))
    first = await authentication(system, auth.VerifyDocumentOtp(package_id=package_id, invitation=bob,
                                                                code=latest_sms_code(system, BOB_MOBILE)))
    await authentication(system, auth.RequestDocumentOtp(package_id=package_id, invitation=bob))
    right = latest_sms_code(system, BOB_MOBILE)
    wrong = [await authentication(system, auth.VerifyDocumentOtp(package_id=package_id, invitation=bob,
                                                                 code=str((int(right) + n) % 10**6).zfill(6)))
             for n in (1, 2, 3)]
    while_locked = await authentication(system, auth.VerifyDocumentOtp(package_id=package_id, invitation=bob, code=right))
    reset = await workflow(system, wf.ResetRecipientAuthentication(package_id=package_id, order=2, access_token=token))
    cleared = await until(lambda: _cleared(system, reset["correlation_id"]), what="the reset reaching authentication")
    stale = await authentication(system, auth.RequestDocumentOtp(package_id=package_id, invitation=bob))
    bob = await new_invitation(system, package_id, 2, token)
    await authentication(system, auth.RequestDocumentOtp(package_id=package_id, invitation=bob))
    after_reset = await authentication(system, auth.VerifyDocumentOtp(package_id=package_id, invitation=bob,
                                                                      code=latest_sms_code(system, BOB_MOBILE)))
    alice_after = await alice_as_seen(system, shared, token)

    assert opened["type"] == "authentication.recipient_authenticated"
    assert (sent["type"], sent["channel"], sent["destination"]) == ("authentication.document_otp_sent", "sms",
                                                                   "+44******0123")
    assert first["type"] == "authentication.recipient_authenticated"
    assert [(w["type"], w.get("attempts_remaining")) for w in wrong] == [
        ("authentication.recipient_authentication_failed", 2),
        ("authentication.recipient_authentication_failed", 1),
        ("authentication.recipient_locked_out", None),
    ]
    assert (while_locked["status"], while_locked["code"]) == (403, "recipient_locked")
    assert reset["type"] == "workflow.recipient_authentication_reset_v2"
    assert cleared["was_locked"] is True
    assert (stale["status"], stale["code"]) == (401, "invitation_not_valid")
    assert after_reset["type"] == "authentication.recipient_authenticated"
    assert alice_after == alice_before

    codes = [json.loads(line)["code"] for line in system.sandbox.read_text().splitlines()]
    published = [r.value.decode() for r in system.watch.records
                 if BY_NAME.get(system.connections.registry_name(r.topic).removesuffix(".dlq")) is not None
                 and (r.topic.endswith(".events") or r.topic.endswith(".dlq"))]
    logged = [logging.getLogger().handlers[0].format(record) for record in caplog.records]
    assert len(codes) >= 3 and len(published) > 20 and logged, "the scan must have something to scan"
    assert leaks(published + logged, [*codes, ACCESS_CODE, OWNER_PASSWORD, token, alice.get_secret_value(), bob.get_secret_value()]) == []


async def _cleared(system: System, correlation_id: str) -> dict[str, Any] | None:
    for record in system.watch.records:
        if record.topic.endswith("authentication.events") and correlated(record, correlation_id):
            body = json.loads(record.value)
            if body["type"] == "authentication.recipient_authentication_cleared":
                return body
    return None
