"""SMS delivery through an HTTP gateway (`http_gateway` says how it is spoken to).

The request is ``{"to": "+447700908899", "from": sender, "text": body, "reference":
challenge id}``. When ``SIGNGATE_OTP_DISPATCH_SMS_RECEIPT_TIMEOUT_SECONDS`` is set, the gateway's
delivery receipts are awaited (posted to otp-dispatch's ``/receipts/http_sms``, naming the
``reference``): a message without one by then falls back, where the recipient's policy allows.
"""

from __future__ import annotations

from services.otp_dispatch.providers import Delivery, Receipt
from services.otp_dispatch.providers.http_gateway import HttpGateway
from services.otp_dispatch.settings import OtpDispatchSettings


class HttpSmsProvider:
    """Texts through the gateway."""

    name = "http_sms"

    def __init__(self, settings: OtpDispatchSettings) -> None:
        if not settings.sms_gateway_url:
            raise ValueError(
                "sms_provider is http but SIGNGATE_OTP_DISPATCH_SMS_GATEWAY_URL is not set"
            )
        self.sender = settings.sms_sender
        self.awaits_receipts = settings.sms_receipt_timeout_seconds is not None
        self.gateway = HttpGateway(
            settings.sms_gateway_url,
            timeout=settings.delivery_timeout_seconds,
            username=settings.sms_gateway_username,
            password=settings.sms_gateway_password,
            token=settings.sms_gateway_token,
        )

    async def deliver(self, delivery: Delivery) -> Receipt:
        message_id = await self.gateway.post(
            {
                "to": delivery.destination,
                "from": self.sender,
                "text": delivery.text,
                "reference": str(delivery.challenge_id),
            }
        )
        return Receipt(
            self.name,
            message_id or str(delivery.challenge_id),
            awaits_receipt=self.awaits_receipts,
        )

    async def aclose(self) -> None:
        await self.gateway.aclose()
