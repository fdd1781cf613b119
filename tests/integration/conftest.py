"""Fixtures for integration tests of the message spine: the test ledger service on real servers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from libs.runtime.migrations import migrate, service_tracks
from libs.runtime.service import Service, build_service
from libs.runtime.settings import ConnectionSettings
from libs.tools.topics_admin import create_topics
from tests.integration.ledger import app as ledger
from tests.support.kafka import TopicWatcher


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
