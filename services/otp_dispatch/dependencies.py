"""What the OTP-dispatch handler works with, built once when the service starts (`app.build_dependencies`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from libs.runtime.service import Scope
from libs.security.otp_store import OtpStore, SendLimits
from services.otp_dispatch.fallbacks import FallbackSchedule
from services.otp_dispatch.message_templates import MessageTemplates
from services.otp_dispatch.providers import DeliveryPolicy, Provider
from signgate_contracts.envelope import Clock
from signgate_contracts.otp import Channel


@dataclass(frozen=True)
class OtpDispatchDependencies:
    """The OTP store, the provider of each channel, and the service's own terms for a code: its
    length and lifetime (a request's are not taken), the send limits, how hard a delivery is
    tried, and the message templates; and the fallback schedule with its timings."""

    store: OtpStore
    providers: Mapping[Channel, Provider]
    limits: SendLimits
    code_length: int
    code_ttl: timedelta
    delivery: DeliveryPolicy
    templates: MessageTemplates
    """The texts of each locale, purpose and channel, checked at start-up."""
    clock: Clock
    """Now, for a code's issue time and the send limits (the store's clock too)."""
    fallbacks: FallbackSchedule
    receipt_timeouts: Mapping[str, timedelta]
    """How long a message of each provider may await its delivery receipt."""
    lease: timedelta
    """How long a process holds a fallback it runs."""

    def receipt_timeout(self, provider: str) -> timedelta:
        return self.receipt_timeouts[provider]

    async def aclose(self) -> None:
        """Close what the providers hold open (the SMS gateway's HTTP client), each once."""
        for provider in {id(p): p for p in self.providers.values()}.values():
            await provider.aclose()


OtpDispatchScope = Scope[OtpDispatchDependencies]
"""What each of the service's handlers gets: its dependencies, the record's transaction."""
