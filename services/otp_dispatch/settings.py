"""The otp dispatch service's settings (read from the environment, `docs/settings.md`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from libs.runtime.service import ServiceSettings
from libs.runtime.settings import DATA_DIR
from libs.security.otp_store import OtpStoreSettings, SendLimits, utc_now
from services.otp_dispatch.message_templates import MessageTemplates, load_message_templates
from signgate_contracts.localisation import BrandName, Locale


class OtpDispatchSettings(ServiceSettings):
    """Providers per channel, send limits, where each provider is, and how fallback is timed."""

    model_config = SettingsConfigDict(env_prefix="SIGNGATE_OTP_DISPATCH_", extra="ignore")

    otp_store: OtpStoreSettings = Field(
        default_factory=OtpStoreSettings,
        description="The pepper shared with the authentication service (SIGNGATE_OTP_PEPPER).",
    )

    sms_provider: Literal["sandbox", "http"] = Field(
        "sandbox", description="`http`: the SMS gateway."
    )
    email_provider: Literal["sandbox", "smtp"] = Field(
        "sandbox", description="`smtp`: the SMTP server."
    )
    voice_provider: Literal["sandbox", "http"] = Field(
        "sandbox", description="`http`: the voice gateway (a call that reads the code out)."
    )
    sandbox_outbox: Path = Field(
        DATA_DIR / "sandbox-outbox.jsonl",
        description="JSON-lines file the sandbox provider appends deliveries (with their codes) to.",
    )

    code_length: int = Field(
        6, ge=6, le=9, description="Digits in a code (what a request asks is not taken)."
    )
    code_ttl_seconds: int = Field(
        300,
        ge=30,
        le=600,
        description="How long a sent code is valid (what a request asks is not taken).",
    )
    resend_cooldown_seconds: int = Field(
        30, ge=0, description="Between two codes for one recipient."
    )
    max_sends_per_recipient: int = Field(
        5, ge=1, description="Codes per recipient of a package per window."
    )
    recipient_window_seconds: int = Field(86_400, ge=1)
    max_sends_per_destination: int = Field(
        10, ge=1, description="Codes per phone number or address per window, across all packages."
    )
    destination_window_seconds: int = Field(3_600, ge=1)

    delivery_timeout_seconds: float = Field(10.0, gt=0, description="Per provider call.")
    delivery_attempts: int = Field(
        3, ge=1, description="Provider calls per code, on transient failures."
    )
    delivery_retry_delay_seconds: float = Field(
        0.5, ge=0, description="Before the first retry; doubles."
    )

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_tls: Literal["none", "starttls", "tls"] = Field(
        "none", description="`tls`: implicit TLS (port 465); `starttls`: upgrade (port 587)."
    )
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "signgate <no-reply@signgate.localhost>"

    sms_gateway_url: str | None = Field(None, description="POST endpoint of the HTTP SMS gateway.")
    sms_gateway_username: str | None = Field(None, description="HTTP basic auth user.")
    sms_gateway_password: SecretStr | None = None
    sms_gateway_token: SecretStr | None = Field(
        None, description="Bearer token, instead of basic auth."
    )
    sms_sender: str = Field("signgate", description="Sender id the gateway shows.")
    sms_receipt_timeout_seconds: float | None = Field(
        None,
        gt=0,
        description="Await the SMS gateway's delivery receipts (posted to /receipts/http_sms): a "
        "text without one by then falls back to the recipient's next channel. Unset: taken is "
        "delivered.",
    )
    sms_receipt_secret: SecretStr | None = Field(
        None,
        description="HMAC-SHA256 key of the gateway's receipt callbacks (header "
        "X-Signgate-Signature: sha256=<hex of the body's HMAC>); required with the receipt timeout.",
    )

    voice_gateway_url: str | None = Field(
        None, description="POST endpoint of the HTTP voice gateway."
    )
    voice_gateway_username: str | None = Field(None, description="HTTP basic auth user.")
    voice_gateway_password: SecretStr | None = None
    voice_gateway_token: SecretStr | None = Field(
        None, description="Bearer token, instead of basic auth."
    )
    voice_caller_id: str = Field(
        "+10000000000", description="The E.164 number the call comes from (the gateway's)."
    )
    voice_language: str = Field("en", description="Language of the spoken text, for the gateway.")

    sandbox_refuse_channels: list[Literal["sms", "voice", "email"]] = Field(
        default_factory=list,
        description="Development: the sandbox refuses these channels' deliveries (to try fallback).",
    )
    sandbox_refuse_sms_to: list[str] = Field(
        default_factory=list,
        description="Development: the sandbox refuses texts to these numbers (calls and mails go).",
    )
    sandbox_sms_receipts: Literal["delivered", "never"] = Field(
        "delivered",
        description="Development: `never` leaves the sandbox's texts without a delivery receipt, "
        "so they fall back after the receipt timeout.",
    )
    receipt_timeout_seconds: float = Field(
        60.0,
        gt=0,
        description="How long a text awaiting a receipt may go without one (the sandbox's; the "
        "HTTP gateway's is SMS_RECEIPT_TIMEOUT_SECONDS).",
    )
    fallback_poll_seconds: float = Field(
        1.0, gt=0, description="How often each replica looks for fallbacks that are due."
    )
    fallback_lease_seconds: float = Field(
        60.0,
        gt=0,
        description="How long a replica holds a fallback it runs; one that stopped midway is run "
        "again by another after this.",
    )

    # -- how the messages read --
    brand_name: BrandName = Field(
        "signgate",
        description="The brand the messages name when the sender's policy gives none.",
    )
    default_locale: Locale = Field(
        "en",
        description="The messages' language when the recipient's locale (nor its language) has "
        "no templates.",
    )
    templates_dir: Path | None = Field(
        None,
        description="A directory of `<locale>.toml` message templates over the shipped ones "
        "(services/otp_dispatch/templates/; docs/operations.md).",
    )

    clock: Callable[[], datetime] = Field(
        default=utc_now,
        exclude=True,
        description="Now, for issue times and limits; tests inject one.",
    )

    @model_validator(mode="after")
    def _gateway_configured(self) -> OtpDispatchSettings:
        if self.sms_provider == "http" and not self.sms_gateway_url:
            raise ValueError(
                "sms_provider is http but SIGNGATE_OTP_DISPATCH_SMS_GATEWAY_URL is not set"
            )
        if self.voice_provider == "http" and not self.voice_gateway_url:
            raise ValueError(
                "voice_provider is http but SIGNGATE_OTP_DISPATCH_VOICE_GATEWAY_URL is not set"
            )
        if self.sms_receipt_timeout_seconds is not None and self.sms_receipt_secret is None:
            raise ValueError(
                "SIGNGATE_OTP_DISPATCH_SMS_RECEIPT_TIMEOUT_SECONDS needs "
                "SIGNGATE_OTP_DISPATCH_SMS_RECEIPT_SECRET (receipts are signed)"
            )
        return self

    def message_templates(self) -> MessageTemplates:
        """The shipped templates with the operator's over them, each checked (`TemplateError`)."""
        return load_message_templates(self.default_locale, self.brand_name, self.templates_dir)

    def receipt_timeout(self, provider: str) -> timedelta:
        """How long a message of ``provider`` may await its delivery receipt."""
        if provider == "http_sms" and self.sms_receipt_timeout_seconds is not None:
            return timedelta(seconds=self.sms_receipt_timeout_seconds)
        return timedelta(seconds=self.receipt_timeout_seconds)

    @property
    def limits(self) -> SendLimits:
        return SendLimits(
            resend_cooldown=timedelta(seconds=self.resend_cooldown_seconds),
            per_recipient=self.max_sends_per_recipient,
            recipient_window=timedelta(seconds=self.recipient_window_seconds),
            per_destination=self.max_sends_per_destination,
            destination_window=timedelta(seconds=self.destination_window_seconds),
        )
