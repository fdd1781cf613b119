"""One-time passwords through all services: email by SMTP, expiry, concurrency, and a Redis loss."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest

from signgate_contracts import authentication as auth
from signgate_contracts import encode
from signgate_contracts import workflow as wf
from tests.e2e.conftest import System
from tests.e2e.steps import (
    SharedPackage,
    authentication,
    latest_sms_code,
    owner_token,
    shared_package,
)
from tests.support.kafka import producer
from tests.support.otp_servers import code_in

CAROL = "carol@example.com"
DAVE_MOBILE = "+447700900456"


@pytest.fixture(scope="module")
async def token(system: System) -> str:
    return await owner_token(system)


async def email_otp_package(system: System, token: str, retry_count: int = 3) -> SharedPackage:
    return await shared_package(
        system, token, [wf.RecipientSpec(order=1, email=CAROL, name="Carol")],
        {"body": {"authenticationType": "EmailOTP", "emailId": CAROL, "authenticationRetryCount": retry_count}},
    )


async def sms_otp_package(system: System, token: str) -> SharedPackage:
    return await shared_package(
        system, token, [wf.RecipientSpec(order=1, email="dave@example.com", name="Dave", mobile_number=DAVE_MOBILE)],
        {"body": {"authenticationType": "SMSOTP", "emailId": "dave@example.com",
                  "phoneNumber": {"countryCode": "+44", "number": "7700900456"}}},
    )


async def test_email_otp_is_delivered_by_smtp_and_verified(system: System, token: str) -> None:
    """An EmailOTP recipient receives the code through a real SMTP server and opens with it."""
    shared = await email_otp_package(system, token)
    package_id, holder = shared.package_id, shared.invitations[1]
    before = len(system.smtp.to(CAROL))

    sent = await authentication(system, auth.RequestDocumentOtp(package_id=package_id, email=CAROL, invitation=holder))
    [message] = system.smtp.to(CAROL)[before:]
    opened = await authentication(system, auth.VerifyDocumentOtp(
        package_id=package_id, email=CAROL, invitation=holder, code=code_in(message.get_body(("plain",)).get_content())))

    assert (sent["type"], sent["channel"], sent["destination"]) == (
        "authentication.document_otp_sent", "email", "c***@example.com")
    assert opened["type"] == "authentication.recipient_authenticated"


async def test_a_code_ten_minutes_and_a_second_old_is_refused(system: System, token: str) -> None:
    """A code submitted 10 minutes and 1 second after it was issued does not open the document."""
    shared = await sms_otp_package(system, token)
    package_id, holder = shared.package_id, shared.invitations[1]
    await authentication(system, auth.RequestDocumentOtp(package_id=package_id, invitation=holder))
    code = latest_sms_code(system, DAVE_MOBILE)
    system.clock.advance(timedelta(minutes=10, seconds=1))

    late = await authentication(system, auth.VerifyDocumentOtp(package_id=package_id, invitation=holder, code=code))

    assert (late["type"], late["reason"]) == ("authentication.recipient_authentication_failed", "expired_code")


async def test_a_redis_loss_makes_pending_codes_fail_closed(system: System, token: str) -> None:
    """After Redis forgets everything, a code sent before no longer opens the document."""
    shared = await sms_otp_package(system, token)
    package_id, holder = shared.package_id, shared.invitations[1]
    await authentication(system, auth.RequestDocumentOtp(package_id=package_id, invitation=holder))
    code = latest_sms_code(system, DAVE_MOBILE)
    redis = system.services["authentication"].resources.redis
    assert redis is not None
    await redis.flushdb()

    after = await authentication(system, auth.VerifyDocumentOtp(package_id=package_id, invitation=holder, code=code))

    assert (after["type"], after["reason"]) == ("authentication.recipient_authentication_failed", "no_pending_code")


async def test_a_hundred_concurrent_wrong_codes_count_exactly_the_retry_count(system: System, token: str) -> None:
    """100 wrong codes sent at once to a recipient allowed 3 attempts: two failures, one lockout,
    and 97 refusals — never a fourth counted attempt."""
    shared = await email_otp_package(system, token, retry_count=3)
    package_id, holder = shared.package_id, shared.invitations[1]
    await authentication(system, auth.RequestDocumentOtp(package_id=package_id, invitation=holder))
    guesses = [auth.VerifyDocumentOtp(package_id=package_id, invitation=holder, code=f"{n:06d}") for n in range(100)]
    topic = system.connections.topic("signgate.authentication.commands")
    async with producer(system.connections.kafka_bootstrap) as client:
        sent = [await client.send(topic, encode(g), key=package_id.encode()) for g in guesses]
        await asyncio.gather(*sent)
    ids = {str(g.correlation_id) for g in guesses}
    events = system.connections.topic("signgate.authentication.events")

    outcomes = await system.watch.wait_for(
        lambda r: r.topic == events and json.loads(r.value)["correlation_id"] in ids, count=100, timeout=60)

    kinds = [json.loads(r.value) for r in outcomes]
    assert sum(k["type"] == "authentication.recipient_authentication_failed" for k in kinds) == 2
    assert sum(k["type"] == "authentication.recipient_locked_out" for k in kinds) == 1
    assert sum(k.get("code") == "recipient_locked" for k in kinds) == 97
