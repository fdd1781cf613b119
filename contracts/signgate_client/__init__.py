"""signgate's Python client: publish a command, get its outcome (and any reply) back as typed models."""

from signgate_client.client import Outcome, OutcomeTimeout, Rejected, SignGateClient
from signgate_client.routing import Answer, Route, command_types, parse_command, route

__all__ = [
    "Answer", "Outcome", "OutcomeTimeout", "Rejected", "Route", "SignGateClient", "command_types",
    "parse_command", "route",
]
