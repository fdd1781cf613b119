"""The OTP-dispatch service on the real broker and Redis: SMS to the sandbox outbox, email by SMTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from libs.runtime.settings import ConnectionSettings
from libs.security.otp_store import OtpStoreSettings, VerifyOutcome
from services.otp_dispatch.app import OtpDispatchSettings
from services.otp_dispatch.providers.sandbox import read_outbox
from tests.support.otp_dispatch import (
    PEPPER,
    OtpDispatchRun,
    email_request,
    leaked,
    recipient_of,
    running_otp_dispatch,
    sms_request,
)
from tests.support.otp_servers import SmtpSink, code_in, smtp_server, text_body


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[SmtpSink, int]]:
    with smtp_server() as server:
        yield server


@pytest.fixture(scope="module")
def outbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("otp") / "sandbox-outbox.jsonl"


@pytest.fixture(scope="module")
async def run(
    provisioned: ConnectionSettings, smtp: tuple[SmtpSink, int], outbox: Path
) -> AsyncIterator[OtpDispatchRun]:
    settings = OtpDispatchSettings(
        connections=provisioned,
        otp_store=OtpStoreSettings(pepper=PEPPER),
        sms_provider="sandbox",
        email_provider="smtp",
        smtp_port=smtp[1],
        sandbox_outbox=outbox,
        delivery_retry_delay_seconds=0.01,
    )
    async with running_otp_dispatch(settings) as running:
        yield running


def sandbox_codes(outbox: Path, challenge_id: object) -> list[str]:
    return [line["code"] for line in read_outbox(outbox) if line["challenge_id"] == str(challenge_id)]


async def test_an_sms_request_is_sent_masked_and_its_code_verifies(run: OtpDispatchRun, outbox: Path) -> None:
    """A request yields OtpSent with a masked number; the sandbox holds the code, which verifies once."""
    request = sms_request("+447700908899")
    await run.send(request)

    sent = await run.outcome(request)

    assert sent["type"] == "otp.sent"
    assert (sent["destination"], sent["provider"], sent["challenge_id"]) == (
        "+44******8899", "sandbox", str(request.challenge_id)
    )
    assert sent["causation_id"] == str(request.event_id)
    lifetime_after_cooldown = datetime.fromisoformat(sent["expires_at"]) - datetime.fromisoformat(
        sent["resend_available_at"]
    )
    assert lifetime_after_cooldown.total_seconds() == run.settings.code_ttl_seconds - 30
    [code] = sandbox_codes(outbox, request.challenge_id)
    [line] = [entry for entry in read_outbox(outbox) if entry["code"] == code]
    assert len(code) == 6 and line["message_id"] == sent["provider_message_id"]
    verification = await run.store().verify_and_consume(recipient_of(request), code, retry_count=3)
    assert verification.ok


async def test_an_email_request_goes_through_the_smtp_server(
    run: OtpDispatchRun, smtp: tuple[SmtpSink, int]
) -> None:
    """An email request is delivered by SMTP; the code in the mail verifies and the event masks the address.
    The request asks for 8 digits and 10 minutes: the code has the dispatcher's 6 and 5 minutes."""
    sink, _ = smtp
    request = email_request("erin.example@example.com", code_length=8, ttl_seconds=600)
    await run.send(request)

    sent = await run.outcome(request)

    [mail] = sink.to("erin.example@example.com")
    code = code_in(text_body(mail))
    assert (sent["type"], sent["provider"], sent["destination"]) == ("otp.sent", "smtp", "e***@example.com")
    assert sent["provider_message_id"] == mail["Message-ID"].strip("<>")
    assert len(code) == 6
    lifetime_after_cooldown = datetime.fromisoformat(sent["expires_at"]) - datetime.fromisoformat(
        sent["resend_available_at"])
    assert lifetime_after_cooldown.total_seconds() == 300 - run.settings.resend_cooldown_seconds
    assert (await run.store().verify_and_consume(recipient_of(request), code, retry_count=3)).ok


async def test_a_refused_mailbox_yields_delivery_failed_and_no_pending_code(
    run: OtpDispatchRun, smtp: tuple[SmtpSink, int]
) -> None:
    """When the SMTP server refuses the address the caller gets OtpDeliveryFailed and no code is left pending."""
    sink, _ = smtp
    sink.refuse.add("gone@example.com")
    request = email_request("gone@example.com")
    await run.send(request)

    failed = await run.outcome(request)

    assert (failed["type"], failed["reason"], failed["destination"]) == (
        "otp.delivery_failed", "smtp recipient refused 550", "g***@example.com"
    )
    assert (await run.store().status(recipient_of(request))).pending is None


async def test_a_wrong_code_after_delivery_is_counted(run: OtpDispatchRun, outbox: Path) -> None:
    """The service's code and the authentication side's check share one store: a wrong guess counts."""
    request = sms_request("+447700900206")
    await run.send(request)
    await run.outcome(request)
    [code] = sandbox_codes(outbox, request.challenge_id)
    wrong = f"{(int(code) + 1) % 10**6:06d}"

    result = await run.store().verify_and_consume(recipient_of(request), wrong, retry_count=3)

    assert (result.outcome, result.attempts_remaining) == (VerifyOutcome.WRONG, 2)


async def test_no_code_appears_on_any_topic_or_in_any_log_line(
    run: OtpDispatchRun, outbox: Path, smtp: tuple[SmtpSink, int]
) -> None:
    """A secrets scan over every OTP-topic record and log line of this module finds none of the codes it sent."""
    sink, _ = smtp
    requests = [sms_request("+447700900205"), email_request("frank@example.com")]
    await run.send(*requests)
    for request in requests:
        assert (await run.outcome(request))["type"] == "otp.sent"

    codes = [line["code"] for line in read_outbox(outbox)] + [code_in(text_body(m)) for m in sink.messages]
    published = run.everything_published()

    assert len(codes) >= 5 and run.logs.lines  # every code the module sent: SMS, email, the wrong-code one
    assert leaked(codes, published, *run.logs.lines) == []
    assert "+447700900205" in published  # the request itself carries the number in clear ...
    events = [r.value.decode() for r in run.watch.records if r.topic.endswith("otp.events")]
    assert not any("+447700900205" in e or "frank@example.com" in e for e in events)  # ... events never
