"""Voice delivery through an HTTP voice gateway: a call that reads the code out (`http_gateway`
says how the gateway is spoken to).

The request is ``{"to": "+447700908899", "from": caller id, "text": spoken text, "language":
"en", "reference": challenge id}``; the text (the `voice` template, with
`message_templates.spoken_code`) spells the code digit by digit, so a text-to-speech engine reads
it one digit at a time. The gateway's answer names the call (``id`` or ``call_id``).
"""

from __future__ import annotations

from services.otp_dispatch.providers import Delivery, Receipt
from services.otp_dispatch.providers.http_gateway import HttpGateway
from services.otp_dispatch.settings import OtpDispatchSettings


class HttpVoiceProvider:
    """Calls through the voice gateway."""

    name = "http_voice"

    def __init__(self, settings: OtpDispatchSettings) -> None:
        if not settings.voice_gateway_url:
            raise ValueError(
                "voice_provider is http but SIGNGATE_OTP_DISPATCH_VOICE_GATEWAY_URL is not set"
            )
        self.caller_id = settings.voice_caller_id
        self.language = settings.voice_language
        self.gateway = HttpGateway(
            settings.voice_gateway_url,
            timeout=settings.delivery_timeout_seconds,
            username=settings.voice_gateway_username,
            password=settings.voice_gateway_password,
            token=settings.voice_gateway_token,
        )

    async def deliver(self, delivery: Delivery) -> Receipt:
        call_id = await self.gateway.post(
            {
                "to": delivery.destination,
                "from": self.caller_id,
                "text": delivery.text,
                "language": self.language,
                "reference": str(delivery.challenge_id),
            }
        )
        return Receipt(self.name, call_id or str(delivery.challenge_id))

    async def aclose(self) -> None:
        await self.gateway.aclose()
