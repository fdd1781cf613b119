"""Composition root of the identity service."""

from __future__ import annotations

from pathlib import Path

from faststream import FastStream
from pydantic_settings import SettingsConfigDict

from libs.service import ServiceDefinition, ServiceSettings, build_app
from signgate_contracts.topics import IDENTITY_COMMANDS


class IdentitySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SIGNGATE_IDENTITY_", extra="ignore")


DEFINITION = ServiceDefinition(
    name="identity",
    schema="identity",
    uses_redis=True,
    consumes=(IDENTITY_COMMANDS,),
    handlers={},
    folder=Path(__file__).parent,
)


def create_app(settings: IdentitySettings | None = None) -> FastStream:
    return build_app(DEFINITION, settings or IdentitySettings())
