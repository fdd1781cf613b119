"""Delivery receipts: how an SMS gateway tells otp-dispatch that a text reached the phone, or not.

The gateway posts each receipt to ``POST /receipts/http_sms`` on any otp-dispatch replica (they
share the fallback schedule in Redis, so any one will do), as JSON ``{"reference": <the
challenge id the text was sent with>, "status": "delivered" | "undelivered" | "failed" |
"rejected" | "expired", ...}``, signed with the shared receipt secret: header
``X-Signgate-Signature: sha256=<hex HMAC-SHA256 of the body>``. A delivered text will not fall
back; an undelivered one falls back at once (the next sweep); other statuses (``queued``,
``sent``) change nothing. Answers: 204 taken, 400 not a receipt, 401 not signed by the secret,
503 not started yet, 404 no receipt route (no secret set). A forged receipt could only stop or hasten a fallback of a
code the forger cannot read; without the secret none is taken.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from libs.runtime.logging import get_logger
from libs.runtime.service import Resources
from services.otp_dispatch.dependencies import OtpDispatchDependencies
from services.otp_dispatch.settings import OtpDispatchSettings

log = get_logger(__name__)

PATH = "/receipts/http_sms"
SIGNATURE_HEADER = "x-signgate-signature"
DELIVERED = frozenset({"delivered"})
UNDELIVERED = frozenset({"undelivered", "failed", "rejected", "expired"})
MAX_BODY = 16_384

Asgi = Callable[..., Awaitable[None]]


def receipt_signature(secret: str, body: bytes) -> str:
    """The header value a gateway sends with ``body`` (tests and gateway adapters use it too)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def receipt_routes(resources: Resources) -> list[tuple[str, Asgi]]:
    """The receipt callback, when a receipt secret is set (a tool building the app from bare
    service settings gets none)."""
    configured = resources.settings
    if not isinstance(configured, OtpDispatchSettings) or configured.sms_receipt_secret is None:
        return []
    secret = configured.sms_receipt_secret.get_secret_value()

    async def receipts(scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope.get("method") != "POST":
            return await _answer(send, 405)
        body = await _body(receive)
        if body is None:
            return await _answer(send, 413)
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        given = headers.get(SIGNATURE_HEADER, "")
        if not hmac.compare_digest(given, receipt_signature(secret, body)):
            log.warning("delivery receipt refused: bad signature")
            return await _answer(send, 401)
        parsed = _receipt(body)
        if parsed is None:
            return await _answer(send, 400)
        challenge_id, status = parsed
        dependencies = resources.dependencies
        if not isinstance(dependencies, OtpDispatchDependencies):  # starting: the gateway retries
            return await _answer(send, 503)
        if status in DELIVERED | UNDELIVERED:
            before = await dependencies.fallbacks.receipt(
                challenge_id, delivered=status in DELIVERED, now=dependencies.clock()
            )
            log.info(
                "delivery receipt", challenge_id=str(challenge_id), status=status, before=before
            )
        return await _answer(send, 204)

    return [(PATH, receipts)]


def _receipt(body: bytes) -> tuple[UUID, str] | None:
    """The challenge and status a receipt names, or None when it is not one."""
    try:
        document = json.loads(body)
        return UUID(str(document["reference"])), str(document["status"]).lower()
    except (ValueError, KeyError, TypeError):
        return None


async def _body(receive: Callable) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _answer(send: Callable, status: int) -> None:
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b""})
