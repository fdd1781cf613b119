"""The one use case of OTP dispatch: issue a code within the send limits, deliver it, say what happened.

Idempotent by the request's ``event_id``: the OTP store claims the request in the same
atomic step that stores the code, so a redelivered request neither sends again nor stores
a second code; it gets the outcome recorded the first time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from libs.runtime.logging import get_logger
from libs.runtime.messaging.outgoing import Outgoing
from libs.runtime.service import Resources, Scope, ServiceSettings
from libs.security.masking import mask_destination
from libs.security.otp_store import Issued, OtpRecipient, OtpStore, SeenBefore, SendRefused
from services.otp_dispatch.domain import delivery_text, email_subject, generate_code, send_refusal
from services.otp_dispatch.providers import Delivery, DeliveryFailed, Provider, deliver_with_retries
from services.otp_dispatch.providers.http_sms import HttpSmsProvider
from services.otp_dispatch.providers.sandbox import SandboxProvider
from services.otp_dispatch.providers.smtp import SmtpProvider
from services.otp_dispatch.settings import OtpDispatchSettings
from signgate_contracts import CommandRejected, Message, decode, encode
from signgate_contracts.otp import OtpDeliveryFailed, OtpDeliveryRequested, OtpSent
from signgate_contracts.topics import OTP_EVENTS

log = get_logger(__name__)

INTERRUPTED = "delivery interrupted; outcome unknown"


async def dispatch_otp(request: OtpDeliveryRequested, unit: Scope[Any]) -> list[Outgoing]:
    """Handle one `otp.delivery_requested`: exactly one OtpSent, OtpDeliveryFailed or 429."""
    return await Dispatcher.for_resources(unit.dependencies).dispatch(request)


def providers_for(settings: OtpDispatchSettings) -> dict[str, Provider]:
    """The provider of each channel, as the settings choose."""
    sandbox = SandboxProvider(settings.sandbox_outbox)
    return {
        "sms": HttpSmsProvider(settings) if settings.sms_provider == "http" else sandbox,
        "email": SmtpProvider(settings) if settings.email_provider == "smtp" else sandbox,
    }


def dispatch_settings(settings: ServiceSettings) -> OtpDispatchSettings:
    """The service's settings; read from the environment when it was built with the base class."""
    if isinstance(settings, OtpDispatchSettings):
        return settings
    return OtpDispatchSettings(connections=settings.connections)


@dataclass
class Dispatcher:
    settings: OtpDispatchSettings
    store: OtpStore
    providers: Mapping[str, Provider]

    @classmethod
    def for_resources(cls, resources: Resources) -> Dispatcher:
        settings = dispatch_settings(resources.settings)
        assert resources.redis is not None, "otp_dispatch runs with uses_redis=True"
        store = OtpStore(
            resources.redis,
            prefix=settings.connections.redis_prefix,
            pepper=settings.otp_store.pepper,
            clock=settings.clock,
        )
        return cls(settings, store, providers_for(settings))

    async def dispatch(self, request: OtpDeliveryRequested) -> list[Outgoing]:
        recipient = OtpRecipient.of(request)
        code = generate_code(
            self.settings.code_length
        )  # never the request's: a code's strength is ours
        ttl = timedelta(seconds=self.settings.code_ttl_seconds)
        result = await self.store.issue(
            request.event_id,
            recipient,
            challenge_id=request.challenge_id,
            code=code,
            channel=request.channel,
            destination=request.destination,
            ttl=ttl,
            limits=self.settings.limits,
        )
        if isinstance(result, SendRefused):
            return [self._refused(request, result)]
        if isinstance(result, SeenBefore):
            return await self._again(request, recipient, result)
        outcome = await self._deliver(request, code, ttl, result)
        withdraw = None if isinstance(outcome, OtpSent) else request.challenge_id
        stored = await self.store.settle(
            request.event_id, recipient, encode(outcome).decode(), withdraw=withdraw
        )
        return [self._outgoing(request, decode(OTP_EVENTS, stored.encode()))]

    async def _deliver(
        self, request: OtpDeliveryRequested, code: str, ttl: timedelta, issued: Issued
    ) -> OtpSent | OtpDeliveryFailed:
        provider = self.providers[request.channel]
        delivery = Delivery(
            challenge_id=request.challenge_id,
            channel=request.channel,
            destination=request.destination,
            code=code,
            text=delivery_text(code, request.purpose, ttl),
            subject=email_subject(request.purpose),
            purpose=request.purpose,
            expires_at=issued.expires_at,
        )
        common = _outcome_fields(request, provider.name)
        try:
            receipt = await deliver_with_retries(
                provider,
                delivery,
                attempts=self.settings.delivery_attempts,
                first_delay=self.settings.delivery_retry_delay_seconds,
                timeout=self.settings.delivery_timeout_seconds,
            )
        except DeliveryFailed as failure:
            log.warning(
                "code not delivered; withdrawn",
                challenge_id=str(request.challenge_id),
                provider=provider.name,
                reason=failure.reason,
            )
            return OtpDeliveryFailed(
                **common, reason=failure.reason, resend_available_at=issued.resend_available_at
            )
        log.info(
            "code delivered",
            challenge_id=str(request.challenge_id),
            provider=receipt.provider,
            channel=request.channel,
            destination=common["destination"],
        )
        return OtpSent(
            **common,
            provider_message_id=receipt.message_id,
            expires_at=issued.expires_at,
            resend_available_at=issued.resend_available_at,
            sends_remaining=issued.sends_remaining,
        )

    async def _again(
        self, request: OtpDeliveryRequested, recipient: OtpRecipient, seen: SeenBefore
    ) -> list[Outgoing]:
        """A redelivered request: the same outcome again, and nothing sent or stored."""
        log.info(
            "delivery request seen before", state=seen.state, challenge_id=str(request.challenge_id)
        )
        if seen.refusal is not None:
            return [self._refused(request, seen.refusal)]
        stored = seen.outcome
        if stored is None:
            # Issued but never settled: the earlier attempt stopped midway, and whether the
            # provider took the message is unknown. Sending again could double a message;
            # the code is withdrawn instead (fail closed) and the caller may ask anew.
            failed = OtpDeliveryFailed(
                **_outcome_fields(request, self.providers[request.channel].name), reason=INTERRUPTED
            )
            stored = await self.store.settle(
                request.event_id,
                recipient,
                encode(failed).decode(),
                withdraw=seen.challenge_id or request.challenge_id,
            )
        return [self._outgoing(request, decode(OTP_EVENTS, stored.encode()))]

    def _refused(self, request: OtpDeliveryRequested, refusal: SendRefused) -> Outgoing:
        seconds = refusal.retry_after_seconds
        code, text = send_refusal(refusal.limit, seconds)
        log.info("code not sent: send limit", limit=refusal.limit, retry_after_seconds=seconds)
        rejection = CommandRejected(
            status=429,
            code=code,
            message=text,
            command_type=request.type,
            command_event_id=request.event_id,
            retry_after_seconds=seconds,
        )
        return self._outgoing(request, rejection)

    @staticmethod
    def _outgoing(request: OtpDeliveryRequested, message: Message) -> Outgoing:
        return Outgoing(OTP_EVENTS.name, str(request.challenge_id), message)


def _outcome_fields(request: OtpDeliveryRequested, provider: str) -> dict:
    return {
        "challenge_id": request.challenge_id,
        "purpose": request.purpose,
        "package_id": request.package_id,
        "order": request.order,
        "user_id": request.user_id,
        "document_id": request.document_id,
        "field_name": request.field_name,
        "channel": request.channel,
        "destination": mask_destination(request.channel, request.destination),
        "provider": provider,
    }
