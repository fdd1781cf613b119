"""What every request passes before it is routed: the rate limits, then the body limit; the
header naming the command each answer is the outcome of; and the request metrics.

Both are plain ASGI middleware, so a request refused here has not been parsed at all: 429 with
Retry-After before its body is read, 413 as soon as its Content-Length or the bytes received so
far pass the limit.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from libs.runtime.logging import get_logger
from services.gateway.errors import BODY_TOO_LARGE, RATE_LIMITED, GatewayError, error_response
from services.gateway.outcomes import CORRELATION_HEADER, SENT
from services.gateway.rate_limit import Limit, RateLimiter

log = get_logger(__name__)

OPERATIONAL = frozenset({"/livez", "/readyz", "/health", "/metrics", "/openapi.json", "/docs"})
"""Paths no limit applies to: probes, metrics and the API's description."""


def client_address(scope: Scope, headers: Headers, trust_forwarded_for: bool) -> str:
    """The client's address: the connection's peer, or behind a trusted proxy the entry it added."""
    if trust_forwarded_for:
        forwarded = [part.strip() for part in headers.get("x-forwarded-for", "").split(",")]
        if forwarded[-1]:
            return forwarded[-1]
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def credential_of(headers: Headers) -> str | None:
    """The credential a request carries in a header (a bearer token, an API key), if any."""
    return headers.get("authorization") or headers.get("x-api-key") or None


class RateLimitMiddleware:
    """429 with Retry-After when the request's credential or address has used its window."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPERATIONAL:
            await self.app(scope, receive, send)
            return
        state: Any = scope["app"].state
        limiter: RateLimiter | None = getattr(state, "rate_limiter", None)
        if limiter is not None:
            settings = state.dependencies.settings
            headers = Headers(scope=scope)
            window = settings.rate_limit_window_seconds
            checks = [
                (
                    Limit("address", settings.rate_limit_per_address, window),
                    client_address(scope, headers, settings.trust_forwarded_for),
                )
            ]
            credential = credential_of(headers)
            if credential is not None:
                checks.append(
                    (Limit("credential", settings.rate_limit_per_credential, window), credential)
                )
            try:
                wait = await limiter.exceeded(checks)
            except Exception as error:  # Redis away: requests go on, the services' own limits hold
                log.warning("rate limit not checked", error=type(error).__name__)
                wait = None
            if wait is not None:
                refusal = GatewayError(429, RATE_LIMITED, {"Retry-After": str(wait)})
                await error_response(scope["path"], refusal)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """413 for a body over the limit, before anything parses it: by its Content-Length when it
    gives one, else by counting the bytes as they arrive (the body is held until complete)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit: int = scope["app"].state.body_limit
        declared = Headers(scope=scope).get("content-length")
        too_large = GatewayError(413, BODY_TOO_LARGE)
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await error_response(scope["path"], too_large)(scope, receive, send)
            return
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                await error_response(scope["path"], too_large)(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class CorrelationMiddleware:
    """Puts ``X-Correlation-Id`` on an answer: the correlation id of the (last) command its
    request was turned into, for tracing it through the services' events and logs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent: list[str] = []
        token = SENT.set(sent)

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start" and sent:
                headers = [
                    *message.get("headers", []),
                    (CORRELATION_HEADER.lower().encode(), sent[-1].encode()),
                ]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_header)
        finally:
            SENT.reset(token)


class NoStoreMiddleware:
    """Puts ``Cache-Control: no-store`` on every answer that has no cache rule of its own: answers
    carry tokens, access grants, invitations and secrets, and no proxy or browser cache may keep one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"cache-control" for name, _ in headers):
                    message = {**message, "headers": [*headers, (b"cache-control", b"no-store")]}
            await send(message)

        await self.app(scope, receive, send_with_header)


UNMATCHED = "unmatched"
"""The ``route`` of a request no route took (a 404): one series, not one per path tried."""


class RequestMetrics:
    """Requests by method, route template and status, and their latency, in the service's registry."""

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.service = service
        self.requests = Counter(
            "signgate_gateway_requests",
            "HTTP requests answered, by method, route template and status.",
            ["service", "method", "route", "status"],
            registry=registry,
        )
        self.seconds = Histogram(
            "signgate_gateway_request_seconds",
            "Seconds from a request's arrival to its answer, by method and route template.",
            ["service", "method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )


class MetricsMiddleware:
    """Counts and times every HTTP request but the scrapes and probes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPERATIONAL:
            await self.app(scope, receive, send)
            return
        metrics: RequestMetrics = scope["app"].state.request_metrics
        started = time.perf_counter()
        status = 500

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            route = getattr(scope.get("route"), "path", UNMATCHED)
            method = scope["method"]
            metrics.requests.labels(metrics.service, method, route, str(status)).inc()
            metrics.seconds.labels(metrics.service, method, route).observe(
                time.perf_counter() - started
            )
