"""Helpers for integration tests of the OTP-dispatch service on the real stack."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRecord

from libs.runtime.service import Service, build_service
from libs.runtime.settings import ConnectionSettings
from libs.security.otp_store import OtpRecipient, OtpStore
from services.otp_dispatch.app import DEFINITION, OtpDispatchSettings
from signgate_contracts import Message, encode
from signgate_contracts.otp import OtpDeliveryRequested
from signgate_contracts.topics import OTP_EVENTS, OTP_REQUESTS
from tests.support.kafka import TopicWatcher, producer
from tests.support.signing import signed_headers

PEPPER = "integration-test-pepper-5f1c9a7e"


class CapturedLogs(logging.Handler):
    """Every log line as the service writes it (rendered by the service's own formatter)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        root = logging.getLogger()
        if root.handlers and root.handlers[0].formatter:
            self.setFormatter(root.handlers[0].formatter)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@dataclass
class OtpDispatchRun:
    """A running OTP-dispatch service with what a test needs around it."""

    service: Service
    settings: OtpDispatchSettings
    watch: TopicWatcher
    logs: CapturedLogs

    @property
    def connections(self) -> ConnectionSettings:
        return self.settings.connections

    def store(self) -> OtpStore:
        assert self.service.resources.redis is not None
        return OtpStore(
            self.service.resources.redis, prefix=self.connections.redis_prefix, pepper=PEPPER
        )

    async def send(self, *messages: Message | bytes, key: str | None = None) -> None:
        """Publish requests as the authentication service would (signed), keyed by challenge id unless told."""
        async with producer(self.connections.kafka_bootstrap) as client:
            for message in messages:
                payload = message if isinstance(message, bytes) else encode(message)
                record_key = key or str(getattr(message, "challenge_id", uuid.uuid4()))
                topic = self.connections.topic(OTP_REQUESTS.name)
                await client.send_and_wait(topic, payload, key=record_key.encode(), headers=signed_headers(
                    "authentication", topic, record_key.encode(), payload))

    def is_outcome(self, record: ConsumerRecord, request: Message) -> bool:
        if record.topic != self.connections.topic(OTP_EVENTS.name):
            return False
        return json.loads(record.value).get("correlation_id") == str(request.correlation_id)

    async def outcome(self, request: Message, *, timeout: float = 20.0) -> dict[str, Any]:
        """The first event answering ``request``."""
        [record, *_] = await self.watch.wait_for(lambda r: self.is_outcome(r, request), timeout=timeout)
        return json.loads(record.value)

    def outcomes(self, request: Message) -> list[dict[str, Any]]:
        return [json.loads(r.value) for r in self.watch.matching(lambda r: self.is_outcome(r, request))]

    def everything_published(self) -> str:
        """Every record seen on the OTP topics and their dead-letter topics, keys and headers too."""
        parts = []
        for record in self.watch.records:
            parts.append(record.value.decode(errors="replace"))
            parts.append((record.key or b"").decode(errors="replace"))
            parts += [f"{name}={value.decode(errors='replace')}" for name, value in record.headers or ()]
        return "\n".join(parts)


@contextlib.asynccontextmanager
async def running_otp_dispatch(settings: OtpDispatchSettings) -> AsyncIterator[OtpDispatchRun]:
    """The service started with ``settings``, its OTP topics watched and its logs captured."""
    connections = settings.connections
    topic = connections.topic
    watched = (OTP_REQUESTS.name, OTP_EVENTS.name, OTP_REQUESTS.dlq, OTP_EVENTS.dlq)
    service = build_service(DEFINITION, settings)
    logs = CapturedLogs()  # after build_service: it installs the JSON log handler it copies
    logging.getLogger().addHandler(logs)
    try:
        async with TopicWatcher(connections.kafka_bootstrap, *map(topic, watched)) as watch:
            async with service.app:
                yield OtpDispatchRun(service, settings, watch, logs)
    finally:
        logging.getLogger().removeHandler(logs)


def sms_request(destination: str = "+447700900123", **fields: Any) -> OtpDeliveryRequested:
    """A request to text a code to a recipient of a fresh package."""
    values = {"package_id": f"pkg-{uuid.uuid4().hex[:8]}", "order": 2, "channel": "sms", "destination": destination}
    return OtpDeliveryRequested(**(values | fields))


def email_request(destination: str, **fields: Any) -> OtpDeliveryRequested:
    return sms_request(destination, channel="email", **fields)


def recipient_of(request: OtpDeliveryRequested) -> OtpRecipient:
    return OtpRecipient.of(request)


def leaked(codes: Iterable[str], *texts: str) -> list[str]:
    """The codes found in any of ``texts`` as a number of their own.

    A code inside a longer run of letters and digits (a UUID) or after a dot (the
    microseconds of a timestamp) is a coincidence, not a leak: skipping those keeps a
    six-digit scan from failing at random.
    """
    return sorted(
        code for code in set(codes)
        if any(re.search(rf"(?<![0-9A-Za-z.]){code}(?![0-9A-Za-z])", text) for text in texts)
    )
