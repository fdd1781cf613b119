"""Composition root of the workflow service."""

from __future__ import annotations

from pathlib import Path

from faststream import FastStream
from pydantic_settings import SettingsConfigDict

from libs.service import ServiceDefinition, ServiceSettings, build_app
from signgate_contracts.topics import AUTHENTICATION_EVENTS, WORKFLOW_COMMANDS


class WorkflowSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SIGNGATE_WORKFLOW_", extra="ignore")


DEFINITION = ServiceDefinition(
    name="workflow",
    schema="workflow",
    consumes=(WORKFLOW_COMMANDS, AUTHENTICATION_EVENTS),
    handlers={},
    folder=Path(__file__).parent,
)


def create_app(settings: WorkflowSettings | None = None) -> FastStream:
    return build_app(DEFINITION, settings or WorkflowSettings())
