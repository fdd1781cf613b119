"""What the Kafka security settings mean to a client: FastStream's ``security=`` and aiokafka's options.

One mapping for every client: `broker_security` turns the settings into FastStream's security
object, and aiokafka's keyword arguments (`client_options`) are FastStream's own reading of that
object (``faststream.kafka.security.parse_security``), so a service's broker and a tool's admin
client, producer or consumer cannot disagree about how to reach the cluster. A refusal of TLS or
SASL is raised as `signgate_client.KafkaSecurityError` (`KafkaTlsError`,
`KafkaAuthenticationError`) with one line that says what to fix.
"""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka.abc import AbstractTokenProvider
from aiokafka.helpers import create_ssl_context
from faststream.kafka.security import parse_security
from faststream.security import (
    BaseSecurity,
    SASLOAuthBearer,
    SASLPlaintext,
    SASLScram256,
    SASLScram512,
)

from libs.runtime.settings import ConnectionSettings
from signgate_client.security import KafkaSecurityError, security_problem, start_checked

SECURITY_FIELDS = (
    "kafka_security_protocol",
    "kafka_sasl_mechanism",
    "kafka_sasl_username",
    "kafka_sasl_password",
    "kafka_ssl_cafile",
    "kafka_ssl_certfile",
    "kafka_ssl_keyfile",
    "kafka_ssl_key_password",
    "kafka_ssl_check_hostname",
)
"""The `ConnectionSettings` fields that say how to reach the brokers (beyond where they are)."""


class StaticTokenProvider(AbstractTokenProvider):
    """An OAUTHBEARER token given in the settings (``SIGNGATE_KAFKA_SASL_PASSWORD``)."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def token(self) -> str:
        return self._token


def ssl_context(settings: ConnectionSettings) -> ssl.SSLContext | None:
    """The TLS context of an ``SSL`` or ``SASL_SSL`` protocol (None otherwise): the brokers'
    certificates verified against the CA file (or the system's CAs), the client's certificate
    presented when one is set, and the host name checked unless turned off."""
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    password = settings.kafka_ssl_key_password
    context = create_ssl_context(
        cafile=settings.kafka_ssl_cafile,
        certfile=settings.kafka_ssl_certfile,
        keyfile=settings.kafka_ssl_keyfile,
        password=password.get_secret_value() if password is not None else None,
    )
    context.check_hostname = settings.kafka_ssl_check_hostname  # the chain is verified either way
    return context


def broker_security(settings: ConnectionSettings) -> BaseSecurity | None:
    """FastStream's security object for a `KafkaBroker` (None for ``PLAINTEXT``)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl_context(settings)
    use_ssl = context is not None
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    mechanism = settings.kafka_sasl_mechanism
    if mechanism == "OAUTHBEARER":
        return SASLOAuthBearer(ssl_context=context, use_ssl=use_ssl)
    username = settings.kafka_sasl_username or ""
    password = (
        settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
    )
    kind = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}
    return kind[mechanism](username, password, ssl_context=context, use_ssl=use_ssl)


def token_provider(settings: ConnectionSettings) -> AbstractTokenProvider | None:
    """The OAUTHBEARER token provider of the settings (None for any other mechanism)."""
    if (
        settings.kafka_security_protocol.startswith("SASL_")
        and settings.kafka_sasl_mechanism == "OAUTHBEARER"
        and settings.kafka_sasl_password is not None
    ):
        return StaticTokenProvider(settings.kafka_sasl_password.get_secret_value())
    return None


def broker_options(settings: ConnectionSettings) -> dict[str, Any]:
    """`KafkaBroker`'s keyword arguments for security: ``security`` and the token provider."""
    return {
        "security": broker_security(settings),
        "sasl_oauth_token_provider": token_provider(settings),
    }


def client_options(settings: ConnectionSettings | None = None) -> dict[str, Any]:
    """aiokafka's keyword arguments for security (`AIOKafkaProducer`, `AIOKafkaConsumer`,
    `AIOKafkaAdminClient`), from the settings or else the environment; empty for ``PLAINTEXT``."""
    settings = settings if settings is not None else ConnectionSettings()
    options = parse_security(broker_security(settings))
    provider = token_provider(settings)
    if provider is not None:
        options["sasl_oauth_token_provider"] = provider
    return options


def signgate_client_options(settings: ConnectionSettings | None = None) -> dict[str, Any]:
    """`signgate_client.SignGateClient`'s security keyword arguments, from the settings or else
    the environment."""
    settings = settings if settings is not None else ConnectionSettings()
    password = settings.kafka_sasl_password
    return {
        "security_protocol": settings.kafka_security_protocol,
        "sasl_mechanism": settings.kafka_sasl_mechanism,
        "sasl_username": settings.kafka_sasl_username,
        "sasl_password": password.get_secret_value() if password is not None else None,
        "ssl_context": ssl_context(settings),
        "sasl_oauth_token_provider": token_provider(settings),
    }


def security_environment(settings: ConnectionSettings) -> dict[str, str]:
    """The ``SIGNGATE_KAFKA_*`` variables that give a child process the same Kafka security
    (so no secret is written to a file to pass it on)."""
    env = {}
    for name in SECURITY_FIELDS:
        value = getattr(settings, name)
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        elif isinstance(value, bool):
            value = str(value).lower()
        env[f"SIGNGATE_{name.upper()}"] = str(value)
    return env


def _timeout(settings: ConnectionSettings) -> float:
    return settings.kafka_request_timeout_ms / 1000


async def start_client(
    client: Any, settings: ConnectionSettings | None = None, *, bootstrap: str | None = None
) -> None:
    """Start an aiokafka client built with `client_options` (and ``bootstrap``, when it is not the
    settings'); a refused TLS or SASL raises `KafkaSecurityError` rather than aiokafka's
    ``Unable to bootstrap``."""
    settings = settings if settings is not None else ConnectionSettings()
    await start_checked(
        client,
        bootstrap or settings.kafka_bootstrap,
        client_options(settings),
        timeout=_timeout(settings),
    )


async def check_brokers(settings: ConnectionSettings) -> None:
    """Refuse to go on when the brokers refuse this deployment's TLS or SASL (`KafkaSecurityError`);
    nothing to check for ``PLAINTEXT``, and an unreachable broker is left to the client's retries."""
    if settings.kafka_security_protocol == "PLAINTEXT":
        return
    problem = await security_problem(
        settings.kafka_bootstrap, client_options(settings), timeout=_timeout(settings)
    )
    if problem is not None:
        raise problem


__all__ = [
    "SECURITY_FIELDS",
    "KafkaSecurityError",
    "StaticTokenProvider",
    "broker_options",
    "broker_security",
    "check_brokers",
    "client_options",
    "security_environment",
    "signgate_client_options",
    "ssl_context",
    "start_client",
    "token_provider",
]
