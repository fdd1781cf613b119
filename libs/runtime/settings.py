"""Connection settings every service and tool shares, read from ``SIGNGATE_*`` environment variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from signgate_contracts.topics import CALLER_REPLY_PREFIX

ROOT = Path(__file__).resolve().parents[2]
"""The checkout (or installed tree) the services run from."""
DATA_DIR = Path(os.environ.get("SIGNGATE_DATA_DIR", ROOT / ".signgate"))
"""Where local data lives: `make run`'s servers and logs, the sandbox provider's outbox, the
development keys (git-ignored)."""


class ConnectionSettings(BaseSettings):
    """Where the broker, Postgres and Redis are, and how to name things on them."""

    model_config = SettingsConfigDict(env_prefix="SIGNGATE_", extra="ignore")

    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers.")
    kafka_idempotence: bool = Field(
        True,
        description="Idempotent producer; the embedded broker cannot do it, so `make run` turns it off.",
    )
    kafka_request_timeout_ms: int = Field(
        15_000,
        ge=1_000,
        description="How long a request to the broker may take before it fails and is retried; "
        "a publish gives up after twice this.",
    )
    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/signgate", description="Postgres connection URL."
    )
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Redis connection URL (with `redis_cluster`, of any one node of the cluster).",
    )
    redis_cluster: bool = Field(
        False,
        description="`redis_url` names a node of a Redis Cluster (or Valkey cluster): the client "
        "finds the other masters and sends each script to the master of its keys' slot.",
    )
    topic_prefix: str = Field("", description="Prepended to every topic name (isolates test runs).")
    caller_reply_prefix: str = Field(
        CALLER_REPLY_PREFIX,
        min_length=1,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Callers' reply topics are named under it (after `topic_prefix`); a `reply_to` "
        "elsewhere, but for the service's own replies topic, is refused with 400 `invalid_reply_to`.",
    )
    redis_prefix: str = Field(
        "signgate:",
        pattern=r"^[^{}]*$",
        description="Prepended to every Redis key; no `{` or `}` (the keys' hash tags follow it).",
    )
    log_level: str = Field("INFO", description="Level of the JSON logs.")
    log_format: Literal["json", "console"] = Field("json", description="`console` for humans.")

    def topic(self, name: str) -> str:
        """The name of a registry topic on this deployment."""
        return f"{self.topic_prefix}{name}"

    def registry_name(self, deployed: str) -> str:
        """The registry name of a topic as deployed here (the inverse of `topic`)."""
        return deployed.removeprefix(self.topic_prefix)
