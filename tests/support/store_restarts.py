"""Restarting Postgres and Redis under running services: stores of a test's own, the services'
health as they report it over HTTP, and a ledger of the commands sent and their outcomes."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import httpx
import psutil
from aiokafka import AIOKafkaProducer

from libs.runtime.settings import ConnectionSettings
from signgate_contracts import Command, encode
from signgate_contracts.topics import OUTCOME_TOPIC
from tests.support.kafka import TopicWatcher
from tests.support.processes import ServiceProcess
from tests.support.waiting import until

ACCOMPANYING = {"identity.user_locked_out_v2"}
"""Facts published beside a command's outcome (the failure that locked), not outcomes of their own."""


def http_port(process: ServiceProcess) -> int | None:
    """The port a service process serves /health on (it was started with ``--port 0``)."""
    assert process.process is not None
    try:
        listening = [c.laddr.port for c in psutil.Process(process.process.pid).net_connections("tcp")
                     if c.status == psutil.CONN_LISTEN]
    except psutil.Error:
        return None
    return listening[0] if listening else None


async def health(process: ServiceProcess) -> dict[str, Any] | None:
    """The service's /health answer with its HTTP status (``{"http": 200, "status": ..., "checks": ...}``),
    or None while it does not answer."""
    port = http_port(process)
    if port is None:
        return None
    try:
        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.get(f"http://127.0.0.1:{port}/health")
    except httpx.HTTPError:
        return None
    return {"http": response.status_code, **response.json()}


async def all_healthy(processes: Iterable[ServiceProcess]) -> bool:
    for process in processes:
        answer = await health(process)
        if answer is None or answer["http"] != 200:
            return False
    return True


async def all_failing(processes: Iterable[ServiceProcess], check: str) -> dict[str, Any] | None:
    """Every process answers 503 with ``check`` failing: their answers, else None."""
    answers = {}
    for process in processes:
        answer = await health(process)
        if answer is None or answer["http"] != 503 or answer["checks"][check]["ok"]:
            return None
        answers[process.factory] = answer
    return answers


class Ledger:
    """Commands sent as an upstream system sends them, and what each caused on its outcome topic,
    read incrementally from a TopicWatcher of the outcome topics."""

    def __init__(self, connections: ConnectionSettings, producer: AIOKafkaProducer, watch: TopicWatcher) -> None:
        self.connections = connections
        self.producer = producer
        self.watch = watch
        self.owed: dict[str, str] = {}
        """Correlation id -> the deployed topic its outcome goes to."""
        self.seen: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        """Correlation id -> event id -> body, of the records on its outcome topic."""
        self.republished = 0
        """Records seen again with an event id already seen (a redelivery's republication)."""
        self._read = 0

    async def send(self, topic: str, key: str, *commands: Command) -> list[Command]:
        """Publish ``commands`` to a registry command topic, in order; returns once the broker has them."""
        deployed = self.connections.topic(topic)
        outcome_topic = self.connections.topic(OUTCOME_TOPIC[topic].name)
        for command in commands:
            self.owed[str(command.correlation_id)] = outcome_topic
            await self.producer.send(deployed, encode(command), key=key.encode())
        await self.producer.flush()
        return list(commands)

    def _catch_up(self) -> None:
        fresh, self._read = self.watch.records[self._read:], len(self.watch.records)
        for record in fresh:
            try:
                body = json.loads(record.value)
            except ValueError:
                continue
            correlation = body.get("correlation_id") if isinstance(body, dict) else None
            if self.owed.get(correlation) == record.topic:
                self.republished += body["event_id"] in self.seen[correlation]
                self.seen[correlation][body["event_id"]] = body

    def outcomes(self, command: Command | str) -> list[dict[str, Any]]:
        """What the command caused on its outcome topic, distinct by event id, the accompanying facts left out."""
        self._catch_up()
        return [b for b in self.seen.get(str(getattr(command, "correlation_id", command)), {}).values()
                if b["type"] not in ACCOMPANYING]

    def outcome(self, command: Command) -> dict[str, Any]:
        [first, *_] = self.outcomes(command)
        return first

    async def answered(self, commands: Iterable[Command | str] | None = None, *, timeout: float = 60.0,
                       what: str = "an outcome of every command") -> None:
        """Wait until every command (every one sent, by default) has at least one outcome."""
        ids = [str(getattr(c, "correlation_id", c)) for c in (self.owed if commands is None else commands)]

        async def done() -> bool:
            return all(self.outcomes(c) for c in ids)

        try:
            await until(done, timeout=timeout, what=what)
        except AssertionError as error:
            missing = [c for c in ids if not self.outcomes(c)]
            raise AssertionError(f"{error}: {len(missing)} of {len(ids)} have none") from None

    def tally(self) -> tuple[list[str], list[str]]:
        """(lost, answered more than once) over every command sent."""
        self._catch_up()
        lost = [c for c in self.owed if not self.outcomes(c)]
        twice = [c for c in self.owed if len(self.outcomes(c)) > 1]
        return lost, twice
