"""The provisioning step before services start: apply every schema's migrations, create the topics.

Run as ``python -m libs.tools.provision`` (the compose file's one-shot job) or called by `make run`
and the test fixtures. Safe to run again: it applies only what is missing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from libs.runtime.kafka_security import KafkaSecurityError
from libs.runtime.logging import configure_logging, get_logger
from libs.runtime.migrations import migrate, service_tracks
from libs.runtime.service import ServiceDefinition
from libs.runtime.settings import ConnectionSettings
from libs.tools.topics_admin import create_topics

log = get_logger(__name__)


class ProvisionSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIGNGATE_PROVISION_", extra="ignore")

    connections: ConnectionSettings = Field(default_factory=ConnectionSettings)
    replication_factor: int = Field(
        1, ge=1, description="Replicas of each topic on a real cluster."
    )


async def migrate_services(database_url: str, services: Iterable[ServiceDefinition]) -> None:
    for service in services:
        if service.schema and service.folder:
            await migrate(
                database_url,
                service.schema,
                service_tracks(service.schema, service.folder, service.shared_tracks),
            )


async def provision(settings: ProvisionSettings, services: Iterable[ServiceDefinition]) -> None:
    await migrate_services(settings.connections.database_url, services)
    await create_topics(settings.connections, replication_factor=settings.replication_factor)


def main() -> None:
    from services.registry import SERVICES  # the composition: libs knows services only here

    settings = ProvisionSettings()
    configure_logging(
        settings.connections.log_level, settings.connections.log_format, service="provision"
    )
    try:
        asyncio.run(provision(settings, SERVICES))
    except KafkaSecurityError as error:  # one line that says what to fix, not a traceback
        log.error("kafka refused the provisioning's security settings", reason=str(error))
        raise SystemExit(1) from None
    log.info("provisioned")


if __name__ == "__main__":
    main()
