"""Fixtures for integration tests: the test ledger service of the message spine, and the gateway on a deployment of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from libs.devstack.embedded import Endpoints
from libs.runtime.migrations import migrate, service_tracks
from libs.runtime.service import Service, build_service
from libs.runtime.settings import ConnectionSettings
from libs.tools.provision import ProvisionSettings, provision
from libs.tools.topics_admin import create_topics
from services.registry import SERVICES
from tests.e2e.steps import owner_token
from tests.integration.ledger import app as ledger
from tests.support.databases import own_database
from tests.support.gateway import RunningGateway, gateway_settings, running_gateway
from tests.support.kafka import TopicWatcher
from tests.support.system import System, running_system


async def prepare_ledger(connections: ConnectionSettings) -> None:
    await migrate(connections.database_url, "ledger", service_tracks("ledger", ledger.DEFINITION.folder))
    await create_topics(connections, ledger.TOPICS)


def ledger_settings(connections: ConnectionSettings) -> ledger.LedgerSettings:
    return ledger.LedgerSettings(connections=connections, retry_first_delay=0.01, outbox_poll_interval=0.2)


@pytest.fixture(scope="module")
async def ledger_connections(provisioned: ConnectionSettings) -> ConnectionSettings:
    await prepare_ledger(provisioned)
    return provisioned


@pytest.fixture(scope="module")
async def ledger_service(ledger_connections: ConnectionSettings) -> AsyncIterator[Service]:
    service = build_service(ledger.DEFINITION, ledger_settings(ledger_connections))
    async with service.app:
        yield service


@pytest.fixture
async def ledger_watch(ledger_connections: ConnectionSettings) -> AsyncIterator[TopicWatcher]:
    """Events and dead letters of the ledger, from now on."""
    topic = ledger_connections.topic
    async with TopicWatcher(
        ledger_connections.kafka_bootstrap, topic(ledger.EVENTS.name), topic(ledger.COMMANDS.dlq)
    ) as watcher:
        yield watcher


@pytest.fixture(scope="package")
async def gateway_connections(endpoints: Endpoints, connections: ConnectionSettings,
                              run_id: str) -> AsyncIterator[ConnectionSettings]:
    """A deployment of its own for the gateway's tests (database, topic and Redis prefixes): its
    services run for the whole package, and must not answer the other modules' commands nor
    publish their outboxes."""
    async with own_database(endpoints.database_url, f"{run_id}gw") as database_url:
        own = connections.model_copy(update={
            "database_url": database_url, "topic_prefix": f"{run_id}.gw.", "redis_prefix": f"{run_id}:gw:"})
        await provision(ProvisionSettings(connections=own), SERVICES)
        yield own


@pytest.fixture(scope="package")
async def system(gateway_connections: ConnectionSettings,
                 tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[System]:
    """All four services, for the gateway's tests (one set for every gateway module of this package)."""
    async with running_system(gateway_connections, tmp_path_factory.mktemp("gateway-otp")) as running:
        yield running


@pytest.fixture(scope="package")
async def gateway(system: System) -> AsyncIterator[RunningGateway]:
    """One gateway replica over real HTTP on the system's broker and Redis."""
    async with running_gateway(gateway_settings(system.connections)) as running:
        yield running


@pytest.fixture(scope="package")
async def token(system: System) -> str:
    """An API user's token (identity's AuthenticateUser), as a SigningHub caller holds one."""
    return await owner_token(system)
