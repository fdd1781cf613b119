"""A running service reports its health and metrics over HTTP."""

from __future__ import annotations

import httpx

from libs.runtime.service import Service
from libs.runtime.settings import ConnectionSettings
from signgate_contracts import encode
from tests.integration.ledger.app import COMMANDS, Deposit
from tests.support.kafka import TopicWatcher, producer
from tests.support.waiting import until


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


async def test_health_fails_while_records_wait_and_no_committed_offset_moves_and_recovers(
        ledger_service: Service) -> None:
    """/health answers 503, naming the partition, once a record has waited past the committed offset
    for ``stall_after``; when the record is handled and its offset committed, it answers 200 again."""
    progress = ledger_service.progress
    stall_after, progress.stall_after = progress.stall_after, 0.3
    consumer = ledger_service.broker.subscribers[0].consumer
    partitions = list(consumer.assignment())
    connections = ledger_service.resources.settings.connections
    consumer.pause(*partitions)  # records arrive but are not read
    try:
        try:
            async with producer(connections.kafka_bootstrap) as client:
                await client.send_and_wait(connections.topic(COMMANDS.name),
                                           encode(Deposit(account="stalled", amount=1)), key=b"stalled")
            async with http(ledger_service) as client:
                stalled = await until(lambda: failing(client), timeout=20, what="/health failing")
        finally:
            consumer.resume(*partitions)
        async with http(ledger_service) as client:
            await until(lambda: healthy(client), timeout=20, what="/health recovered")
    finally:
        progress.stall_after = stall_after
    assert stalled["checks"]["progress"]["lag"] >= 1
    assert [name.split("/")[0] for name in stalled["checks"]["progress"]["stalled"]] == [
        connections.topic(COMMANDS.name)]


async def failing(client: httpx.AsyncClient) -> dict | None:
    response = await client.get("/health")
    return response.json() if response.status_code == 503 else None


async def healthy(client: httpx.AsyncClient) -> bool:
    return (await client.get("/health")).status_code == 200


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
