"""Composition root of the gateway: the vendors' routers, the limits, the probes, one client.

Stateless: any number of replicas run side by side. Each opens one `SignGateClient` (its own
reply topic under the caller reply prefix, ``gateway.<instance>``, and the one consumer that
hands each outcome to the request awaiting its correlation id) and one Redis client (the rate
limits) in its lifespan. Run as ``uvicorn services.gateway.app:create_app --factory``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import ConsumerRecord
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware import Middleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from libs.runtime.kafka_security import signgate_client_options
from libs.runtime.logging import configure_logging, get_logger
from libs.runtime.messaging.pipeline import describe_validation_error
from libs.runtime.observability import Metrics, Readiness
from libs.runtime.redis_client import open_redis, ping
from libs.security.record_signatures import RecordVerifier, Unauthenticated
from services.gateway import assuresign, boldsign, signinghub
from services.gateway.api_keys import ApiKeyExchanger
from services.gateway.dependencies import GatewayDependencies
from services.gateway.errors import (
    INTERNAL_ERROR,
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    OUTCOME_TIMEOUT,
    GatewayError,
    error_response,
)
from services.gateway.middleware import (
    BodyLimitMiddleware,
    CorrelationMiddleware,
    MetricsMiddleware,
    NoStoreMiddleware,
    RateLimitMiddleware,
    RequestMetrics,
)
from services.gateway.outcomes import rejection_error
from services.gateway.rate_limit import RateLimiter
from services.gateway.settings import GatewaySettings
from services.gateway.validation import validation_message
from signgate_client import Outcome, OutcomeTimeout, SignGateClient
from signgate_contracts.identity import ExchangeApiKey
from signgate_contracts.topics import Topic

log = get_logger(__name__)

SERVICE = "gateway"


def reply_topic(settings: GatewaySettings) -> str:
    """This replica's own reply topic, under the caller reply prefix: ``...gateway.<instance>``."""
    connections = settings.connections
    return f"{connections.topic(connections.caller_reply_prefix)}{SERVICE}.{settings.instance}"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the client (its reply topic created if missing) and Redis once; close both at the end."""
    settings: GatewaySettings = app.state.settings
    connections = settings.connections
    client = SignGateClient(
        connections.kafka_bootstrap,
        reply_topic(settings),
        topic_prefix=connections.topic_prefix,
        client_id=f"signgate-{SERVICE}-{settings.instance}",
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        **signgate_client_options(connections),
    )
    redis = await open_redis(connections.redis_url, cluster=connections.redis_cluster)
    try:
        async with client:
            app.state.dependencies = GatewayDependencies(
                client, redis, settings, api_keys=api_key_exchanger(client, settings)
            )
            app.state.rate_limiter = RateLimiter(redis, connections.redis_prefix)
            app.state.readiness = Readiness({"broker": client.ping, "redis": lambda: ping(redis)})
            log.info("gateway ready", reply_topic=client.reply_topic)
            yield
    finally:
        await redis.aclose()


def api_key_exchanger(client: SignGateClient, settings: GatewaySettings) -> ApiKeyExchanger:
    """Exchanges API keys with identity over this replica's client, holding the tokens in memory."""

    async def send(command: ExchangeApiKey) -> Outcome:
        try:
            outcome = await client.send(command, timeout=settings.outcome_timeout_seconds)
        except OutcomeTimeout:
            raise GatewayError(504, OUTCOME_TIMEOUT) from None
        if outcome.rejection is not None:
            raise rejection_error(outcome.rejection)
        return outcome

    exchanger = ApiKeyExchanger(send)
    client.watch(
        "identity.api_key_revoked",
        exchanger.on_revoked,
        authentic=signed_by_writer(RecordVerifier.from_settings(settings.records)),
    )
    return exchanger


def signed_by_writer(verifier: RecordVerifier) -> Callable[[ConsumerRecord, Topic], bool]:
    """Whether a record of an events topic was signed by the service that writes the topic, as
    every internal consumer checks (`libs.runtime.executor`); a forged revocation has no effect."""

    if not verifier.knows("identity"):
        log.warning(
            "no record public key of identity (SIGNGATE_RECORD_PUBLIC_KEYS): revoked API keys' "
            "tokens are held until they are due for renewal"
        )

    def authentic(record: ConsumerRecord, topic: Topic) -> bool:
        if topic.writer is None:
            return False
        try:
            verifier.verify(
                record.topic, record.key, record.value or b"", list(record.headers), topic.writer
            )
        except Unauthenticated as why:
            log.warning("unauthenticated record ignored", topic=record.topic, reason=str(why))
            return False
        return True

    return authentic


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    """The gateway's ASGI app on ``settings`` (else the environment)."""
    settings = settings or GatewaySettings()
    connections = settings.connections
    configure_logging(connections.log_level, connections.log_format, service=SERVICE)
    app = FastAPI(
        title="signgate gateway",
        version="1",
        description="The SigningHub, BoldSign and AssureSign APIs of the seeds, over HTTP.",
        lifespan=lifespan,
        middleware=[
            Middleware(MetricsMiddleware),
            Middleware(CorrelationMiddleware),
            Middleware(NoStoreMiddleware),
            Middleware(RateLimitMiddleware),
            Middleware(BodyLimitMiddleware),
        ],
    )
    app.state.settings = settings
    app.state.body_limit = settings.body_limit_bytes
    metrics = Metrics(SERVICE)
    app.state.metrics = metrics
    app.state.request_metrics = RequestMetrics(metrics.registry, SERVICE)
    install_error_handlers(app)
    install_probes(app, metrics)
    app.include_router(signinghub.router)
    app.include_router(boldsign.router)
    app.include_router(assuresign.router)
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    return app


def install_error_handlers(app: FastAPI) -> None:
    """Every failure answered in its vendor's shape, and never with a trace."""

    async def refused(request: Request, error: Exception) -> Response:
        assert isinstance(error, GatewayError)
        return error_response(request.url.path, error)

    async def invalid(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        return error_response(request.url.path, GatewayError(400, validation_message(error)))

    async def contract_refused(request: Request, error: Exception) -> Response:
        # what the request validated into, the command's contract refused (a NUL in a path, say)
        assert isinstance(error, ValidationError)
        _, text = describe_validation_error(error, None)
        return error_response(request.url.path, GatewayError(400, text))

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        text = {404: NOT_FOUND, 405: METHOD_NOT_ALLOWED}.get(error.status_code, str(error.detail))
        return error_response(
            request.url.path, GatewayError(error.status_code, text, error.headers)
        )

    async def failed(request: Request, error: Exception) -> Response:
        log.error("request failed", path=request.url.path, error=type(error).__name__)
        return error_response(request.url.path, GatewayError(500, INTERNAL_ERROR))

    app.add_exception_handler(GatewayError, refused)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(ValidationError, contract_refused)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, failed)


def install_probes(app: FastAPI, metrics: Metrics) -> None:
    """/livez, /readyz (and /health, its older name) and /metrics, as every service has them."""

    @app.get("/livez", include_in_schema=False)
    async def livez() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", include_in_schema=False)
    @app.get("/health", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        readiness: Readiness | None = getattr(request.app.state, "readiness", None)
        if readiness is None:
            return JSONResponse({"status": "starting", "checks": {}}, status_code=503)
        ready, results = await readiness.check()
        metrics.ready.labels(SERVICE).set(1 if ready else 0)
        return JSONResponse(
            {"status": "ok" if ready else "failing", "checks": results},
            status_code=200 if ready else 503,
        )

    @app.get("/metrics", include_in_schema=False)
    async def scrape() -> Response:
        await metrics.refresh()
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with 400 (the vendor's shape) where FastAPI would say 422."""
    if app.openapi_schema is None:
        document = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        for path in document.get("paths", {}).values():
            for operation in path.values():
                operation.get("responses", {}).pop("422", None)
        schemas = document.get("components", {}).get("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        app.openapi_schema = document
    return app.openapi_schema
