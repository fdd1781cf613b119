"""SMS delivery through an HTTP gateway: one JSON POST per message, with basic or bearer auth.

The request is ``{"to": "+447700908899", "from": sender, "text": body, "reference":
challenge id}``; any 2xx answer is a delivery, and the gateway's ``id`` or ``message_id``
in a JSON answer becomes the provider message id. 408, 429 and 5xx answers and connection
trouble are retried; other 4xx answers are not.
"""

from __future__ import annotations

import httpx

from services.otp_dispatch.providers import Delivery, DeliveryFailed, Receipt
from services.otp_dispatch.settings import OtpDispatchSettings

_TRANSIENT_STATUS = {408, 425, 429}


class HttpSmsProvider:
    name = "http_sms"

    def __init__(self, settings: OtpDispatchSettings) -> None:
        if not settings.sms_gateway_url:
            raise ValueError(
                "sms_provider is http but SIGNGATE_OTP_DISPATCH_SMS_GATEWAY_URL is not set"
            )
        self.settings = settings

    def _auth(self) -> httpx.Auth | None:
        settings = self.settings
        if settings.sms_gateway_username:
            password = (
                settings.sms_gateway_password.get_secret_value()
                if settings.sms_gateway_password
                else ""
            )
            return httpx.BasicAuth(settings.sms_gateway_username, password)
        return None

    def _headers(self) -> dict[str, str]:
        token = self.settings.sms_gateway_token
        return {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}

    async def deliver(self, delivery: Delivery) -> Receipt:
        settings = self.settings
        assert settings.sms_gateway_url
        body = {
            "to": delivery.destination,
            "from": settings.sms_sender,
            "text": delivery.text,
            "reference": str(delivery.challenge_id),
        }
        try:
            async with httpx.AsyncClient(
                timeout=settings.delivery_timeout_seconds, auth=self._auth()
            ) as client:
                response = await client.post(
                    settings.sms_gateway_url, json=body, headers=self._headers()
                )
        except httpx.TimeoutException as error:
            raise DeliveryFailed(f"http {type(error).__name__}", transient=True) from None
        except httpx.HTTPError as error:
            raise DeliveryFailed(f"http {type(error).__name__}", transient=True) from None
        if not response.is_success:
            status = response.status_code
            raise DeliveryFailed(
                f"http {status}", transient=status >= 500 or status in _TRANSIENT_STATUS
            )
        return Receipt(self.name, _message_id(response) or str(delivery.challenge_id))


def _message_id(response: httpx.Response) -> str | None:
    try:
        document = response.json()
    except ValueError:
        return None
    if isinstance(document, dict):
        for name in ("id", "message_id", "messageId"):
            if isinstance(document.get(name), str | int):
                return str(document[name])
    return None
