"""What the HTTP SMS and voice gateways share: one JSON POST per message, basic or bearer auth.

Any 2xx answer is a hand-over, and the gateway's ``id`` (or ``message_id``, ``call_id``) in a
JSON answer names it. 408, 425, 429 and 5xx answers and connection trouble are retried; other
4xx answers are not.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import SecretStr

from services.otp_dispatch.providers import DeliveryFailed

_TRANSIENT_STATUS = {408, 425, 429}
_ID_FIELDS = ("id", "message_id", "messageId", "call_id", "callId")


class HttpGateway:
    """One gateway endpoint over one HTTP client (its connections kept for the next message),
    opened when built and closed by `aclose`."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        username: str | None,
        password: SecretStr | None,
        token: SecretStr | None,
    ) -> None:
        self.url = url
        auth = (
            httpx.BasicAuth(username, password.get_secret_value() if password else "")
            if username
            else None
        )
        headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
        self.client = httpx.AsyncClient(timeout=timeout, auth=auth, headers=headers)

    async def post(self, body: dict[str, Any]) -> str | None:
        """POST ``body``; the gateway's id of the message, if it gave one, or DeliveryFailed."""
        try:
            response = await self.client.post(self.url, json=body)
        except httpx.HTTPError as error:  # timeouts included
            raise DeliveryFailed(f"http {type(error).__name__}", transient=True) from None
        if not response.is_success:
            status = response.status_code
            raise DeliveryFailed(
                f"http {status}", transient=status >= 500 or status in _TRANSIENT_STATUS
            )
        return _message_id(response)

    async def aclose(self) -> None:
        await self.client.aclose()


def _message_id(response: httpx.Response) -> str | None:
    try:
        document = response.json()
    except ValueError:
        return None
    if isinstance(document, dict):
        for name in _ID_FIELDS:
            if isinstance(document.get(name), str | int):
                return str(document[name])
    return None
