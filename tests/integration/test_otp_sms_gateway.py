"""The dispatch handler texting through a real HTTP SMS gateway on loopback, on real Redis.

These call the handler directly (the broker path is covered by test_otp_dispatch, whose
service runs in this run's consumer group; a second group member per module would cost a
rebalance each).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from libs.runtime.logging import configure_logging
from libs.runtime.messaging.outgoing import Outgoing
from libs.runtime.service import Scope, build_service
from libs.runtime.settings import ConnectionSettings
from libs.security.otp_store import OtpStoreSettings, VerifyOutcome
from services.otp_dispatch.app import DEFINITION, OtpDispatchSettings, dependencies_for
from services.otp_dispatch.dependencies import OtpDispatchDependencies
from services.otp_dispatch.domain import INTERRUPTED
from services.otp_dispatch.handlers import handle_otp_delivery_requested
from services.otp_dispatch.providers.http_sms import HttpSmsProvider
from signgate_contracts.otp import OtpDeliveryRequested
from tests.support.otp_dispatch import PEPPER, CapturedLogs, leaked, recipient_of, sms_request
from tests.support.otp_servers import SmsGateway, basic_auth, code_in

ATTEMPTS = 3


@pytest.fixture(scope="module")
def gateway() -> Iterator[SmsGateway]:
    with SmsGateway() as running:
        yield running


@pytest.fixture(scope="module")
def logs() -> Iterator[CapturedLogs]:
    configure_logging("INFO", "json", service="otp_dispatch")
    captured = CapturedLogs()
    logging.getLogger().addHandler(captured)
    yield captured
    logging.getLogger().removeHandler(captured)


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


class Dispatcher:
    """The handler with the service's dependencies, as the service runs it for each request."""

    def __init__(self, dependencies: OtpDispatchDependencies) -> None:
        self.dependencies = dependencies
        self.store = dependencies.store

    async def dispatch(self, request: OtpDeliveryRequested) -> list[Outgoing]:
        return await handle_otp_delivery_requested(request, Scope(self.dependencies))


@pytest.fixture
async def dispatcher(
    connections: ConnectionSettings, gateway: SmsGateway, tmp_path_factory: pytest.TempPathFactory, clock: Clock
) -> AsyncIterator[Dispatcher]:
    settings = OtpDispatchSettings(
        clock=clock,
        connections=connections,
        otp_store=OtpStoreSettings(pepper=PEPPER),
        sms_provider="http",
        sms_gateway_url=gateway.url,
        sms_gateway_username="signgate",
        sms_gateway_password=SecretStr("gateway-password"),
        sandbox_outbox=tmp_path_factory.mktemp("otp-gw") / "outbox.jsonl",
        delivery_attempts=ATTEMPTS,
        delivery_retry_delay_seconds=0.01,
        delivery_timeout_seconds=5,
    )
    client = aioredis.Redis.from_url(connections.redis_url)
    dependencies = dependencies_for(settings, client)
    yield Dispatcher(dependencies)
    await dependencies.aclose()
    await client.aclose()


def outcome(outgoing: list[Outgoing]) -> dict:
    [only] = outgoing
    assert only.topic == "signgate.otp.events"
    return json.loads(only.payload)


async def test_an_sms_goes_through_the_gateway_and_its_code_verifies(
    dispatcher: Dispatcher, gateway: SmsGateway, logs: CapturedLogs
) -> None:
    """The gateway receives the number and the text with credentials; the texted code, as long as the
    dispatcher's settings say (a request's own length is not taken), verifies."""
    request = sms_request("+15555550123", code_length=6)
    dispatcher = Dispatcher(dataclasses.replace(dispatcher.dependencies, code_length=9))

    sent = outcome(await dispatcher.dispatch(request))

    [posted] = gateway.to("+15555550123")
    assert posted.headers["Authorization"] == basic_auth("signgate", "gateway-password")
    assert (sent["type"], sent["provider"], sent["destination"]) == ("otp.sent", "http_sms", "+15*****0123")
    assert sent["provider_message_id"] == f"gw-{gateway.requests.index(posted) + 1}"
    code = code_in(posted.body["text"])
    assert len(code) == 9 and posted.body["reference"] == str(request.challenge_id)
    assert (await dispatcher.store.verify_and_consume(recipient_of(request), code, retry_count=3)).ok


async def test_a_gateway_that_is_down_yields_delivery_failed_and_a_withdrawn_code(
    dispatcher: Dispatcher, gateway: SmsGateway, logs: CapturedLogs
) -> None:
    """A gateway answering 503 is tried a bounded number of times; the outcome is OtpDeliveryFailed and the
    code it was given does not verify."""
    gateway.statuses["+15555550124"] = 503
    request = sms_request("+15555550124")

    failed = outcome(await dispatcher.dispatch(request))

    attempts = gateway.to("+15555550124")
    code = code_in(attempts[0].body["text"])
    assert (failed["type"], failed["reason"], failed["provider"]) == ("otp.delivery_failed", "http 503", "http_sms")
    assert len(attempts) == ATTEMPTS
    verification = await dispatcher.store.verify_and_consume(recipient_of(request), code, retry_count=3)
    assert verification.outcome is VerifyOutcome.NO_PENDING


async def test_a_redelivered_request_gets_the_first_outcome_without_a_second_text(
    dispatcher: Dispatcher, gateway: SmsGateway, logs: CapturedLogs
) -> None:
    """Handling one request twice texts once and answers twice with the same event."""
    request = sms_request("+15555550127")

    first = await dispatcher.dispatch(request)
    second = await dispatcher.dispatch(request)

    assert len(gateway.to("+15555550127")) == 1
    assert outcome(first) == outcome(second) and outcome(first)["type"] == "otp.sent"


async def test_a_resend_is_refused_within_the_cooldown_and_sent_after_it(
    dispatcher: Dispatcher, gateway: SmsGateway, clock: Clock, logs: CapturedLogs
) -> None:
    """A second code for one recipient is refused 10 s after the first and texted once the clock passes 30 s."""
    first = sms_request("+15555550129")
    same_recipient = {"package_id": first.package_id, "order": first.order}
    await dispatcher.dispatch(first)

    clock.advance(10)
    refused = outcome(await dispatcher.dispatch(sms_request("+15555550129", **same_recipient)))
    clock.advance(20)
    sent = outcome(await dispatcher.dispatch(sms_request("+15555550129", **same_recipient)))

    assert (refused["status"], refused["retry_after_seconds"]) == (429, 20)
    assert sent["type"] == "otp.sent"
    assert len(gateway.to("+15555550129")) == 2


async def test_a_request_interrupted_after_its_code_was_issued_fails_closed(
    dispatcher: Dispatcher, gateway: SmsGateway, logs: CapturedLogs
) -> None:
    """A redelivery of a request whose handling stopped between issuing and recording the outcome does not
    text again: it withdraws the code and answers OtpDeliveryFailed."""
    request = sms_request("+15555550128")
    await claim_without_settling(dispatcher, request, "135792")

    failed = outcome(await dispatcher.dispatch(request))

    assert (failed["type"], failed["reason"]) == ("otp.delivery_failed", INTERRUPTED)
    assert gateway.to("+15555550128") == []
    verification = await dispatcher.store.verify_and_consume(recipient_of(request), "135792", retry_count=3)
    assert verification.outcome is VerifyOutcome.NO_PENDING


async def claim_without_settling(dispatcher: Dispatcher, request: OtpDeliveryRequested, code: str) -> None:
    """What a crash right after the store step leaves behind."""
    await dispatcher.store.issue(
        request.event_id, recipient_of(request), challenge_id=request.challenge_id, code=code,
        channel="sms", destination=request.destination, ttl=timedelta(minutes=5),
    )


async def test_no_code_sent_through_the_gateway_appears_in_an_outcome_or_a_log_line(
    dispatcher: Dispatcher, gateway: SmsGateway, logs: CapturedLogs
) -> None:
    """A secrets scan over the outcomes and every log line of this module finds none of the gateway's codes."""
    gateway.statuses["+15555550126"] = 500
    outcomes = [
        await dispatcher.dispatch(sms_request("+15555550125")),
        await dispatcher.dispatch(sms_request("+15555550126")),
    ]

    codes = [code_in(posted.body["text"]) for posted in gateway.requests]
    payloads = [o.payload.decode() for result in outcomes for o in result]

    assert len(codes) >= 1 + ATTEMPTS and logs.lines
    assert leaked(codes, *payloads, *logs.lines) == []


async def test_the_dependencies_are_built_once_at_start_and_closed_at_shut_down(
    connections: ConnectionSettings, gateway: SmsGateway, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The service's start-up builds one store and one gateway client for every request, and its
    shut-down closes that client."""
    settings = OtpDispatchSettings(
        connections=connections,
        otp_store=OtpStoreSettings(pepper=PEPPER),
        sms_provider="http",
        sms_gateway_url=gateway.url,
        sandbox_outbox=tmp_path_factory.mktemp("otp-life") / "outbox.jsonl",
    )
    root = logging.getLogger()
    handlers = root.handlers[:]  # building a service configures logging; the module's capture stays
    try:
        service = build_service(DEFINITION, settings)
        await service.open_resources()
        dependencies = service.resources.dependencies
        sms = dependencies.providers["sms"]
        assert isinstance(dependencies, OtpDispatchDependencies) and isinstance(sms, HttpSmsProvider)
        assert dependencies.providers["email"].name == "sandbox"
        sent = outcome(await handle_otp_delivery_requested(sms_request("+15555550130"), Scope(dependencies)))
        assert sent["type"] == "otp.sent" and not sms.client.is_closed

        await service.close_resources()

        assert sms.client.is_closed
    finally:
        root.handlers[:] = handlers
