"""What a service is, as data: its settings, what its lifespan opens, what a handler gets, its
definition (topics, handlers, schema, settings class, how its dependencies are built)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import asyncpg
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

from libs.runtime.messaging.outbox import OutboxRelay
from libs.runtime.messaging.outgoing import Outgoing
from libs.runtime.messaging.pipeline import (
    RetryPolicy,
)
from libs.runtime.messaging.publisher import Publisher
from libs.runtime.read_ahead import ReadAhead
from libs.runtime.redis_client import RedisClient
from libs.runtime.settings import ConnectionSettings
from libs.security.record_signatures import (
    RecordKeySettings,
)
from signgate_contracts import Message, Topic
from signgate_contracts.topics import OUTCOME_TOPIC


class ServiceSettings(BaseSettings):
    """Settings every service has; each service subclasses it with its own env prefix."""

    connections: ConnectionSettings = Field(default_factory=ConnectionSettings)
    record_signing_key: SecretStr | None = Field(
        None,
        description="This service's own Ed25519 private key (PEM), which signs every record it "
        "publishes; required, and given to no other service (`SIGNGATE_<SERVICE>_RECORD_SIGNING_KEY`).",
    )
    records: RecordKeySettings = Field(default_factory=RecordKeySettings)
    retry_attempts: int = Field(4, ge=1, description="Tries of a message hit by a transient fault.")
    retry_first_delay: float = Field(
        0.1, gt=0, description="Seconds before the first retry; doubles."
    )
    outbox_poll_interval: float = Field(0.5, gt=0, description="Seconds between outbox sweeps.")
    fetch_max_wait_ms: int = Field(
        100,
        ge=0,
        description="Longest the broker holds a fetch while no record waits: a record that "
        "arrives meanwhile may wait a fraction of it; shorter costs idle fetches (on the embedded "
        "broker, 25 ms costs an idle service about 5% of a core and the broker 4%; 100 ms, 1%).",
    )
    session_timeout_ms: int = Field(
        10_000,
        ge=1_000,
        description="How long a silent consumer keeps its partitions: the wait after a crash.",
    )
    heartbeat_interval_ms: int = Field(
        3_000, ge=100, description="How often a consumer says it is alive."
    )
    batch_max_records: int = Field(
        256,
        ge=1,
        le=10_000,
        description="Most records fetched and handled as one batch: one offset commit and one outbox "
        "flush per batch.",
    )
    batch_timeout_ms: int = Field(
        5,
        ge=1,
        description="Longest a consumer waits for a batch to fill before handling what it has.",
    )
    lanes: int = Field(
        4,
        ge=1,
        le=32,
        description="Records of a batch handled concurrently, split by key: each lane one Postgres "
        "transaction, each key's records in order within its lane.",
    )
    stall_after: float = Field(
        60.0,
        gt=0,
        description="Seconds with records waiting and no committed offset advancing before "
        "/readyz fails.",
    )
    max_deliveries: int = Field(
        5,
        ge=2,
        le=100,
        description="Deliveries of a record that fails transiently while Postgres and Redis answer, "
        "before it is dead-lettered (and answered 500) so that its partition moves on.",
    )

    @property
    def retry(self) -> RetryPolicy:
        return RetryPolicy(attempts=self.retry_attempts, first_delay=self.retry_first_delay)


D = TypeVar("D")


@dataclass
class Resources:
    """What the service's lifespan opened, and the dependencies it built from them once."""

    settings: ServiceSettings
    publisher: Publisher
    pool: asyncpg.Pool | None = None
    redis: RedisClient | None = None
    relay: OutboxRelay | None = None
    dependencies: Any = None
    """The service's typed dependencies object (its ``ServiceDefinition.dependencies`` built it)."""


@dataclass(frozen=True)
class Scope(Generic[D]):
    """What one record's handler may touch: the service's dependencies (built once, at start), the
    connection of the record's transaction (if the service has Postgres), and what its lane read
    ahead (if the service reads ahead: for the repository to consult, not the handler)."""

    dependencies: D
    connection: asyncpg.Connection | None = None
    read_ahead: ReadAhead | None = None

    @property
    def transaction(self) -> asyncpg.Connection:
        """The connection of the record's transaction (a service with Postgres always has one)."""
        if self.connection is None:
            raise TypeError("this service has no Postgres: its records have no transaction")
        return self.connection


MessageHandler = Callable[[Any, Scope[Any]], Awaitable[Sequence[Outgoing]]]
"""A handler takes a message and returns what to publish; it raises a Refusal to refuse."""


@dataclass(frozen=True)
class ServiceDefinition:
    """What a service is, as data."""

    name: str
    consumes: tuple[Topic, ...]
    handlers: Mapping[type[Message], MessageHandler]
    settings: type[ServiceSettings] | None = None
    """The service's settings class (the docs generator reads it; ``create_app`` makes one)."""
    dependencies: Callable[[Resources], Any] | None = None
    """Builds the service's typed dependencies object once, when its resources have opened; every
    handler gets it as ``Scope.dependencies``."""
    extra_outcomes: Mapping[str, Topic] = field(default_factory=dict)
    """Outcome topics of consumed command topics that are not in the registry (tests, extensions)."""
    schema: str | None = None
    """Postgres schema the service owns; None for a service without Postgres."""
    uses_redis: bool = False
    shared_tracks: tuple[str, ...] = ()
    """Shared migration tracks from ``libs/runtime/sql/`` (``accounts``: API users' account states)."""
    folder: Path | None = None
    """The service's package folder (holds ``migrations/``)."""
    read_ahead: Callable[[], ReadAhead] | None = None
    """Makes a lane's read-ahead: one query for what its records will look up one by one."""
    http_routes: Callable[[Any], Sequence[tuple[str, Any]]] | None = None
    """The service's own HTTP routes besides /livez, /readyz, /health and /metrics: (path, ASGI handler) pairs, built
    once from the service's settings (the authentication service's JWKS)."""
    resource_routes: Callable[[Resources], Sequence[tuple[str, Any]]] | None = None
    """HTTP routes that act on the service's dependencies (read from ``Resources`` per request:
    they exist once the resources have opened): otp-dispatch's delivery-receipt callbacks."""
    background: Callable[[Resources], Awaitable[None]] | None = None
    """A loop the service runs beside its consumer once its resources are open, cancelled before the
    broker stops: otp-dispatch's sweep of due fallbacks."""
    rejection_key: Callable[[ServiceSettings], Callable[[str], str]] | None = None
    """Makes what keys a rejection from the command's record key, when that key must not be
    published as it is (identity's: the user name a caller gave, published as a keyed digest)."""

    @property
    def outcomes(self) -> dict[str, Topic]:
        """Consumed command topic name -> the topic its outcomes (and rejections) go to."""
        registry = {t.name: OUTCOME_TOPIC[t.name] for t in self.consumes if t.name in OUTCOME_TOPIC}
        return {**registry, **self.extra_outcomes}

    @property
    def group_id(self) -> str:
        return f"signgate-{self.name}"

    def check(self) -> None:
        """Every command a consumed command topic carries has a handler."""
        for topic in self.consumes:
            if topic.answers_commands:
                missing = [m.__name__ for m in topic.messages if m not in self.handlers]
                if missing:
                    raise TypeError(f"{self.name}: no handler for {', '.join(missing)}")
