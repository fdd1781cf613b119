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
    """Texts through the gateway over one HTTP client (its connections kept for the next code),
    opened when the provider is built and closed by `aclose`."""

    name = "http_sms"

    def __init__(self, settings: OtpDispatchSettings) -> None:
        if not settings.sms_gateway_url:
            raise ValueError(
                "sms_provider is http but SIGNGATE_OTP_DISPATCH_SMS_GATEWAY_URL is not set"
            )
        self.url = settings.sms_gateway_url
        self.sender = settings.sms_sender
        self.client = httpx.AsyncClient(
            timeout=settings.delivery_timeout_seconds,
            auth=_auth(settings),
            headers=_headers(settings),
        )

    async def deliver(self, delivery: Delivery) -> Receipt:
        body = {
            "to": delivery.destination,
            "from": self.sender,
            "text": delivery.text,
            "reference": str(delivery.challenge_id),
        }
        try:
            response = await self.client.post(self.url, json=body)
        except httpx.HTTPError as error:  # timeouts included
            raise DeliveryFailed(f"http {type(error).__name__}", transient=True) from None
        if not response.is_success:
            status = response.status_code
            raise DeliveryFailed(
                f"http {status}", transient=status >= 500 or status in _TRANSIENT_STATUS
            )
        return Receipt(self.name, _message_id(response) or str(delivery.challenge_id))

    async def aclose(self) -> None:
        await self.client.aclose()


def _auth(settings: OtpDispatchSettings) -> httpx.Auth | None:
    """Basic auth when a gateway user is set (the bearer token, if any, goes as a header)."""
    if settings.sms_gateway_username:
        password = settings.sms_gateway_password
        return httpx.BasicAuth(
            settings.sms_gateway_username, password.get_secret_value() if password else ""
        )
    return None


def _headers(settings: OtpDispatchSettings) -> dict[str, str]:
    token = settings.sms_gateway_token
    return {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}


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
