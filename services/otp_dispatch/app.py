"""Composition root of the OTP-dispatch service (Redis only: no Postgres schema).

Consumes ``signgate.otp.requests`` and answers each request on ``signgate.otp.events``. Its
settings are `OtpDispatchSettings` (``SIGNGATE_OTP_DISPATCH_*``, and the pepper shared with
the authentication service, ``SIGNGATE_OTP_PEPPER``). Its dependencies (the OTP store and the
provider of each channel) are built once, when Redis has opened, and closed at shut-down.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from faststream.asgi import AsgiFastStream

from libs.runtime.logging import get_logger
from libs.runtime.redis_client import RedisClient
from libs.runtime.service import Resources, ServiceDefinition, build_app
from libs.security.otp_store import OtpStore
from libs.security.required_secrets import require
from services.otp_dispatch.dependencies import OtpDispatchDependencies
from services.otp_dispatch.fallbacks import FallbackSchedule
from services.otp_dispatch.handlers import handle_otp_delivery_requested, run_due_fallbacks
from services.otp_dispatch.providers import DeliveryPolicy, Provider
from services.otp_dispatch.providers.http_sms import HttpSmsProvider
from services.otp_dispatch.providers.http_voice import HttpVoiceProvider
from services.otp_dispatch.providers.sandbox import SandboxProvider
from services.otp_dispatch.providers.smtp import SmtpProvider
from services.otp_dispatch.receipts import receipt_routes
from services.otp_dispatch.settings import OtpDispatchSettings
from signgate_contracts.otp import Channel, OtpDeliveryRequested
from signgate_contracts.topics import OTP_REQUESTS

__all__ = [
    "DEFINITION",
    "OtpDispatchSettings",
    "build_dependencies",
    "create_app",
    "dependencies_for",
    "providers_for",
]


def build_dependencies(resources: Resources) -> OtpDispatchDependencies:
    """The store on the service's Redis and the providers its settings choose, built once."""
    assert resources.redis is not None, "otp_dispatch runs with uses_redis=True"
    settings = resources.settings
    assert isinstance(settings, OtpDispatchSettings), "otp_dispatch runs with OtpDispatchSettings"
    return dependencies_for(settings, resources.redis)


def dependencies_for(settings: OtpDispatchSettings, redis: RedisClient) -> OtpDispatchDependencies:
    """The dependencies ``settings`` describe, on ``redis`` (the store refuses a missing pepper)."""
    store = OtpStore(
        redis,
        prefix=settings.connections.redis_prefix,
        pepper=settings.otp_store.pepper,
        clock=settings.clock,
    )
    providers = providers_for(settings)
    assert settings.otp_store.pepper is not None  # the store refused a missing one
    return OtpDispatchDependencies(
        store=store,
        providers=providers,
        limits=settings.limits,
        code_length=settings.code_length,
        code_ttl=timedelta(seconds=settings.code_ttl_seconds),
        delivery=DeliveryPolicy(
            attempts=settings.delivery_attempts,
            first_delay=settings.delivery_retry_delay_seconds,
            timeout=settings.delivery_timeout_seconds,
        ),
        templates=settings.message_templates(),
        clock=settings.clock,
        fallbacks=FallbackSchedule(
            redis, prefix=settings.connections.redis_prefix, pepper=settings.otp_store.pepper
        ),
        receipt_timeouts={
            provider.name: settings.receipt_timeout(provider.name)
            for provider in providers.values()
        },
        lease=timedelta(seconds=settings.fallback_lease_seconds),
    )


def providers_for(settings: OtpDispatchSettings) -> dict[Channel, Provider]:
    """The provider of each channel, as the settings choose (one sandbox for every channel)."""
    sandbox = SandboxProvider(
        settings.sandbox_outbox,
        refuse=settings.sandbox_refuse_channels,
        refuse_sms_to=settings.sandbox_refuse_sms_to,
        sms_receipts=settings.sandbox_sms_receipts,
    )
    return {
        "sms": HttpSmsProvider(settings) if settings.sms_provider == "http" else sandbox,
        "voice": HttpVoiceProvider(settings) if settings.voice_provider == "http" else sandbox,
        "email": SmtpProvider(settings) if settings.email_provider == "smtp" else sandbox,
    }


log = get_logger(__name__)


async def sweep_fallbacks(resources: Resources) -> None:
    """Each replica's loop: run the fallbacks that are due (`run_due_fallbacks` claims each, so
    replicas never run one twice), publish their events, and look again after the poll interval."""
    dependencies = resources.dependencies
    settings = resources.settings
    assert isinstance(dependencies, OtpDispatchDependencies)
    assert isinstance(settings, OtpDispatchSettings)

    async def publish(outgoing: list) -> None:
        for message in outgoing:
            await resources.publisher.publish(message)

    while True:
        try:
            await run_due_fallbacks(dependencies, publish)
        except Exception:  # Redis or the broker away: the entries stay due, the next sweep retries
            log.exception("fallback sweep failed; retried at the next sweep")
        await asyncio.sleep(settings.fallback_poll_seconds)


DEFINITION = ServiceDefinition(
    name="otp_dispatch",
    uses_redis=True,
    consumes=(OTP_REQUESTS,),
    handlers={OtpDeliveryRequested: handle_otp_delivery_requested},
    settings=OtpDispatchSettings,
    dependencies=build_dependencies,
    resource_routes=receipt_routes,
    background=sweep_fallbacks,
)


def create_app(settings: OtpDispatchSettings | None = None) -> AsgiFastStream:
    settings = settings or OtpDispatchSettings()
    require("otp_dispatch", {"SIGNGATE_OTP_PEPPER": settings.otp_store.pepper})
    settings.message_templates()  # a broken template stops start-up here, naming itself
    return build_app(DEFINITION, settings)
