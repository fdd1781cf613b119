"""A service process writes only JSON lines, and names the record it handles on each of them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from libs.runtime.settings import ConnectionSettings
from signgate_contracts import encode
from tests.integration.conftest import prepare_ledger
from tests.integration.ledger.app import COMMANDS, EVENTS, Deposit
from tests.support.kafka import TopicWatcher, producer
from tests.support.processes import ServiceProcess, service_env
from tests.support.waiting import until

FACTORY = "tests.integration.ledger.app:create_app"


def lines(process: ServiceProcess) -> list[dict[str, Any]]:
    """Every line the process wrote, each parsed as JSON (a line that is not fails the test)."""
    return [json.loads(line) for line in process.log().splitlines()]


def handling(logged: list[dict[str, Any]], correlation_id: str) -> list[dict[str, Any]]:
    """The lines from FastStream's "Received" of the record with ``correlation_id`` to the last line
    naming it: what the process wrote while it handled that record and published what it caused."""
    named = [n for n, line in enumerate(logged) if line.get("correlation_id") == correlation_id]
    [start] = [n for n in named if logged[n]["event"] == "Received"]
    return logged[start:named[-1] + 1]


async def test_every_line_is_json_and_every_line_written_while_a_record_is_handled_names_it(
    provisioned: ConnectionSettings, tmp_path: Path
) -> None:
    """uvicorn's, FastStream's, the libraries' and signgate's lines are all JSON objects, and each line
    written while a command is handled, refused or dead-lettered, and while its outcome is published,
    carries the command's correlation id, event id and type."""
    connections = provisioned.model_copy(update={"topic_prefix": f"{provisioned.topic_prefix}logs."})
    await prepare_ledger(connections)
    env = service_env(connections, SIGNGATE_LOG_LEVEL="DEBUG", SIGNGATE_LEDGER_RETRY_FIRST_DELAY="0.01")
    commands = [Deposit(account="logs", amount=1), Deposit(account="logs", amount=2, behaviour="refuse"),
                Deposit(account="logs", amount=3, behaviour="poison")]
    service = ServiceProcess(FACTORY, env, tmp_path / "service.log").start()
    try:
        async with (TopicWatcher(connections.kafka_bootstrap, connections.topic(EVENTS.name)) as watch,
                    producer(connections.kafka_bootstrap) as client):
            for command in commands:  # one at a time: each is the only record in flight
                await client.send_and_wait(connections.topic(COMMANDS.name), encode(command), key=b"logs")
                await watch.outcome(command.correlation_id, timeout=60)
                await until(lambda c=command: published(service, str(c.correlation_id)), timeout=20,
                            what="the outcome's publication logged")
    finally:
        service.stop()

    logged = lines(service)
    loggers = {line.get("logger") for line in logged}
    assert {"uvicorn.error", "faststream", "signgate.ledger.broker"} <= loggers, loggers
    assert not any("\x1b[" in json.dumps(line) for line in logged)
    for command in commands:
        window = handling(logged, str(command.correlation_id))
        assert [line for line in window if line.get("correlation_id") != str(command.correlation_id)] == []
        assert {line["event_id"] for line in window if "event_id" in line} == {str(command.event_id)}
        events = [line["event"] for line in window]
        assert {"Received", "Processed", "record published"} <= set(events), events
    refused, poisoned = (handling(logged, str(c.correlation_id)) for c in commands[1:])
    assert "command refused" in [line["event"] for line in refused]
    [failure] = [line for line in poisoned if line["event"] == "handling failed; dead-lettered"]
    assert failure["message_type"] == "ledger.deposit" and failure["exception"]
    published_to = {line["destination"] for line in poisoned if line["event"] == "record published"}
    assert published_to == {connections.topic(EVENTS.name), connections.topic(COMMANDS.dlq)}


async def published(service: ServiceProcess, correlation_id: str) -> bool:
    return any(line.get("correlation_id") == correlation_id and line["event"] == "record published"
               for line in lines(service))
