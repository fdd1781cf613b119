"""Composition root of the authentication service."""

from __future__ import annotations

from pathlib import Path

from faststream import FastStream
from pydantic_settings import SettingsConfigDict

from libs.accounts import ACCOUNT_STATE_HANDLERS
from libs.service import ServiceDefinition, ServiceSettings, build_app
from signgate_contracts.topics import (
    AUTHENTICATION_COMMANDS,
    IDENTITY_EVENTS,
    OTP_EVENTS,
    WORKFLOW_EVENTS,
)


class AuthenticationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SIGNGATE_AUTHENTICATION_", extra="ignore")


DEFINITION = ServiceDefinition(
    name="authentication",
    schema="authentication",
    uses_redis=True,
    consumes=(AUTHENTICATION_COMMANDS, WORKFLOW_EVENTS, IDENTITY_EVENTS, OTP_EVENTS),
    handlers={
        **ACCOUNT_STATE_HANDLERS,  # API users' account state, for verifying tokens
    },
    folder=Path(__file__).parent,
)


def create_app(settings: AuthenticationSettings | None = None) -> FastStream:
    return build_app(DEFINITION, settings or AuthenticationSettings())
