"""signgate's Python client: publish a command, get its outcome (and any reply) back as typed models;
and verify document-access grants locally (`signgate_client.grants`, the ``verify`` extra)."""

from typing import Any

try:
    import aiokafka  # noqa: F401  (the client's transport; named here to say which extra it is)
except ModuleNotFoundError as missing:
    raise ModuleNotFoundError(
        "signgate_client talks to Kafka with aiokafka: pip install 'signgate-contracts[client]'",
        name=missing.name,
    ) from missing

from signgate_client.client import Outcome, OutcomeTimeout, Rejected, SignGateClient
from signgate_client.routing import Answer, Route, command_types, parse_command, route
from signgate_client.security import (
    KafkaAuthenticationError,
    KafkaSecurityError,
    KafkaTlsError,
    kafka_security,
)

_GRANT_NAMES = frozenset(
    {
        "GrantError",
        "GrantExpired",
        "GrantInvalid",
        "GrantNotForThis",
        "GrantNotYetValid",
        "GrantRevocations",
        "GrantRevoked",
        "GrantVerifier",
        "UnknownGrantKey",
        "VerifiedGrant",
        "fetch_grant_keys",
    }
)

__all__ = [
    "Answer",
    "KafkaAuthenticationError",
    "KafkaSecurityError",
    "KafkaTlsError",
    "Outcome",
    "OutcomeTimeout",
    "Rejected",
    "Route",
    "SignGateClient",
    "command_types",
    "kafka_security",
    "parse_command",
    "route",
    *sorted(_GRANT_NAMES),
]


def __getattr__(name: str) -> Any:
    """The grant verifier's names, imported on first use: they need PyJWT and cryptography, which
    a client that only sends commands does without."""
    if name in _GRANT_NAMES:
        from signgate_client import grants

        return getattr(grants, name)
    raise AttributeError(f"module 'signgate_client' has no attribute {name!r}")
