"""A running service reports its liveness, readiness and metrics over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from libs.runtime.service import Service, build_service
from libs.runtime.settings import ConnectionSettings
from signgate_contracts import encode
from tests.integration.conftest import ledger_settings, prepare_ledger
from tests.integration.ledger import app as ledger
from tests.integration.ledger.app import COMMANDS, Deposit
from tests.support.fault_proxy import FaultProxy
from tests.support.kafka import TopicWatcher, producer
from tests.support.monitoring import SCRAPED_BY_PROMETHEUS, exposed_names, expressions, metric_names
from tests.support.waiting import until

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def http(service: Service) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://service")


async def scrape(client: httpx.AsyncClient) -> tuple[str, Samples]:
    """/metrics as text, and its samples by (name, labels)."""
    text = (await client.get("/metrics")).text
    samples = {(s.name, frozenset(s.labels.items())): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    return text, samples


def values(samples: Samples, name: str, **labels: str) -> dict[frozenset[tuple[str, str]], float]:
    """The samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return {found: value for (sample, found), value in samples.items() if sample == name and wanted <= found}


def one(samples: Samples, name: str, **labels: str) -> float:
    [value] = values(samples, name, **labels).values()
    return value


async def test_readiness_reports_every_dependency_and_progress_and_liveness_answers(
        ledger_service: Service) -> None:
    """/readyz and its older name /health answer 200 with the broker, Postgres, Redis and consumer
    progress all OK; /livez answers 200."""
    async with http(ledger_service) as client:
        ready, health, live = [await client.get(path) for path in ("/readyz", "/health", "/livez")]

    body = ready.json()
    assert ready.status_code == 200, body
    assert set(body["checks"]) == {"broker", "postgres", "redis", "progress"}
    assert all(check["ok"] for check in body["checks"].values())
    assert health.status_code == 200 and health.json()["checks"].keys() == body["checks"].keys()
    assert (live.status_code, live.json()) == (200, {"status": "ok"})


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


async def failing(client: httpx.AsyncClient, path: str = "/health") -> dict | None:
    response = await client.get(path)
    return response.json() if response.status_code == 503 else None


async def healthy(client: httpx.AsyncClient, path: str = "/health") -> bool:
    return (await client.get(path)).status_code == 200


async def test_consumer_lag_gauge_rises_while_records_wait_and_returns_to_zero_once_handled(
        ledger_service: Service) -> None:
    """signgate_consumer_lag shows a record waiting on its partition while the consumer is paused, and
    falls back to 0 (the committed offset having moved past it) once the record is handled."""
    consumer = ledger_service.broker.subscribers[0].consumer
    partitions = list(consumer.assignment())
    connections = ledger_service.resources.settings.connections
    topic = connections.topic(COMMANDS.name)

    async def lag(client: httpx.AsyncClient) -> Samples:
        _, samples = await scrape(client)
        return samples

    async with http(ledger_service) as client:
        before = await lag(client)
        assert len(values(before, "signgate_consumer_lag", topic=topic)) == len(partitions)
        consumer.pause(*partitions)
        try:
            async with producer(connections.kafka_bootstrap) as kafka:
                sent = await kafka.send_and_wait(topic, encode(Deposit(account="lagging", amount=1)),
                                                 key=b"lagging")
            waiting = {"topic": topic, "partition": str(sent.partition)}

            async def lagging() -> Samples | None:
                samples = await lag(client)
                return samples if one(samples, "signgate_consumer_lag", **waiting) > 0 else None

            during = await until(lagging, timeout=20, what="the lag gauge above 0")
        finally:
            consumer.resume(*partitions)

        async def caught_up() -> Samples | None:
            samples = await lag(client)
            lags = values(samples, "signgate_consumer_lag", topic=topic)
            return samples if lags and not any(lags.values()) else None

        after = await until(caught_up, timeout=20, what="the lag gauge back at 0")

    assert one(during, "signgate_consumer_lag", **waiting) >= 1
    assert one(after, "signgate_consumer_committed_offset", **waiting) > one(
        during, "signgate_consumer_committed_offset", **waiting)


async def test_metrics_count_published_messages_handling_and_dead_letters_with_bounded_labels(
    ledger_service: Service, ledger_connections: ConnectionSettings, ledger_watch: TopicWatcher
) -> None:
    """/metrics counts a handled command by its type and where its outcome went (a registry name), an
    undecodable record as type "unknown" and a dead letter; it serves the outbox, readiness and
    process gauges labelled with the service, and FastStream's metrics without a deployed topic name
    as a destination."""
    command = Deposit(account="metered", amount=2)
    commands = ledger_connections.topic(COMMANDS.name)
    async with producer(ledger_connections.kafka_bootstrap) as client:
        await client.send_and_wait(commands, encode(command), key=b"metered")
        await client.send_and_wait(commands, b"not json", key=b"metered")
    await ledger_watch.outcome(command.correlation_id)
    await ledger_watch.wait_for(lambda r: r.topic == f"{commands}.dlq")

    async with http(ledger_service) as client:
        text, samples = await scrape(client)

    service = {"service": "ledger"}
    assert one(samples, "signgate_messages_published_total", **service, type="ledger.deposited",
               destination=ledger.EVENTS.name) >= 1
    assert one(samples, "signgate_handling_seconds_count", **service, type="ledger.deposit") >= 1
    assert one(samples, "signgate_handling_seconds_count", **service, type="unknown") >= 1
    assert one(samples, "signgate_messages_dead_lettered_total", **service, topic=commands) >= 1
    assert one(samples, "signgate_ready", **service) == 1
    assert one(samples, "signgate_outbox_backlog", **service) >= 0
    assert one(samples, "signgate_outbox_oldest_age_seconds", **service) >= 0
    assert one(samples, "process_resident_memory_bytes", **service) > 0
    assert "process_cpu_seconds_total" in {name for name, _ in samples}
    destinations = {dict(labels)["destination"] for (name, labels) in samples
                    if name.startswith(("faststream_published", "signgate_messages_published"))}
    assert destinations and not any(d.startswith(ledger_connections.topic_prefix) for d in destinations)
    assert "faststream_received_messages_total" in text


async def test_every_metric_the_dashboard_and_the_alerts_read_is_served(ledger_service: Service) -> None:
    """Every metric name in deploy/monitoring's expressions is in a running service's /metrics."""
    async with http(ledger_service) as client:
        text = (await client.get("/metrics")).text
    served = exposed_names(text_string_to_metric_families(text)) | SCRAPED_BY_PROMETHEUS
    used = {name for expression in expressions() for name in metric_names(expression)}
    assert used <= served, sorted(used - served)


@pytest.fixture
async def proxied_ledger(ledger_connections: ConnectionSettings) -> AsyncIterator[tuple[Service, FaultProxy]]:
    """A ledger service of its own topics whose Postgres is reached through a proxy the test can hang."""
    database = urlsplit(ledger_connections.database_url)
    async with FaultProxy(f"{database.hostname}:{database.port}") as proxy:
        netloc = f"{database.username or ''}{'@' if database.username else ''}127.0.0.1:{proxy.port}"
        connections = ledger_connections.model_copy(update={
            "database_url": urlunsplit(database._replace(netloc=netloc)),
            "topic_prefix": f"{ledger_connections.topic_prefix}probes."})
        await prepare_ledger(connections)
        service = build_service(ledger.DEFINITION, ledger_settings(connections))
        async with service.app:
            yield service, proxy


async def test_liveness_answers_while_postgres_is_unreachable_and_readiness_fails_until_it_is_back(
        proxied_ledger: tuple[Service, FaultProxy]) -> None:
    """With Postgres unreachable, /readyz (and /health) answer 503 naming postgres while /livez stays
    200; once Postgres answers again, /readyz answers 200."""
    service, proxy = proxied_ledger
    async with http(service) as client:
        await until(lambda: healthy(client, "/readyz"), timeout=20, what="/readyz ready at first")
        proxy.hang()
        try:
            not_ready = await until(lambda: failing(client, "/readyz"), timeout=20, what="/readyz failing")
            health = await client.get("/health")
            live = await client.get("/livez")
        finally:
            proxy.resume()
        await until(lambda: healthy(client, "/readyz"), timeout=20, what="/readyz ready again")

    assert not not_ready["checks"]["postgres"]["ok"]
    assert not_ready["checks"]["broker"]["ok"] and not_ready["checks"]["redis"]["ok"]
    assert health.status_code == 503
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
