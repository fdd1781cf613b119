"""Connection settings every service and tool shares, read from ``SIGNGATE_*`` environment variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from signgate_contracts.topics import CALLER_REPLY_PREFIX

KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]

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
    kafka_security_protocol: KafkaSecurityProtocol = Field(
        "PLAINTEXT",
        description="How every client (services, provisioning, the CLI, the bench) reaches the "
        "brokers: `SSL` encrypts and verifies the brokers' certificates, `SASL_*` also "
        "authenticates with `SIGNGATE_KAFKA_SASL_MECHANISM`.",
    )
    kafka_sasl_mechanism: KafkaSaslMechanism = Field(
        "PLAIN",
        description="The SASL mechanism of a `SASL_*` protocol; `OAUTHBEARER` sends "
        "`SIGNGATE_KAFKA_SASL_PASSWORD` as the bearer token.",
    )
    kafka_sasl_username: str | None = Field(
        None, description="SASL user name (the principal); required by PLAIN and SCRAM."
    )
    kafka_sasl_password: SecretStr | None = Field(
        None,
        description="SASL password (the token for OAUTHBEARER); required with a `SASL_*` protocol.",
    )
    kafka_ssl_cafile: Path | None = Field(
        None,
        description="PEM file of the CAs that sign the brokers' certificates; unset: the system's CAs.",
    )
    kafka_ssl_certfile: Path | None = Field(
        None,
        description="PEM file of this client's certificate (mutual TLS); needs `SIGNGATE_KAFKA_SSL_KEYFILE`.",
    )
    kafka_ssl_keyfile: Path | None = Field(
        None, description="PEM file of the private key of `SIGNGATE_KAFKA_SSL_CERTFILE`."
    )
    kafka_ssl_key_password: SecretStr | None = Field(
        None, description="Password of an encrypted `SIGNGATE_KAFKA_SSL_KEYFILE`."
    )
    kafka_ssl_check_hostname: bool = Field(
        True,
        description="Refuse a broker whose certificate does not name the host connected to; turn "
        "off only where the brokers' certificates cannot name them.",
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

    @model_validator(mode="after")
    def _kafka_security_complete(self) -> ConnectionSettings:
        """Refuse Kafka security settings that would fail at the first connection, or be ignored."""
        problems = kafka_security_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def topic(self, name: str) -> str:
        """The name of a registry topic on this deployment."""
        return f"{self.topic_prefix}{name}"

    def registry_name(self, deployed: str) -> str:
        """The registry name of a topic as deployed here (the inverse of `topic`)."""
        return deployed.removeprefix(self.topic_prefix)


def kafka_security_problems(settings: ConnectionSettings) -> list[str]:
    """What is missing or contradictory in the Kafka security settings (empty when they hold)."""
    protocol = settings.kafka_security_protocol
    uses_sasl = protocol.startswith("SASL_")
    uses_ssl = protocol in ("SSL", "SASL_SSL")
    problems = []
    if uses_sasl:
        if settings.kafka_sasl_mechanism != "OAUTHBEARER" and not settings.kafka_sasl_username:
            problems.append(
                f"SIGNGATE_KAFKA_SASL_USERNAME is required by {settings.kafka_sasl_mechanism}"
            )
        if not settings.kafka_sasl_password or not settings.kafka_sasl_password.get_secret_value():
            problems.append(f"SIGNGATE_KAFKA_SASL_PASSWORD is required by {protocol}")
    elif settings.kafka_sasl_username or settings.kafka_sasl_password:
        problems.append(
            f"SIGNGATE_KAFKA_SASL_USERNAME/PASSWORD are set but {protocol} does not use SASL: "
            "set SIGNGATE_KAFKA_SECURITY_PROTOCOL to SASL_SSL or SASL_PLAINTEXT"
        )
    files = {
        "SIGNGATE_KAFKA_SSL_CAFILE": settings.kafka_ssl_cafile,
        "SIGNGATE_KAFKA_SSL_CERTFILE": settings.kafka_ssl_certfile,
        "SIGNGATE_KAFKA_SSL_KEYFILE": settings.kafka_ssl_keyfile,
    }
    if not uses_ssl:
        named = [name for name, path in files.items() if path is not None]
        if settings.kafka_ssl_key_password is not None:
            named.append("SIGNGATE_KAFKA_SSL_KEY_PASSWORD")
        if named:
            problems.append(
                f"{', '.join(named)} set but {protocol} does not use TLS: "
                "set SIGNGATE_KAFKA_SECURITY_PROTOCOL to SSL or SASL_SSL"
            )
        return problems
    for name, path in files.items():
        if path is not None and not path.is_file():
            problems.append(f"{name}: no such file: {path}")
    if (settings.kafka_ssl_certfile is None) != (settings.kafka_ssl_keyfile is None):
        problems.append(
            "SIGNGATE_KAFKA_SSL_CERTFILE and SIGNGATE_KAFKA_SSL_KEYFILE go together "
            "(the same file for both if it holds the certificate and its key)"
        )
    if settings.kafka_ssl_key_password is not None and settings.kafka_ssl_keyfile is None:
        problems.append("SIGNGATE_KAFKA_SSL_KEY_PASSWORD is set without SIGNGATE_KAFKA_SSL_KEYFILE")
    return problems
