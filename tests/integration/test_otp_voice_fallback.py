"""Voice codes and delivery-aware fallback: the dispatch handler and the fallback sweep on real Redis,
with a real HTTP gateway stand-in on loopback for texts and calls, and the sandbox.

These call the handler and the sweep directly, with a clock the test moves (the receipt timeout
passes without waiting); test_otp_dispatch runs the same through the broker and the service's own
sweep.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from libs.runtime.messaging.outgoing import Outgoing
from libs.runtime.service import Resources, Scope
from libs.runtime.settings import ConnectionSettings
from libs.security.otp_store import OtpStoreSettings, VerifyOutcome
from services.otp_dispatch.app import OtpDispatchSettings, dependencies_for
from services.otp_dispatch.dependencies import OtpDispatchDependencies
from services.otp_dispatch.handlers import handle_otp_delivery_requested, run_due_fallbacks
from services.otp_dispatch.message_templates import load_message_templates
from services.otp_dispatch.providers.sandbox import read_outbox
from services.otp_dispatch.receipts import PATH, receipt_routes, receipt_signature
from signgate_contracts.otp import FallbackStep, OtpDeliveryRequested
from tests.support.otp_dispatch import PEPPER, leaked, recipient_of, sms_request
from tests.support.otp_servers import SmsGateway, code_in, spoken_code_in
from tests.support.scanning import bus_findings

RECEIPT_SECRET = "receipt-secret-for-tests"


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclasses.dataclass
class Published:
    """What the dispatcher published, as records a scan reads."""

    topic: str
    key: bytes
    value: bytes


class Dispatcher:
    """The handler and the sweep with one set of the service's dependencies (one replica)."""

    def __init__(
        self, dependencies: OtpDispatchDependencies, settings: OtpDispatchSettings
    ) -> None:
        self.dependencies = dependencies
        self.settings = settings
        self.store = dependencies.store
        self.published: list[Outgoing] = []

    async def dispatch(self, request: OtpDeliveryRequested) -> list[dict[str, Any]]:
        outgoing = await handle_otp_delivery_requested(request, Scope(self.dependencies))
        self.published += outgoing
        return [json.loads(o.payload) for o in outgoing]

    async def sweep(self) -> list[dict[str, Any]]:
        """One sweep of due fallbacks; what it published."""
        swept: list[Outgoing] = []

        async def publish(outgoing: list[Outgoing]) -> None:
            swept.extend(outgoing)

        await run_due_fallbacks(self.dependencies, publish)
        self.published += swept
        return [json.loads(o.payload) for o in swept]

    def records(self) -> list[Published]:
        return [Published(o.topic, o.key.encode(), o.payload) for o in self.published]


@pytest.fixture(scope="module")
def gateway() -> AsyncIterator[SmsGateway]:
    with SmsGateway() as running:
        yield running


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def make(
    connections: ConnectionSettings, gateway: SmsGateway, tmp_path: Path, clock: Clock
) -> AsyncIterator[Callable[..., Dispatcher]]:
    """Makes dispatchers (replicas) on one Redis and one sandbox outbox, from settings overrides; each
    test's keys under a prefix of its own, so no test sweeps another's fallbacks."""
    clients: list[aioredis.Redis] = []
    made: list[Dispatcher] = []
    connections = connections.model_copy(
        update={"redis_prefix": f"{connections.redis_prefix}{uuid.uuid4().hex[:8]}:"}
    )

    def build(**fields: Any) -> Dispatcher:
        settings = OtpDispatchSettings(
            **(
                {
                    "clock": clock,
                    "connections": connections,
                    "otp_store": OtpStoreSettings(pepper=PEPPER),
                    "sandbox_outbox": tmp_path / "outbox.jsonl",
                    "delivery_retry_delay_seconds": 0.01,
                    "delivery_timeout_seconds": 5,
                    "receipt_timeout_seconds": 30,
                    "resend_cooldown_seconds": 30,
                }
                | fields
            )
        )
        client = aioredis.Redis.from_url(connections.redis_url)
        clients.append(client)
        made.append(Dispatcher(dependencies_for(settings, client), settings))
        return made[-1]

    yield build
    for dispatcher in made:
        await dispatcher.dependencies.aclose()
    for client in clients:
        await client.aclose()


def outbox_for(dispatcher: Dispatcher, challenge_id: object) -> list[dict[str, Any]]:
    return [
        line
        for line in read_outbox(dispatcher.settings.sandbox_outbox)
        if line["challenge_id"] == str(challenge_id)
    ]


def voice_request(number: str, **fields: Any) -> OtpDeliveryRequested:
    return sms_request(number, channel="voice", **fields)


def with_fallback(number: str, *steps: tuple[str, str]) -> OtpDeliveryRequested:
    return sms_request(number, fallback=[FallbackStep(channel=c, destination=d) for c, d in steps])


async def verifies(
    dispatcher: Dispatcher, request: OtpDeliveryRequested, code: str
) -> VerifyOutcome:
    result = await dispatcher.store.verify_and_consume(recipient_of(request), code, retry_count=3)
    return result.outcome


def test_the_spoken_text_reads_the_code_digit_by_digit() -> None:
    """The call's text (the shipped English template) spells the code one digit at a time, twice,
    with its lifetime; it is not a number."""
    templates = load_message_templates("en", "signgate")
    text = templates.render("voice", "document_opening", code="048213", ttl=timedelta(minutes=5)).text

    assert text.count("0, 4, 8, 2, 1, 3") == 2
    assert "048213" not in text and "expires in 5 minutes" in text
    assert spoken_code_in(text) == "048213"


async def test_a_voice_code_on_the_sandbox_is_spoken_and_verifies(
    make: Callable[..., Dispatcher],
) -> None:
    """A voice request is handed to the sandbox with the spelt-out text; OtpSent names the voice channel
    and the masked number, and the spoken code verifies once."""
    dispatcher = make()
    request = voice_request("+447700900301")

    [sent] = await dispatcher.dispatch(request)

    [line] = outbox_for(dispatcher, request.challenge_id)
    assert (sent["type"], sent["channel"], sent["provider"], sent["destination"]) == (
        "otp.sent",
        "voice",
        "sandbox",
        "+44******0301",
    )
    assert line["channel"] == "voice" and spoken_code_in(line["text"]) == line["code"]
    assert await verifies(dispatcher, request, line["code"]) is VerifyOutcome.OK


async def test_a_voice_code_goes_through_the_http_voice_gateway(
    make: Callable[..., Dispatcher], gateway: SmsGateway
) -> None:
    """The voice gateway gets the number, the caller id, the spoken text and the reference with the
    bearer token; the call id it answers is the provider message id, and the code read out verifies."""
    dispatcher = make(
        voice_provider="http",
        voice_gateway_url=gateway.call_url,
        voice_gateway_token=SecretStr("voice-token"),
        voice_caller_id="+15550100000",
    )
    request = voice_request("+15555550301")

    [sent] = await dispatcher.dispatch(request)

    [call] = gateway.to("+15555550301", "/v1/calls")
    assert call.headers["Authorization"] == "Bearer voice-token"
    assert (call.body["from"], call.body["reference"], call.body["language"]) == (
        "+15550100000",
        str(request.challenge_id),
        "en",
    )
    assert (sent["provider"], sent["provider_message_id"]) == (
        "http_voice",
        f"gw-{gateway.requests.index(call) + 1}",
    )
    assert (
        await verifies(dispatcher, request, spoken_code_in(call.body["text"])) is VerifyOutcome.OK
    )


async def test_a_voice_gateway_that_is_down_fails_the_delivery(
    make: Callable[..., Dispatcher], gateway: SmsGateway
) -> None:
    """A voice gateway answering 503 is retried within bounds, then OtpDeliveryFailed; the code is withdrawn."""
    dispatcher = make(voice_provider="http", voice_gateway_url=gateway.call_url + "/down")
    gateway.path_statuses["/v1/calls/down"] = 503
    request = voice_request("+15555550302")

    [failed] = await dispatcher.dispatch(request)

    calls = gateway.to("+15555550302")
    assert (failed["type"], failed["reason"], failed["provider"]) == (
        "otp.delivery_failed",
        "http 503",
        "http_voice",
    )
    assert len(calls) == dispatcher.settings.delivery_attempts
    code = spoken_code_in(calls[0].body["text"])
    assert await verifies(dispatcher, request, code) is VerifyOutcome.NO_PENDING


async def test_a_refused_sms_falls_back_to_a_voice_call(
    make: Callable[..., Dispatcher], gateway: SmsGateway
) -> None:
    """The SMS gateway refuses the text: the step to voice is published (masked), then the call's OtpSent;
    the text's code is withdrawn and the code read out verifies."""
    dispatcher = make(sms_provider="http", sms_gateway_url=gateway.url)
    gateway.statuses["+15555550303"] = 503
    request = with_fallback("+15555550303", ("voice", "+15555550303"))

    started, sent = await dispatcher.dispatch(request)

    assert (started["type"], started["from_channel"], started["channel"], started["reason"]) == (
        "otp.fallback_started",
        "sms",
        "voice",
        "provider_refused",
    )
    assert started["failed_challenge_id"] == str(request.challenge_id)
    assert (
        started["destination"] == "+15*****0303" and started["challenge_id"] == sent["challenge_id"]
    )
    assert (sent["type"], sent["channel"], sent["provider"]) == ("otp.sent", "voice", "sandbox")
    assert (sent["fallback_of"], sent["fallback_reason"], sent["answered_before"]) == (
        str(request.challenge_id),
        "provider_refused",
        False,
    )  # nothing answered the request before: the call's code is its one outcome
    text_code = code_in(gateway.to("+15555550303")[0].body["text"])
    [call] = outbox_for(dispatcher, sent["challenge_id"])
    assert await verifies(dispatcher, request, text_code) in (
        VerifyOutcome.WRONG,
        VerifyOutcome.NO_PENDING,
    )
    assert await verifies(dispatcher, request, call["code"]) is VerifyOutcome.OK


async def test_a_failed_call_falls_back_again_to_the_email(make: Callable[..., Dispatcher]) -> None:
    """Voice refused after SMS: each step is an event, in order, and the email's code is the one that verifies."""
    dispatcher = make(sandbox_refuse_channels=["sms", "voice"])
    request = with_fallback(
        "+447700900304", ("voice", "+447700900304"), ("email", "grace@example.com")
    )

    to_voice, to_email, sent = await dispatcher.dispatch(request)

    assert [
        (e["type"], e.get("from_channel"), e["channel"]) for e in (to_voice, to_email, sent)
    ] == [
        ("otp.fallback_started", "sms", "voice"),
        ("otp.fallback_started", "voice", "email"),
        ("otp.sent", None, "email"),
    ]
    assert to_email["destination"] == "g***@example.com"
    assert (sent["fallback_of"], sent["answered_before"]) == (to_voice["challenge_id"], False)
    [mail] = outbox_for(dispatcher, sent["challenge_id"])
    assert mail["destination"] == "grace@example.com"
    assert await verifies(dispatcher, request, mail["code"]) is VerifyOutcome.OK


async def test_a_recipient_without_fallback_gets_the_failure_and_nothing_else(
    make: Callable[..., Dispatcher],
) -> None:
    """A refused SMS whose request names no fallback is OtpDeliveryFailed alone: no call, no email, nothing scheduled."""
    dispatcher = make(sandbox_refuse_channels=["sms"])
    request = sms_request("+447700900305")

    outcomes = await dispatcher.dispatch(request)
    dispatcher.dependencies.clock.advance(3600)  # type: ignore[attr-defined]

    assert [o["type"] for o in outcomes] == ["otp.delivery_failed"]
    assert await dispatcher.sweep() == []
    assert read_outbox(dispatcher.settings.sandbox_outbox) == []


async def test_a_redelivered_refused_request_repeats_its_events_without_a_second_call(
    make: Callable[..., Dispatcher],
) -> None:
    """The same request handled again publishes the same step and outcome and sends nothing more."""
    dispatcher = make(sandbox_refuse_channels=["sms"])
    request = with_fallback("+447700900306", ("voice", "+447700900306"))

    first = await dispatcher.dispatch(request)
    again = await dispatcher.dispatch(request)

    assert [o["type"] for o in first] == ["otp.fallback_started", "otp.sent"]
    assert again == first
    assert len(read_outbox(dispatcher.settings.sandbox_outbox)) == 1


async def test_a_text_without_a_receipt_falls_back_once_the_timeout_passes(
    make: Callable[..., Dispatcher], clock: Clock
) -> None:
    """A text the sandbox never confirms is OtpSent (the request's outcome); nothing moves before the
    receipt timeout; after it the sweep publishes the step (no_receipt) and the call's OtpSent, marked
    answered before (a fact, not a second outcome), the text's code no longer verifies, and a second sweep
    finds nothing."""
    dispatcher = make(sandbox_sms_receipts="never")
    request = with_fallback("+447700900307", ("voice", "+447700900307"))

    [sent] = await dispatcher.dispatch(request)
    [text] = outbox_for(dispatcher, request.challenge_id)
    clock.advance(29)
    early = await dispatcher.sweep()
    clock.advance(2)
    started, called = await dispatcher.sweep()

    assert sent["type"] == "otp.sent" and early == []
    assert (started["type"], started["reason"], started["from_channel"], called["channel"]) == (
        "otp.fallback_started",
        "no_receipt",
        "sms",
        "voice",
    )
    assert started["correlation_id"] == called["correlation_id"] == str(request.correlation_id)
    assert sent["answered_before"] is False and sent["fallback_of"] is None
    assert (called["fallback_of"], called["fallback_reason"], called["answered_before"]) == (
        str(request.challenge_id),
        "no_receipt",
        True,
    )
    [call] = outbox_for(dispatcher, called["challenge_id"])
    assert await verifies(dispatcher, request, text["code"]) is not VerifyOutcome.OK
    assert await verifies(dispatcher, request, call["code"]) is VerifyOutcome.OK
    assert await dispatcher.sweep() == []


async def test_two_replicas_sweeping_at_once_fall_back_once(
    make: Callable[..., Dispatcher], clock: Clock
) -> None:
    """Two replicas sweep the same overdue receipt together: one call is made and one step published."""
    first, second = make(sandbox_sms_receipts="never"), make(sandbox_sms_receipts="never")
    request = with_fallback("+447700900308", ("voice", "+447700900308"))
    await first.dispatch(request)
    clock.advance(31)

    swept = await asyncio.gather(first.sweep(), second.sweep(), first.sweep(), second.sweep())

    events = [e for batch in swept for e in batch]
    assert [e["type"] for e in events] == ["otp.fallback_started", "otp.sent"]
    calls = [
        line for line in read_outbox(first.settings.sandbox_outbox) if line["channel"] == "voice"
    ]
    assert len(calls) == 1


async def test_a_replica_that_stopped_midway_leaves_the_fallback_to_another(
    make: Callable[..., Dispatcher], clock: Clock
) -> None:
    """A replica claims a due fallback and stops before running it (a restart): after the lease another
    replica runs it, once."""
    first, second = make(sandbox_sms_receipts="never"), make(sandbox_sms_receipts="never")
    request = with_fallback("+447700900309", ("voice", "+447700900309"))
    await first.dispatch(request)
    clock.advance(31)
    lease = first.dependencies.lease
    assert await first.dependencies.fallbacks.claim(request.challenge_id, now=clock(), lease=lease)

    during = await second.sweep()
    clock.advance(lease.total_seconds() + 1)
    after = await second.sweep()

    assert during == []
    assert [e["type"] for e in after] == ["otp.fallback_started", "otp.sent"]
    assert await second.sweep() == []


async def test_a_delivered_receipt_stops_the_fallback_and_a_forged_one_is_refused(
    make: Callable[..., Dispatcher], gateway: SmsGateway, clock: Clock
) -> None:
    """The gateway's signed receipt posted to the receipt route marks the text delivered, so no call follows
    the timeout; a receipt without the right signature is refused with 401 and changes nothing."""
    dispatcher = make(
        sms_provider="http",
        sms_gateway_url=gateway.url,
        sms_receipt_timeout_seconds=20,
        sms_receipt_secret=SecretStr(RECEIPT_SECRET),
    )
    delivered = with_fallback("+15555550310", ("voice", "+15555550310"))
    forged = with_fallback("+15555550311", ("voice", "+15555550311"))
    await dispatcher.dispatch(delivered)
    await dispatcher.dispatch(forged)

    async with receipt_client(dispatcher) as client:
        taken = await post_receipt(client, delivered.challenge_id, "delivered", RECEIPT_SECRET)
        refused = await post_receipt(client, forged.challenge_id, "delivered", "not-the-secret")
        unsigned = await client.post(PATH, content=b"{}")
    clock.advance(21)
    swept = await dispatcher.sweep()

    assert (taken.status_code, refused.status_code, unsigned.status_code) == (204, 401, 401)
    assert [(e["type"], e.get("failed_challenge_id")) for e in swept] == [
        ("otp.fallback_started", str(forged.challenge_id)),
        ("otp.sent", None),
    ]


async def test_an_undelivered_receipt_falls_back_at_once(
    make: Callable[..., Dispatcher], gateway: SmsGateway
) -> None:
    """A receipt saying the text was not delivered makes its fallback due at once, without waiting for the timeout."""
    dispatcher = make(
        sms_provider="http",
        sms_gateway_url=gateway.url,
        sms_receipt_timeout_seconds=600,
        sms_receipt_secret=SecretStr(RECEIPT_SECRET),
    )
    request = with_fallback("+15555550312", ("voice", "+15555550312"))
    await dispatcher.dispatch(request)

    async with receipt_client(dispatcher) as client:
        answer = await post_receipt(client, request.challenge_id, "undelivered", RECEIPT_SECRET)
    started, sent = await dispatcher.sweep()

    assert answer.status_code == 204
    assert (started["reason"], sent["type"], sent["channel"]) == (
        "undelivered",
        "otp.sent",
        "voice",
    )


async def test_send_limits_count_each_channel_and_destination_apart(
    make: Callable[..., Dispatcher],
) -> None:
    """With one code per destination and window, a number gets one text and one call (different packages),
    and a second text to it is refused for the destination; a fallback's call counts as a call, and one the
    limit stops is a failed delivery (nobody awaits a 429 for it)."""
    dispatcher = make(max_sends_per_destination=1)

    [text] = await dispatcher.dispatch(sms_request("+447700900313"))
    [call] = await dispatcher.dispatch(voice_request("+447700900313"))
    [again] = await dispatcher.dispatch(sms_request("+447700900313"))
    fallen = await make(max_sends_per_destination=1, sandbox_refuse_channels=["sms"]).dispatch(
        with_fallback("+447700900314", ("voice", "+447700900313"))
    )

    assert (text["type"], call["type"]) == ("otp.sent", "otp.sent")
    assert (again["type"], again["code"]) == ("command.rejected", "otp_destination_send_limit")
    assert [(e["type"], e.get("reason")) for e in fallen] == [
        ("otp.fallback_started", "provider_refused"),
        ("otp.delivery_failed", "send limit (otp_destination_send_limit)"),
    ]


async def test_no_code_number_or_address_in_what_voice_and_fallback_publish(
    make: Callable[..., Dispatcher], clock: Clock
) -> None:
    """Every event of a refused text, a missing receipt and the calls and mail that followed shows numbers and
    addresses masked, and none of the codes delivered; the mail after a missing receipt and a refused call
    is marked answered before, the mail after a call refused at once is not."""
    dispatcher = make(sandbox_refuse_channels=["voice"], sandbox_sms_receipts="never")
    requests = [
        with_fallback("+447700900315", ("voice", "+447700900315"), ("email", "heidi@example.com")),
        voice_request(
            "+447700900316",
            fallback=[FallbackStep(channel="email", destination="ivan@example.com")],
        ),
    ]
    for request in requests:
        await dispatcher.dispatch(request)
    clock.advance(31)
    await dispatcher.sweep()

    codes = [line["code"] for line in read_outbox(dispatcher.settings.sandbox_outbox)]
    records = dispatcher.records()
    texts = [r.value.decode() for r in records]
    # in order: the first text (the first request's outcome), the call refused at once and its mail (the
    # second's), then the sweep: the first text's mail, after its call was refused, is a fact after its outcome
    assert [(e["type"], e["channel"], e.get("answered_before")) for e in map(json.loads, texts)] == [
        ("otp.sent", "sms", False),
        ("otp.fallback_started", "email", None), ("otp.sent", "email", False),
        ("otp.fallback_started", "voice", None), ("otp.fallback_started", "email", None),
        ("otp.sent", "email", True)]
    assert (
        len(codes) == 3 and len(records) == 6
    )  # a text and two mails; the refused calls wrote none
    assert leaked(codes, *texts) == []
    assert bus_findings(records, lambda topic: "events", "signgate.replies.") == []


def receipt_client(dispatcher: Dispatcher) -> httpx.AsyncClient:
    """An HTTP client on the service's receipt route, as the service serves it."""
    resources = Resources(settings=dispatcher.settings, publisher=None)  # type: ignore[arg-type]
    resources.dependencies = dispatcher.dependencies
    [(path, route)] = receipt_routes(resources)
    assert path == PATH
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=route), base_url="http://otp-dispatch"
    )


async def post_receipt(
    client: httpx.AsyncClient, challenge_id: object, status: str, secret: str
) -> httpx.Response:
    body = json.dumps({"reference": str(challenge_id), "status": status, "id": "gw-1"}).encode()
    return await client.post(
        PATH, content=body, headers={"X-Signgate-Signature": receipt_signature(secret, body)}
    )


async def test_the_fallback_schedule_holds_no_number_or_address_in_clear(
    make: Callable[..., Dispatcher],
) -> None:
    """A delivery awaiting its receipt keeps the failed request (with its destinations) in Redis sealed: no
    key or value of the deployment shows the number or the address, or the code."""
    dispatcher = make(sandbox_sms_receipts="never")
    request = with_fallback("+447700900317", ("voice", "+447700900317"), ("email", "kim@example.com"))
    await dispatcher.dispatch(request)
    [text] = outbox_for(dispatcher, request.challenge_id)

    connections = dispatcher.settings.connections
    client = aioredis.Redis.from_url(connections.redis_url)
    try:
        dump = []
        async for key in client.scan_iter(match=f"{connections.redis_prefix}otp:*"):
            kind = (await client.type(key)).decode()
            value = await {"hash": client.hgetall, "zset": lambda k: client.zrange(k, 0, -1),
                           "string": client.get}.get(kind, client.type)(key)
            dump.append(f"{key!r} {value!r}")
    finally:
        await client.aclose()

    assert any("{fallback}" in line for line in dump)
    assert [line for line in dump if any(s in line for s in ("7700900317", "kim@example.com"))] == []
    assert leaked([text["code"]], *dump) == []


async def test_a_plan_sealed_under_another_pepper_is_dropped_not_sent(
    make: Callable[..., Dispatcher], clock: Clock
) -> None:
    """After a pepper rotation a replica cannot open a pending fallback's plan: it drops it (no call, no
    event) instead of failing on it at every sweep."""
    before = make(sandbox_sms_receipts="never")
    request = with_fallback("+447700900318", ("voice", "+447700900318"))
    await before.dispatch(request)
    rotated = make(sandbox_sms_receipts="never", otp_store=OtpStoreSettings(pepper="a-rotated-pepper-4e1d0c9b"))
    clock.advance(31)

    dropped = await rotated.sweep()
    afterwards = await before.sweep()

    assert (dropped, afterwards) == ([], [])
    assert [line["channel"] for line in outbox_for(before, request.challenge_id)] == ["sms"]
    assert not [line for line in read_outbox(before.settings.sandbox_outbox) if line["channel"] == "voice"]


async def test_the_receipt_route_answers_bad_input_plainly(make: Callable[..., Dispatcher], gateway: SmsGateway) -> None:
    """A signed body that is no receipt is 400, an oversized one 413, a GET 405; a receipt with a status
    that settles nothing (queued) is taken and leaves the fallback due."""
    dispatcher = make(
        sms_provider="http", sms_gateway_url=gateway.url,
        sms_receipt_timeout_seconds=20, sms_receipt_secret=SecretStr(RECEIPT_SECRET),
    )
    request = with_fallback("+15555550319", ("voice", "+15555550319"))
    await dispatcher.dispatch(request)
    not_a_receipt = b'{"status": "delivered"}'
    oversized = b"{" + b" " * 20_000 + b"}"

    async with receipt_client(dispatcher) as client:
        answers = [
            (await client.post(PATH, content=body, headers={
                "X-Signgate-Signature": receipt_signature(RECEIPT_SECRET, body)})).status_code
            for body in (not_a_receipt, oversized)
        ]
        answers.append((await client.get(PATH)).status_code)
        answers.append((await post_receipt(client, request.challenge_id, "queued", RECEIPT_SECRET)).status_code)
    dispatcher.dependencies.clock.advance(21)  # type: ignore[attr-defined]

    assert answers == [400, 413, 405, 204]
    assert [e["type"] for e in await dispatcher.sweep()] == ["otp.fallback_started", "otp.sent"]
