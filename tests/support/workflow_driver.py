"""Driving the workflow service on a real broker: callers with tokens, commands, their outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer, ConsumerRecord

from libs.runtime.settings import ConnectionSettings
from libs.security.secrets import SecretSettings, generate_pepper
from libs.security.tokens import KeyPair, TokenIssuer, TokenSettings, generate_key_pair
from services.workflow.app import WorkflowSettings
from signgate_contracts import encode
from signgate_contracts.envelope import Command
from signgate_contracts.topics import WORKFLOW_COMMANDS, WORKFLOW_EVENTS, WORKFLOW_REPLIES
from tests.support.kafka import TopicWatcher
from tests.support.processes import ServiceProcess

FACTORY = "services.workflow.app:create_app"
CHEAP_ARGON2 = {"argon2_memory_kib": 8192, "argon2_time_cost": 1}
"""Tests hash many access codes; the production parameters are tested in tests/unit/test_secrets.py."""


@dataclass(frozen=True)
class Keys:
    """The token key pair and pepper of one test module's workflow service."""

    tokens: KeyPair = field(default_factory=generate_key_pair)
    pepper: str = field(default_factory=generate_pepper)

    def settings(self, connections: ConnectionSettings, **overrides: Any) -> WorkflowSettings:
        return WorkflowSettings(
            connections=connections,
            secrets=SecretSettings(pepper=self.pepper, **CHEAP_ARGON2),
            tokens=TokenSettings(public_key=self.tokens.public_key),
            retry_first_delay=0.01,
            outbox_poll_interval=0.2,
            **overrides,
        )

    def env(self) -> dict[str, str]:
        """The same settings for a service process."""
        return {
            "SIGNGATE_SECRET_PEPPER": self.pepper,
            "SIGNGATE_SECRET_ARGON2_MEMORY_KIB": str(CHEAP_ARGON2["argon2_memory_kib"]),
            "SIGNGATE_SECRET_ARGON2_TIME_COST": str(CHEAP_ARGON2["argon2_time_cost"]),
            "SIGNGATE_TOKEN_PUBLIC_KEY": self.tokens.public_key,
            "SIGNGATE_WORKFLOW_RETRY_FIRST_DELAY": "0.01",
            "SIGNGATE_WORKFLOW_OUTBOX_POLL_INTERVAL": "0.2",
        }

    def issuer(self) -> TokenIssuer:
        return TokenIssuer(self.tokens.private_key)


@dataclass(frozen=True)
class User:
    """An API user as identity would know them: an id (the token's subject) and a token."""

    user_id: str
    token: str

    @classmethod
    def new(cls, issuer: TokenIssuer, name: str = "sender") -> User:
        user_id = str(uuid.uuid4())
        return cls(user_id, issuer.issue(user_id, f"{name}-{user_id[:8]}").token)


def correlation(record: ConsumerRecord) -> str | None:
    for key, value in record.headers or ():
        if key == "correlation_id":
            return value.decode()
    return None


def document(record: ConsumerRecord) -> dict[str, Any]:
    return json.loads(record.value)


class OutcomeWatcher(TopicWatcher):
    """A TopicWatcher that indexes records by correlation id, to wait on many commands at once."""

    def __init__(self, bootstrap: str, *topics: str) -> None:
        super().__init__(bootstrap, *topics)
        self.by_correlation: dict[str, list[ConsumerRecord]] = defaultdict(list)

    async def _collect(self) -> None:
        async for record in self._consumer:
            async with self._changed:
                self.records.append(record)
                self.by_correlation[correlation(record) or ""].append(record)
                self._changed.notify_all()

    async def wait_all(self, correlation_ids: Iterable[str], *, timeout: float = 60.0) -> None:
        """Wait until every correlation id has at least one record; fail naming how many have none."""
        wanted = set(correlation_ids)
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: wanted <= self.by_correlation.keys())
        except TimeoutError:
            missing = wanted - self.by_correlation.keys()
            raise AssertionError(f"{len(missing)} of {len(wanted)} commands have no outcome after {timeout}s") from None

    async def wait_outcomes(self, correlation_id: str, count: int = 1, *, timeout: float = 30.0
                            ) -> list[dict[str, Any]]:
        """Wait until one command has ``count`` distinct outcomes; returns them."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: len(self.outcomes(correlation_id)) >= count)
        except TimeoutError:
            raise AssertionError(
                f"{correlation_id}: {count} outcome(s) expected in {timeout}s, saw {self.outcomes(correlation_id)}"
            ) from None
        return self.outcomes(correlation_id)

    async def wait_count(self, count: int, *, timeout: float = 60.0) -> None:
        """Wait until at least ``count`` distinct correlation ids have a record."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.by_correlation) >= count)

    def outcomes(self, correlation_id: str) -> list[dict[str, Any]]:
        """The distinct messages (by event id) caused by one command, in publication order."""
        seen: dict[str, dict[str, Any]] = {}
        for record in self.by_correlation.get(correlation_id, []):
            body = document(record)
            seen.setdefault(body["event_id"], body)
        return list(seen.values())


class WorkflowClient:
    """Publishes workflow commands as an upstream system would, and reads their outcomes."""

    def __init__(self, connections: ConnectionSettings, producer: AIOKafkaProducer, watcher: OutcomeWatcher) -> None:
        self.connections = connections
        self.producer = producer
        self.watcher = watcher
        self.topic = connections.topic(WORKFLOW_COMMANDS.name)

    async def publish(self, commands: Sequence[Command]) -> None:
        """Publish in a burst through one producer, keyed by package id; returns once all are acknowledged."""
        sent = [
            await self.producer.send(self.topic, encode(command), key=command.package_id.encode())
            for command in commands
        ]
        await asyncio.gather(*sent)

    async def send(self, command: Command, *, timeout: float = 30.0) -> dict[str, Any]:
        """Publish one command and return its first outcome."""
        return (await self.send_expecting(command, 1, timeout=timeout))[0]

    async def send_expecting(self, command: Command, count: int, *, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Publish one command and return its first ``count`` outcomes."""
        await self.publish([command])
        return await self.watcher.wait_outcomes(str(command.correlation_id), count, timeout=timeout)

    async def send_raw(self, text: str, key: str, correlation_id: str, count: int = 1, *,
                       timeout: float = 30.0) -> list[dict[str, Any]]:
        """Publish a command given as JSON text (a body verbatim); returns its first ``count`` outcomes."""
        await self.producer.send_and_wait(self.topic, text.encode(), key=key.encode())
        return await self.watcher.wait_outcomes(correlation_id, count, timeout=timeout)

@contextlib.asynccontextmanager
async def workflow_client(connections: ConnectionSettings, *extra_topics: str) -> AsyncIterator[WorkflowClient]:
    """A producer and a watcher of the workflow's events, replies and ``extra_topics``, from now on."""
    topics = [connections.topic(WORKFLOW_EVENTS.name), connections.topic(WORKFLOW_REPLIES.name), *extra_topics]
    producer = AIOKafkaProducer(bootstrap_servers=connections.kafka_bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        async with OutcomeWatcher(connections.kafka_bootstrap, *topics) as watcher:
            yield WorkflowClient(connections, producer, watcher)
    finally:
        await producer.stop()


class WorkflowProcess(ServiceProcess):
    """The workflow service as its own OS process."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        super().__init__(FACTORY, env, log_path)
