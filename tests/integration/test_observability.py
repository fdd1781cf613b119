"""A running service reports its health and metrics over HTTP."""

from __future__ import annotations

import httpx

from libs.service import Service
from libs.settings import ConnectionSettings
from signgate_contracts import encode
from tests.integration.ledger.app import COMMANDS, Deposit
from tests.support.kafka import TopicWatcher, producer


def http(service: Service) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://service")


async def test_health_reports_every_dependency_and_progress(ledger_service: Service) -> None:
    """/health answers 200 with the broker, Postgres, Redis and consumer progress all OK."""
    async with http(ledger_service) as client:
        response = await client.get("/health")

    body = response.json()
    assert response.status_code == 200, body
    assert set(body["checks"]) == {"broker", "postgres", "redis", "progress"}
    assert all(check["ok"] for check in body["checks"].values())


async def test_health_fails_when_records_wait_and_none_is_handled(ledger_service: Service) -> None:
    """/health answers 503 when the consumer has records waiting but has handled none for too long."""
    progress = ledger_service.pipeline.progress
    assert progress is not None
    stall_after, progress.stall_after = progress.stall_after, -1.0
    try:
        progress.last_handled -= 1
        consumer = ledger_service.broker.subscribers[0].consumer
        partitions = list(consumer.assignment())
        consumer.pause(*partitions)  # records arrive but are not read
        try:
            command = Deposit(account="stalled", amount=1)
            async with producer(ledger_service.resources.settings.connections.kafka_bootstrap) as client:
                connections = ledger_service.resources.settings.connections
                await client.send_and_wait(connections.topic(COMMANDS.name), encode(command), key=b"stalled")
            async with http(ledger_service) as client:
                statuses = []
                for _ in range(50):  # the record reaches the broker's end offset promptly
                    response = await client.get("/health")
                    statuses.append(response.status_code)
                    if response.status_code == 503:
                        break
        finally:
            consumer.resume(*partitions)
    finally:
        progress.stall_after = stall_after
    assert 503 in statuses


async def test_metrics_count_published_messages_by_type(
    ledger_service: Service, ledger_connections: ConnectionSettings, ledger_watch: TopicWatcher
) -> None:
    """/metrics exposes signgate's counters and FastStream's per-topic metrics in Prometheus text."""
    command = Deposit(account="metered", amount=2)
    async with producer(ledger_connections.kafka_bootstrap) as client:
        await client.send_and_wait(ledger_connections.topic(COMMANDS.name), encode(command), key=b"metered")
    await ledger_watch.outcome(command.correlation_id)

    async with http(ledger_service) as client:
        text = (await client.get("/metrics")).text

    assert 'signgate_messages_published_total{service="ledger",type="ledger.deposited"}' in text
    assert "faststream_received_messages_total" in text
