"""Email delivery through an SMTP server with aiosmtplib (Mailpit in compose, aiosmtpd in tests)."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib

from services.otp_dispatch.providers import Delivery, DeliveryFailed, Receipt
from services.otp_dispatch.settings import OtpDispatchSettings

# Connection trouble and 4xx replies may pass; 5xx replies (bad address, refused) will not.
_TRANSIENT_ERRORS = (
    aiosmtplib.SMTPConnectError,
    aiosmtplib.SMTPServerDisconnected,
    aiosmtplib.SMTPTimeoutError,
    aiosmtplib.SMTPConnectTimeoutError,
    aiosmtplib.SMTPReadTimeoutError,
    ConnectionError,
    OSError,
)


class SmtpProvider:
    """Mails each code over a connection of its own: SMTP servers drop idle sessions, so a session
    held between codes would need reconnecting, and codes are rare enough not to need one."""

    name = "smtp"

    def __init__(self, settings: OtpDispatchSettings) -> None:
        self.settings = settings

    async def deliver(self, delivery: Delivery) -> Receipt:
        settings = self.settings
        message = EmailMessage()
        message["From"] = settings.smtp_from
        message["To"] = delivery.destination
        message["Subject"] = delivery.subject
        domain = settings.smtp_from.rpartition("@")[2].strip("> ") or None
        message["Message-ID"] = message_id = make_msgid(domain=domain)
        message.set_content(delivery.text)
        if delivery.html:
            message.add_alternative(delivery.html, subtype="html")
        try:
            await aiosmtplib.send(
                message,
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_username,
                password=settings.smtp_password.get_secret_value()
                if settings.smtp_password
                else None,
                use_tls=settings.smtp_tls == "tls",
                start_tls=settings.smtp_tls == "starttls",
                timeout=settings.delivery_timeout_seconds,
            )
        except aiosmtplib.SMTPResponseException as error:
            # The reply text is the server's and may quote the message: keep only its code.
            raise DeliveryFailed(
                f"smtp {error.code} ({type(error).__name__})", transient=400 <= error.code < 500
            ) from None
        except aiosmtplib.SMTPRecipientsRefused as error:
            codes = [refused.code for refused in error.recipients]
            transient = bool(codes) and all(400 <= code < 500 for code in codes)
            raise DeliveryFailed(
                f"smtp recipient refused {codes[0] if codes else ''}".strip(), transient=transient
            ) from None
        except _TRANSIENT_ERRORS as error:
            raise DeliveryFailed(type(error).__name__, transient=True) from None
        except aiosmtplib.SMTPException as error:
            raise DeliveryFailed(type(error).__name__, transient=False) from None
        return Receipt(self.name, message_id.strip("<>"))

    async def aclose(self) -> None:
        """Nothing to close: no connection outlives its message."""
