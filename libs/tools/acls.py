"""Least-privilege Kafka ACLs for a deployment, derived from the topic registry and the services.

Each service reads exactly the topics it consumes and its own consumer group, and writes only what
it publishes: the registry topics it is the writer of (its events and replies, `otp.requests` for
authentication), the dead-letter topic of each topic it consumes, and, if it answers callers, the
caller reply prefix. Each upstream caller writes the command topics, reads the outcome topics
(`signgate_client` reads every outcome there), and reads and creates topics under its own reply
prefix (``<topic_prefix><caller_reply_prefix><name>.``) only; `signgate_client` assigns partitions
itself, so a caller needs no consumer group. The gateway is a caller of its own. Provisioning
creates and describes the registry's topics and their dead-letter topics, nothing else.

``kafka_acls_commands`` prints them as ``kafka-acls.sh`` commands, ``as_json`` as data;
``signgate acls`` (``libs.tools.cli.acls``) prints them.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from libs.runtime.definition import ServiceDefinition
from libs.runtime.settings import ConnectionSettings
from signgate_contracts.topics import OUTCOME_TOPIC, TOPICS, Topic, TopicKind


class Resource(StrEnum):
    TOPIC = "topic"
    GROUP = "group"


class Pattern(StrEnum):
    LITERAL = "literal"
    PREFIXED = "prefixed"


class Operation(StrEnum):
    READ = "Read"
    WRITE = "Write"
    DESCRIBE = "Describe"
    CREATE = "Create"


READS = (Operation.READ, Operation.DESCRIBE)
WRITES = (Operation.WRITE, Operation.DESCRIBE)
CREATES = (Operation.CREATE, Operation.DESCRIBE)


@dataclass(frozen=True)
class Grant:
    """Operations a principal is allowed on one resource pattern."""

    resource: Resource
    name: str
    pattern: Pattern
    operations: tuple[Operation, ...]


@dataclass(frozen=True)
class Principal:
    """One Kafka principal of a deployment and everything it is allowed."""

    principal: str
    """As Kafka names it: ``User:identity``."""
    role: str
    """``service``, ``caller``, ``gateway`` or ``provision``."""
    name: str
    """The service's name, or the caller's reply name."""
    grants: tuple[Grant, ...]


CALLER_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
"""A caller's reply name: no dot, so that no caller's reply prefix is a prefix of another's."""


def service_principal(
    definition: ServiceDefinition, connections: ConnectionSettings, principal: str
) -> Principal:
    """A service reads what it consumes and its group; writes what it is the writer of, the
    dead-letter topics of what it consumes, and callers' reply topics if it answers callers."""
    produced = [t for t in TOPICS if t.writer == definition.name]
    grants = [_literal(connections, t.name, READS) for t in definition.consumes]
    grants.append(
        Grant(Resource.GROUP, connections.topic(definition.group_id), Pattern.LITERAL, READS)
    )
    grants += [_literal(connections, t.name, WRITES) for t in produced]
    grants += [_literal(connections, t.dlq, WRITES) for t in definition.consumes]
    if any(t.kind is TopicKind.REPLIES for t in produced):
        prefix = connections.topic(connections.caller_reply_prefix)
        grants.append(Grant(Resource.TOPIC, prefix, Pattern.PREFIXED, WRITES))
    return Principal(principal, "service", definition.name, tuple(grants))


def caller_principal(
    principal: str, name: str, connections: ConnectionSettings, role: str = "caller"
) -> Principal:
    """A caller writes the command topics, reads the outcome topics, and reads and creates the
    topics under its own reply prefix."""
    if not CALLER_NAME.fullmatch(name):
        raise ValueError(f"caller reply name {name!r}: letters, digits, '-' and '_' only")
    commands = [t for t in TOPICS if t.kind is TopicKind.COMMANDS]
    outcomes = sorted({t.name for t in OUTCOME_TOPIC.values()})
    grants = [_literal(connections, t.name, WRITES) for t in commands]
    grants += [
        Grant(Resource.TOPIC, connections.topic(n), Pattern.LITERAL, READS) for n in outcomes
    ]
    grants.append(
        Grant(
            Resource.TOPIC,
            caller_reply_prefix(connections, name),
            Pattern.PREFIXED,
            (Operation.READ, Operation.DESCRIBE, Operation.CREATE),
        )
    )
    return Principal(principal, role, name, tuple(grants))


def caller_reply_prefix(connections: ConnectionSettings, name: str) -> str:
    """Where the caller ``name``'s reply topics live (its ``reply_to`` must be under it)."""
    return f"{connections.topic(connections.caller_reply_prefix)}{name}."


def provision_principal(
    principal: str, connections: ConnectionSettings, topics: Iterable[Topic] = TOPICS
) -> Principal:
    """Provisioning lists and creates the registry's topics and their dead-letter topics."""
    grants = []
    for topic in topics:
        grants += [
            _literal(connections, topic.name, CREATES),
            _literal(connections, topic.dlq, CREATES),
        ]
    return Principal(principal, "provision", "provision", tuple(grants))


def parse_caller(spec: str) -> tuple[str, str]:
    """``User:portal`` -> (``User:portal``, ``portal``); ``portal=User:CN=portal,O=Example`` names
    the reply name of a principal whose own name is not one."""
    name, sep, principal = spec.partition("=")
    if sep and CALLER_NAME.fullmatch(name) and ":" in principal:
        return principal, name
    kind, sep, name = spec.partition(":")
    if not sep or not kind:
        raise ValueError(f"caller {spec!r}: give a principal such as User:portal")
    return spec, name


def deployment_principals(
    services: Sequence[ServiceDefinition],
    connections: ConnectionSettings,
    callers: Sequence[str] = (),
    gateway: str | None = "User:gateway",
    provision: str | None = "User:provision",
    principal_prefix: str = "",
) -> list[Principal]:
    """Every principal of a deployment: provisioning, each service, each caller, the gateway."""
    principals = []
    if provision:
        principals.append(provision_principal(provision, connections))
    principals += [
        service_principal(d, connections, f"User:{principal_prefix}{d.name}") for d in services
    ]
    for spec in callers:
        principal, name = parse_caller(spec)
        principals.append(caller_principal(principal, name, connections))
    if gateway:
        principals.append(caller_principal(gateway, "gateway", connections, role="gateway"))
    _refuse_shared_reply_prefixes(principals)
    return principals


def _refuse_shared_reply_prefixes(principals: Sequence[Principal]) -> None:
    names = [p.name for p in principals if p.role in ("caller", "gateway")]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"callers would share a reply prefix: {', '.join(twice)}")


def kafka_acls_commands(
    principals: Iterable[Principal],
    bootstrap_server: str,
    command_config: str,
    script: str = "kafka-acls.sh",
) -> list[str]:
    """One ``kafka-acls.sh --add`` command per principal and resource pattern, shell-quoted."""
    commands = []
    for principal in principals:
        for grant in principal.grants:
            argv = [
                script,
                "--bootstrap-server",
                bootstrap_server,
                "--command-config",
                command_config,
                "--add",
                "--allow-principal",
                principal.principal,
            ]
            for operation in grant.operations:
                argv += ["--operation", operation.value]
            argv += [f"--{grant.resource.value}", grant.name]
            if grant.pattern is Pattern.PREFIXED:
                argv += ["--resource-pattern-type", "prefixed"]
            commands.append(shlex.join(argv))
    return commands


def shell_script(commands: Sequence[str]) -> str:
    """The commands as a POSIX shell script that stops at the first that fails."""
    return "#!/bin/sh\nset -eu\n" + "".join(f"{command}\n" for command in commands)


def as_json(principals: Iterable[Principal]) -> list[dict[str, Any]]:
    """The principals and their grants as JSON-ready data."""
    return [asdict(principal) for principal in principals]


def _literal(
    connections: ConnectionSettings, name: str, operations: tuple[Operation, ...]
) -> Grant:
    return Grant(Resource.TOPIC, connections.topic(name), Pattern.LITERAL, operations)
