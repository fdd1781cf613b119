"""Component tests: a service's handlers and batch executor on real Postgres and Redis, no broker.

A `ComponentService` is the service `libs.runtime.service.build_service` builds, with its
publisher's ``send``/``send_many`` replaced by an in-memory recorder before its resources open, so
its broker is never started. Records are handed straight to its `BatchExecutor` as the broker
would deliver them (aiokafka `ConsumerRecord`s on the deployed topic, signed by the topic's writer
where it has one); what the service publishes reaches the recorder through its outbox (or, for a
service without Postgres, straight from the executor), signed with the service's own record key
as the real publisher signs, so it can be handed on to another service's executor as it is.

    published = await authentication.handle(OpenDocumentWithPassword(...))
    [outcome] = outcomes(published, AUTHENTICATION_EVENTS)
    assert outcome["type"] == "authentication.recipient_locked_out"

Everything goes through the message contracts: commands and facts in, events, replies and
rejections out. Each session's component layer has a Postgres database and a Redis key prefix of
its own (`ComponentStack`), so no relay of another test layer claims its outbox rows.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka.structs import ConsumerRecord
from pydantic import SecretStr

from libs.runtime.messaging.publisher import Publication
from libs.runtime.redis_client import open_redis
from libs.runtime.service import Service, ServiceDefinition, ServiceSettings, build_service
from libs.runtime.settings import ConnectionSettings
from libs.security.otp_store import OtpStoreSettings
from libs.security.record_signatures import RecordSigner
from libs.security.secrets import SecretHasher, SecretSettings, generate_pepper
from libs.security.tokens import KeyPair, TokenIssuer, TokenSettings, generate_key_pair
from libs.tools.provision import migrate_services
from signgate_contracts import Message, Topic, encode
from signgate_contracts.identity import ExchangeApiKey, command_key, normalise_user_name
from tests.support.clock import MovableClock
from tests.support.databases import own_database
from tests.support.signing import TEST_SHARED_KEYS, signed_headers

CHEAP_ARGON2 = {"argon2_memory_kib": 8192, "argon2_time_cost": 1}
"""Tests hash many passwords; the production parameters are tested in tests/unit/test_secrets.py."""
_offsets = itertools.count()
"""Record offsets, unique in the session (a record without ids takes ids from its position)."""


@dataclass(frozen=True)
class Published:
    """One record a service published, as the broker would have got it (signed)."""

    topic: str
    """The registry name (the deployment's prefix removed), or the deployed name of a topic
    outside the registry (a caller's reply topic)."""
    deployed: str
    key: bytes | None
    value: bytes
    headers: dict[str, str] = field(compare=False)

    @cached_property
    def document(self) -> dict[str, Any]:
        return json.loads(self.value)

    def __getitem__(self, name: str) -> Any:
        return self.document[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.document.get(name, default)

    @property
    def type(self) -> str:
        return str(self.document.get("type"))

    def caused_by(self, message: Message) -> bool:
        return self.document.get("correlation_id") == str(message.correlation_id)


def on(published: Iterable[Published], topic: Topic | str) -> list[Published]:
    """The records of ``published`` on ``topic`` (a registry topic, or a deployed name)."""
    name = topic.name if isinstance(topic, Topic) else topic
    return [p for p in published if name in (p.topic, p.deployed)]


def outcome(published: Iterable[Published], topic: Topic | str) -> Published:
    """The one record of ``published`` on ``topic``: a command's outcome."""
    [found] = on(published, topic)
    return found


class Recorder:
    """Stands in for the service's publisher towards the broker: keeps every record, signed."""

    def __init__(self, connections: ConnectionSettings, signer: RecordSigner) -> None:
        self.connections = connections
        self.signer = signer
        self.records: list[Published] = []

    async def send(
        self, topic: str, key: bytes | None, payload: bytes, headers: dict[str, str]
    ) -> None:
        signed = self.signer.headers(topic, key, payload, headers)
        self.records.append(
            Published(self.connections.registry_name(topic), topic, key, payload, signed)
        )

    async def send_many(self, records: list[Publication]) -> None:
        for record in records:
            await self.send(*record)

    async def send_each(self, records: list[Publication]) -> list[Exception | None]:
        await self.send_many(records)
        return [None] * len(records)

    async def absent(self, _topics: set[str]) -> set[str]:
        return set()  # every topic exists in memory


def record_key(message: Message) -> str:
    """The key a message's topic is keyed by (`signgate_contracts.topics`): the challenge id on OTP
    topics, the package id on workflow's and authentication's, the user on identity's."""
    for name in ("challenge_id", "package_id"):
        if getattr(message, name, None) is not None:
            return str(getattr(message, name))
    if isinstance(message, ExchangeApiKey):
        return command_key(message)
    if isinstance(getattr(message, "user_name", None), str):
        return normalise_user_name(message.user_name)  # type: ignore[attr-defined]
    return str(getattr(message, "user_id", None) or "k")


class ComponentService:
    """One service, its resources open, fed records by hand; see the module's docstring."""

    def __init__(self, service: Service, settings: ServiceSettings) -> None:
        self.service = service
        self.settings = settings
        self.connections = settings.connections
        assert settings.record_signing_key is not None
        self.recorder = Recorder(
            self.connections, RecordSigner(settings.record_signing_key.get_secret_value())
        )
        publisher = service.resources.publisher
        publisher.send = self.recorder.send  # type: ignore[method-assign]
        publisher.send_many = self.recorder.send_many  # type: ignore[method-assign]
        publisher.send_each = self.recorder.send_each  # type: ignore[method-assign]
        publisher.absent = self.recorder.absent  # type: ignore[method-assign]

    @property
    def name(self) -> str:
        return self.service.definition.name

    @property
    def pool(self) -> asyncpg.Pool:
        assert self.service.resources.pool is not None
        return self.service.resources.pool

    def topic_of(self, message: Message) -> Topic:
        """The topic this service consumes that carries ``message``'s type."""
        carrying = [t for t in self.service.definition.consumes if type(message) in t.messages]
        if len(carrying) != 1:
            raise ValueError(
                f"{self.name} consumes {type(message).__name__} on {len(carrying)} topics: name one"
            )
        return carrying[0]

    def record(
        self,
        message: Message | bytes,
        topic: Topic | None = None,
        *,
        key: str | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
        signed: bool = True,
    ) -> ConsumerRecord:
        """``message`` as the broker would deliver it from ``topic``: encoded, keyed, and signed by
        the topic's writer if it has one (unless ``signed`` is false, or ``headers`` are given)."""
        if isinstance(message, bytes):
            assert topic is not None, "a record of raw bytes needs its topic"
            value, key = message, key or "k"
        else:
            topic = topic or self.topic_of(message)
            value, key = encode(message), key or record_key(message)
        deployed = self.connections.topic(topic.name)
        if headers is None:
            headers = (
                signed_headers(topic.writer, deployed, key.encode(), value)
                if topic.writer and signed
                else []
            )
        return consumer_record(deployed, key.encode(), value, headers)

    async def handle(
        self, message: Message | bytes, topic: Topic | None = None, **options: Any
    ) -> list[Published]:
        """Deliver one record (see `record`); what the service published because of it."""
        return await self.deliver([self.record(message, topic, **options)])

    async def handle_together(
        self, *messages: Message, topic: Topic | None = None
    ) -> list[Published]:
        """Deliver ``messages`` in one batch, as one fetch would: what the service published."""
        return await self.deliver([self.record(message, topic) for message in messages])

    async def handle_published(self, published: Iterable[Published]) -> list[Published]:
        """Deliver, in one batch, what another service published on the topics this one consumes,
        as it was published (its writer's signature included)."""
        consumed = {t.name for t in self.service.definition.consumes}
        records = [
            consumer_record(
                p.deployed, p.key, p.value, [(k, v.encode()) for k, v in p.headers.items()]
            )
            for p in published
            if p.topic in consumed
        ]
        return await self.deliver(records) if records else []

    async def deliver(self, records: Sequence[ConsumerRecord]) -> list[Published]:
        """Run ``records`` through the batch executor as one batch, then flush the outbox; what the
        service published meanwhile."""
        start = len(self.recorder.records)
        await self.service.executor.batch(records)
        relay = self.service.resources.relay
        if relay is not None:
            await relay.flush()
        return self.recorder.records[start:]

    async def jwks(self) -> dict[str, Any]:
        """What the service serves at ``/.well-known/jwks.json`` (the authentication service's grant keys)."""
        transport = httpx.ASGITransport(app=self.service.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            response = await client.get("/.well-known/jwks.json")
        response.raise_for_status()
        return response.json()


def consumer_record(
    topic: str, key: bytes | None, value: bytes, headers: Sequence[tuple[str, bytes]]
) -> ConsumerRecord:
    return ConsumerRecord(
        topic=topic,
        partition=0,
        offset=next(_offsets),
        timestamp=int(time.time() * 1000),
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key or b""),
        serialized_value_size=len(value),
        headers=list(headers),
    )


ON_SERVER_AND_CLUSTER = pytest.mark.parametrize("stack", ["server", "cluster"], indirect=True)
"""A module's ``pytestmark``: its tests run on the layer's Redis server, then on the Redis Cluster."""


@dataclass
class ComponentStack:
    """The session's Postgres (a database of the component layer's own, every service's schema
    migrated) and Redis (a key prefix of its own), the secrets the services share, and a builder of
    services on them."""

    connections: ConnectionSettings
    pepper: str
    otp_pepper: str
    token_keys: KeyPair
    workdir: Path

    @property
    def hasher(self) -> SecretHasher:
        """Hashes passwords and access codes as the services do (the session's pepper)."""
        return SecretHasher.from_settings(self.secret_settings())

    def secret_settings(self) -> SecretSettings:
        """The services' hashing settings: the session's pepper, argon2 made cheap."""
        return SecretSettings(
            pepper=SecretStr(self.pepper),
            argon2_memory_kib=CHEAP_ARGON2["argon2_memory_kib"],
            argon2_time_cost=CHEAP_ARGON2["argon2_time_cost"],
        )

    def token_issuer(self, clock: MovableClock | None = None) -> TokenIssuer:
        """Issues API users' tokens as identity would (the services trust its key)."""
        key = self.token_keys.private_key
        return TokenIssuer(key, clock=clock) if clock else TokenIssuer(key)

    def settings(self, definition: ServiceDefinition, **overrides: Any) -> ServiceSettings:
        """``definition``'s settings class on this stack: the shared pepper, token keys and OTP pepper
        (the other keys come from the session's environment, `tests.support.signing`)."""
        assert definition.settings is not None, f"{definition.name} names no settings class"
        fields = definition.settings.model_fields
        given: dict[str, Any] = {"connections": self.connections, "retry_first_delay": 0.01}
        if "secrets" in fields:
            given["secrets"] = self.secret_settings()
        if "tokens" in fields:
            given["tokens"] = TokenSettings(
                private_key=SecretStr(self.token_keys.private_key),
                public_key=self.token_keys.public_key,
            )
        if "otp_store" in fields:
            given["otp_store"] = OtpStoreSettings(pepper=SecretStr(self.otp_pepper))
        return definition.settings(**{**given, **overrides})

    @contextlib.asynccontextmanager
    async def service(
        self, definition: ServiceDefinition, **overrides: Any
    ) -> AsyncIterator[ComponentService]:
        """``definition`` built on this stack with ``overrides`` of its settings, its resources open."""
        settings = self.settings(definition, **overrides)
        component = ComponentService(build_service(definition, settings), settings)
        await component.service.open_resources()
        try:
            yield component
        finally:
            await component.service.close_resources()

    async def forget_redis(self) -> None:
        """Every Redis key of the component layer gone, as after a Redis restart without persistence."""
        redis = await open_redis(self.connections.redis_url, cluster=self.connections.redis_cluster)
        try:
            keys = [key async for key in redis.scan_iter(match=f"{self.connections.redis_prefix}*")]
            if keys:
                await redis.delete(*keys)
        finally:
            await redis.aclose()


@contextlib.asynccontextmanager
async def component_stack(
    database_server: str,
    redis_url: str,
    name: str,
    definitions: Iterable[ServiceDefinition],
    workdir: Path,
) -> AsyncIterator[ComponentStack]:
    """A database ``name`` on the Postgres server at ``database_server`` with every schema of
    ``definitions`` migrated (dropped afterwards), and the Redis prefix ``name:``; the topic prefix
    is ``name.`` (nothing is sent: no broker is reached)."""
    async with own_database(database_server, name) as database_url:
        await migrate_services(database_url, definitions)
        connections = ConnectionSettings(
            kafka_bootstrap="127.0.0.1:9",
            database_url=database_url,
            redis_url=redis_url,
            topic_prefix=f"{name}.",
            redis_prefix=f"{name}:",
            log_format="json",
        )
        yield ComponentStack(
            connections,
            pepper=generate_pepper(),
            otp_pepper=TEST_SHARED_KEYS["SIGNGATE_OTP_PEPPER"],
            token_keys=generate_key_pair(),
            workdir=workdir,
        )
