"""Composition root of the OTP-dispatch service (Redis only: no Postgres schema).

Consumes ``signgate.otp.requests`` and answers each request on ``signgate.otp.events``. Its
settings are `OtpDispatchSettings` (``SIGNGATE_OTP_DISPATCH_*``, and the pepper shared with
the authentication service, ``SIGNGATE_OTP_PEPPER``).
"""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from libs.runtime.service import ServiceDefinition, build_app
from libs.security.required_secrets import require
from services.otp_dispatch.settings import OtpDispatchSettings
from services.otp_dispatch.use_cases import dispatch_otp
from signgate_contracts.otp import OtpDeliveryRequested
from signgate_contracts.topics import OTP_REQUESTS

DEFINITION = ServiceDefinition(
    dependencies=lambda resources: resources,  # TRANSITIONAL: the resources as they are
    settings=OtpDispatchSettings,
    name="otp_dispatch",
    uses_redis=True,
    consumes=(OTP_REQUESTS,),
    handlers={OtpDeliveryRequested: dispatch_otp},
)


def create_app(settings: OtpDispatchSettings | None = None) -> AsgiFastStream:
    settings = settings or OtpDispatchSettings()
    require("otp_dispatch", {"SIGNGATE_OTP_PEPPER": settings.otp_store.pepper})
    return build_app(DEFINITION, settings)
