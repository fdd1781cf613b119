"""The sandbox provider: deliveries, codes included, appended to a local JSON-lines outbox.

For development and tests: a developer reads the code from the file instead of a phone.
The file is created readable by its owner only. For trying fallback, the sandbox can be told to
refuse the deliveries of some channels (as a gateway that is down), or the texts to some numbers
(a gateway that refuses them), and to leave SMS without a
delivery receipt (as a gateway whose receipt never comes); otherwise what it takes counts as
delivered at once.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal
from uuid import uuid4

from services.otp_dispatch.providers import Delivery, DeliveryFailed, Receipt

REFUSED = "sandbox refused"


class SandboxProvider:
    name = "sandbox"

    def __init__(
        self,
        outbox: Path,
        *,
        refuse: Iterable[str] = (),
        refuse_sms_to: Iterable[str] = (),
        sms_receipts: Literal["delivered", "never"] = "delivered",
    ) -> None:
        self.outbox = outbox
        self.refuse = frozenset(refuse)
        self.refuse_sms_to = frozenset(number.strip() for number in refuse_sms_to)
        self.sms_receipts = sms_receipts
        self._lock = asyncio.Lock()

    async def deliver(self, delivery: Delivery) -> Receipt:
        refused_text = delivery.channel == "sms" and delivery.destination in self.refuse_sms_to
        if delivery.channel in self.refuse or refused_text:
            raise DeliveryFailed(REFUSED, transient=False)
        message_id = f"sandbox-{uuid4()}"
        line = json.dumps(
            {
                "message_id": message_id,
                "challenge_id": str(delivery.challenge_id),
                "channel": delivery.channel,
                "destination": delivery.destination,
                "code": delivery.code,
                "subject": delivery.subject,
                "text": delivery.text,
                "purpose": delivery.purpose,
                "expires_at": delivery.expires_at.isoformat(),
                "delivered_at": datetime.now(UTC).isoformat(),
            }
        )
        async with self._lock:
            try:
                await asyncio.to_thread(self._append, line)
            except OSError as error:
                raise DeliveryFailed(
                    f"sandbox outbox not writable ({type(error).__name__})", transient=False
                ) from None
        awaits = delivery.channel == "sms" and self.sms_receipts == "never"
        return Receipt(self.name, message_id, awaits_receipt=awaits)

    async def aclose(self) -> None:
        """Nothing to close: each delivery opens and closes the file."""

    def _append(self, line: str) -> None:
        self.outbox.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.outbox, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(descriptor, "a", encoding="utf-8") as file:
            file.write(line + "\n")


def read_outbox(outbox: Path) -> list[dict]:
    """Every delivery in a sandbox outbox, oldest first (for developers and tests)."""
    if not outbox.exists():
        return []
    return [
        json.loads(line) for line in outbox.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
