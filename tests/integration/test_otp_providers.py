"""Delivery providers against real servers on loopback: a file, an SMTP server, an HTTP gateway."""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest
from pydantic import SecretStr

from services.otp_dispatch.app import OtpDispatchSettings
from services.otp_dispatch.providers import Delivery, DeliveryFailed, deliver_with_retries
from services.otp_dispatch.providers.http_sms import HttpSmsProvider
from services.otp_dispatch.providers.sandbox import SandboxProvider, read_outbox
from services.otp_dispatch.providers.smtp import SmtpProvider
from tests.support.otp_servers import SmsGateway, SmtpSink, basic_auth, free_port, smtp_server

CODE = "482913"
PHONE = "+447700908899"
EXPIRES = datetime(2026, 3, 1, 9, 5, tzinfo=UTC)


def delivery(channel: str = "sms", destination: str = PHONE) -> Delivery:
    return Delivery(
        uuid4(), channel, destination, CODE, f"Your signgate code is {CODE}.", "Your signgate code",
        "document_opening", EXPIRES,
    )


def settings(**fields: object) -> OtpDispatchSettings:
    return OtpDispatchSettings(**({"delivery_timeout_seconds": 2} | fields))


async def retried(provider, item: Delivery, attempts: int = 3):
    return await deliver_with_retries(provider, item, attempts=attempts, first_delay=0, timeout=2)


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[SmtpSink, int]]:
    with smtp_server() as server:
        yield server


@pytest.fixture(scope="module")
def gateway() -> Iterator[SmsGateway]:
    with SmsGateway() as running:
        yield running


@pytest.fixture
async def http_sms() -> AsyncIterator[Callable[..., HttpSmsProvider]]:
    """Makes HTTP SMS providers from settings, and closes their HTTP clients after the test."""
    made: list[HttpSmsProvider] = []

    def make(**fields: object) -> HttpSmsProvider:
        made.append(HttpSmsProvider(settings(**fields)))
        return made[-1]

    yield make
    for provider in made:
        await provider.aclose()


async def test_the_sandbox_appends_the_delivery_with_its_code_to_a_private_file(tmp_path: Path) -> None:
    """Each sandbox delivery is one JSON line holding the code, in a file only its owner can read."""
    outbox = tmp_path / "deep" / "outbox.jsonl"
    provider = SandboxProvider(outbox)

    first = await provider.deliver(delivery())
    await provider.deliver(delivery("email", "alice@example.com"))

    lines = read_outbox(outbox)
    assert [line["code"] for line in lines] == [CODE, CODE]
    assert lines[0]["message_id"] == first.message_id and lines[1]["destination"] == "alice@example.com"
    assert stat.S_IMODE(os.stat(outbox).st_mode) == 0o600


async def test_email_reaches_the_smtp_server_with_the_code_in_the_body_only(smtp: tuple[SmtpSink, int]) -> None:
    """The SMTP provider hands the message to the server; the code is in the body, not the subject."""
    sink, port = smtp
    provider = SmtpProvider(settings(smtp_port=port, smtp_from="signgate <otp@signgate.test>"))

    receipt = await provider.deliver(delivery("email", "carol@example.com"))

    [message] = sink.to("carol@example.com")
    assert CODE in message.get_content() and CODE not in message["Subject"]
    assert message["Message-ID"].strip("<>") == receipt.message_id
    assert receipt.message_id.endswith("@signgate.test")


async def test_a_refused_mailbox_fails_at_once_without_the_code(smtp: tuple[SmtpSink, int]) -> None:
    """A 550 for the address is a permanent failure: one attempt, a reason with the status only."""
    sink, port = smtp
    sink.refuse.add("nobody@example.com")

    with pytest.raises(DeliveryFailed) as failed:
        await retried(SmtpProvider(settings(smtp_port=port)), delivery("email", "nobody@example.com"))

    assert (failed.value.reason, failed.value.transient) == ("smtp recipient refused 550", False)
    assert sink.attempts.count("nobody@example.com") == 1


async def test_a_deferring_smtp_server_is_retried_a_bounded_number_of_times(smtp: tuple[SmtpSink, int]) -> None:
    """A 451 for the address is transient: retried up to the attempts allowed, then failed."""
    sink, port = smtp
    sink.defer.add("later@example.com")

    with pytest.raises(DeliveryFailed, match="451"):
        await retried(SmtpProvider(settings(smtp_port=port)), delivery("email", "later@example.com"))

    assert sink.attempts.count("later@example.com") == 3


async def test_an_smtp_server_that_is_down_is_a_transient_failure() -> None:
    """Nothing listening on the SMTP port fails with the connection error's type, marked transient."""
    with pytest.raises(DeliveryFailed) as failed:
        await SmtpProvider(settings(smtp_port=free_port())).deliver(delivery("email", "dan@example.com"))

    assert failed.value.transient and CODE not in failed.value.reason


async def test_sms_reaches_the_gateway_with_basic_auth(gateway: SmsGateway, http_sms: Callable[..., HttpSmsProvider]) -> None:
    """The HTTP provider POSTs number, sender, text and reference with basic auth, and keeps the gateway's id."""
    provider = http_sms(
        sms_gateway_url=gateway.url, sms_gateway_username="acct", sms_gateway_password=SecretStr("pw"),
    )
    item = delivery(destination="+15555550111")

    receipt = await provider.deliver(item)

    [request] = gateway.to("+15555550111")
    assert request.headers["Authorization"] == basic_auth("acct", "pw")
    assert request.body == {
        "to": "+15555550111", "from": "signgate", "text": item.text, "reference": str(item.challenge_id),
    }
    assert receipt.message_id == f"gw-{len(gateway.requests)}" and receipt.provider == "http_sms"


async def test_sms_gateway_token_goes_as_a_bearer(gateway: SmsGateway, http_sms: Callable[..., HttpSmsProvider]) -> None:
    """With a token set, the provider authenticates with `Authorization: Bearer`."""
    provider = http_sms(sms_gateway_url=gateway.url, sms_gateway_token=SecretStr("tok"))

    await provider.deliver(delivery(destination="+15555550112"))

    assert gateway.to("+15555550112")[0].headers["Authorization"] == "Bearer tok"


async def test_a_gateway_answering_503_is_retried_then_failed(gateway: SmsGateway, http_sms: Callable[..., HttpSmsProvider]) -> None:
    """5xx answers are retried up to the attempts allowed; the reason is the status, never the text."""
    gateway.statuses["+15555550113"] = 503
    provider = http_sms(sms_gateway_url=gateway.url)

    with pytest.raises(DeliveryFailed) as failed:
        await retried(provider, delivery(destination="+15555550113"))

    assert (failed.value.reason, failed.value.transient) == ("http 503", True)
    assert len(gateway.to("+15555550113")) == 3


async def test_a_gateway_refusing_the_number_is_not_retried(gateway: SmsGateway, http_sms: Callable[..., HttpSmsProvider]) -> None:
    """A 400 from the gateway (a number it will not serve) fails after one call."""
    gateway.statuses["+15555550114"] = 400
    provider = http_sms(sms_gateway_url=gateway.url)

    with pytest.raises(DeliveryFailed, match="http 400"):
        await retried(provider, delivery(destination="+15555550114"))

    assert len(gateway.to("+15555550114")) == 1


async def test_a_gateway_that_never_answers_times_out(http_sms: Callable[..., HttpSmsProvider]) -> None:
    """A gateway that accepts the connection and never answers is given up after the timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        provider = http_sms(sms_gateway_url=url, delivery_timeout_seconds=0.3)

        with pytest.raises(DeliveryFailed) as failed:
            await provider.deliver(delivery())

    assert failed.value.transient and "Timeout" in failed.value.reason


def test_the_http_provider_needs_a_gateway_url() -> None:
    """Choosing the HTTP gateway without its URL is a configuration error, found when settings load."""
    with pytest.raises(ValueError, match="SMS_GATEWAY_URL"):
        settings(sms_provider="http")
    with pytest.raises(ValueError, match="SMS_GATEWAY_URL"):
        HttpSmsProvider(settings())
