"""Composition root of the OTP-dispatch service (Redis only: no Postgres schema)."""

from __future__ import annotations

from faststream import FastStream
from pydantic_settings import SettingsConfigDict

from libs.service import ServiceDefinition, ServiceSettings, build_app
from signgate_contracts.topics import OTP_REQUESTS


class OtpDispatchSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SIGNGATE_OTP_DISPATCH_", extra="ignore")


DEFINITION = ServiceDefinition(
    name="otp_dispatch",
    uses_redis=True,
    consumes=(OTP_REQUESTS,),
    handlers={},
)


def create_app(settings: OtpDispatchSettings | None = None) -> FastStream:
    return build_app(DEFINITION, settings or OtpDispatchSettings())
