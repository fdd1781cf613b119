"""The least-privilege ACLs `signgate acls` prints: who may read, write and create what."""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence

import pytest
from typer.testing import CliRunner

from libs.runtime.settings import ConnectionSettings
from libs.tools.acls import (
    Grant,
    Operation,
    Pattern,
    Principal,
    Resource,
    as_json,
    caller_reply_prefix,
    deployment_principals,
    kafka_acls_commands,
    parse_caller,
)
from libs.tools.cli.app import app
from libs.tools.topics_admin import topic_specs
from services.registry import SERVICES
from signgate_client import SignGateClient
from signgate_contracts.topics import OUTCOME_TOPIC, TOPICS, TopicKind

PLAIN = ConnectionSettings(topic_prefix="", caller_reply_prefix="signgate.replies.")
PREFIXED = ConnectionSettings(topic_prefix="prod.", caller_reply_prefix="signgate.replies.")
CALLERS = ("User:portal", "User:crm")


def principals(connections: ConnectionSettings = PLAIN) -> dict[str, Principal]:
    found = deployment_principals(SERVICES, connections, callers=CALLERS)
    return {p.principal: p for p in found}


def allowed(principal: Principal, operation: Operation, resource: Resource, name: str) -> bool:
    """Kafka's StandardAuthorizer on ``principal``'s allow rules: a literal or prefixed pattern
    matches ``name``, and Read, Write (and Create, Kafka >= 2.x) imply Describe."""
    implied = {operation}
    if operation is Operation.DESCRIBE:
        implied |= {Operation.READ, Operation.WRITE, Operation.CREATE}
    for grant in principal.grants:
        if grant.resource is not resource or not implied & set(grant.operations):
            continue
        if grant.pattern is Pattern.LITERAL and grant.name == name:
            return True
        if grant.pattern is Pattern.PREFIXED and name.startswith(grant.name):
            return True
    return False


def readable(principal: Principal, names: Sequence[str]) -> set[str]:
    return {n for n in names if allowed(principal, Operation.READ, Resource.TOPIC, n)}


def writable(principal: Principal, names: Sequence[str]) -> set[str]:
    return {n for n in names if allowed(principal, Operation.WRITE, Resource.TOPIC, n)}


ALL_TOPICS = [t.name for t in TOPICS] + [t.dlq for t in TOPICS]
OTHER_CALLERS_REPLY = "signgate.replies.crm.1f2e"


def test_otp_dispatch_holds_exactly_its_grants():
    """OTP dispatch reads otp.requests and its group, writes otp.events and otp.requests.dlq: no more."""
    assert set(principals()["User:otp_dispatch"].grants) == {
        Grant(Resource.TOPIC, "signgate.otp.requests", Pattern.LITERAL, (Operation.READ, Operation.DESCRIBE)),
        Grant(Resource.GROUP, "signgate-otp_dispatch", Pattern.LITERAL, (Operation.READ, Operation.DESCRIBE)),
        Grant(Resource.TOPIC, "signgate.otp.events", Pattern.LITERAL, (Operation.WRITE, Operation.DESCRIBE)),
        Grant(Resource.TOPIC, "signgate.otp.requests.dlq", Pattern.LITERAL, (Operation.WRITE, Operation.DESCRIBE)),
    }


def test_authentication_writes_its_topics_otp_requests_its_dead_letters_and_callers_replies():
    """Authentication writes its events and replies, otp.requests, the dead-letter topic of each
    topic it consumes and callers' reply topics; it writes no other service's topic."""
    authentication = principals()["User:authentication"]
    assert writable(authentication, ALL_TOPICS) == {
        "signgate.authentication.events",
        "signgate.authentication.replies",
        "signgate.otp.requests",
        "signgate.authentication.commands.dlq",
        "signgate.workflow.events.dlq",
        "signgate.identity.events.dlq",
        "signgate.otp.events.dlq",
    }
    assert allowed(authentication, Operation.WRITE, Resource.TOPIC, "signgate.replies.portal.x")
    assert readable(authentication, ALL_TOPICS) == {
        "signgate.authentication.commands",
        "signgate.workflow.events",
        "signgate.identity.events",
        "signgate.otp.events",
    }


def test_each_service_reads_exactly_what_it_consumes_and_its_own_group():
    """A service reads the topics it consumes and the group it subscribes with, and no other."""
    found = principals()
    groups = [PLAIN.topic(d.group_id) for d in SERVICES]
    for definition in SERVICES:
        service = found[f"User:{definition.name}"]
        assert readable(service, ALL_TOPICS) == {t.name for t in definition.consumes}
        member = {g for g in groups if allowed(service, Operation.READ, Resource.GROUP, g)}
        assert member == {PLAIN.topic(definition.group_id)}, definition.name


def test_only_its_writer_writes_an_events_topic():
    """No principal but the registry's writer may write an events, replies or requests topic:
    otp_dispatch cannot write workflow.events, no caller can write any of them."""
    found = principals()
    for topic in TOPICS:
        if topic.kind is TopicKind.COMMANDS:
            continue
        writers = {p.principal for p in found.values() if topic.name in writable(p, ALL_TOPICS)}
        assert writers == {f"User:{topic.writer}"}, topic.name
    assert not allowed(found["User:otp_dispatch"], Operation.WRITE, Resource.TOPIC, "signgate.workflow.events")


def test_every_outcome_and_own_reply_of_a_service_is_writable():
    """What a service publishes (its outcome topics, its replies topic) is among what it may write."""
    found = principals()
    for definition in SERVICES:
        service = found[f"User:{definition.name}"]
        for outcome in definition.outcomes.values():
            assert outcome.name in writable(service, ALL_TOPICS), (definition.name, outcome.name)


def test_a_caller_writes_commands_reads_outcomes_and_only_its_own_replies():
    """A caller writes the three command topics, reads the outcome topics and its own reply prefix:
    no events topic, no service's replies topic, no other caller's replies, no dead letters."""
    portal = principals()["User:portal"]
    assert writable(portal, ALL_TOPICS) == {
        "signgate.identity.commands", "signgate.workflow.commands", "signgate.authentication.commands",
    }
    assert readable(portal, ALL_TOPICS) == {t.name for t in OUTCOME_TOPIC.values()}
    assert allowed(portal, Operation.READ, Resource.TOPIC, "signgate.replies.portal.abc")
    assert allowed(portal, Operation.CREATE, Resource.TOPIC, "signgate.replies.portal.abc")
    for other in (OTHER_CALLERS_REPLY, "signgate.replies.gateway.1", "signgate.replies.portalx.1"):
        assert not allowed(portal, Operation.READ, Resource.TOPIC, other), other
        assert not allowed(portal, Operation.DESCRIBE, Resource.TOPIC, other), other
    assert not allowed(portal, Operation.WRITE, Resource.TOPIC, "signgate.replies.portal.abc")
    assert not [g for g in portal.grants if g.resource is Resource.GROUP]


def test_a_caller_can_do_what_the_client_library_does():
    """The client's reply topic under the caller's prefix is creatable and readable, and every
    topic the client reads its outcomes from is readable."""
    portal = principals()["User:portal"]
    client = SignGateClient("unused:9092", reply_topic=caller_reply_prefix(PLAIN, "portal") + "r1")
    assert allowed(portal, Operation.CREATE, Resource.TOPIC, client.reply_topic)
    assert allowed(portal, Operation.READ, Resource.TOPIC, client.reply_topic)
    for topic in OUTCOME_TOPIC.values():
        assert allowed(portal, Operation.READ, Resource.TOPIC, client.deployed(topic.name))


def test_the_gateway_is_a_caller_of_its_own():
    """The gateway writes commands and reads only its own reply prefix, not the callers'."""
    gateway = principals()["User:gateway"]
    assert allowed(gateway, Operation.WRITE, Resource.TOPIC, "signgate.workflow.commands")
    assert allowed(gateway, Operation.READ, Resource.TOPIC, "signgate.replies.gateway.a")
    assert not allowed(gateway, Operation.READ, Resource.TOPIC, "signgate.replies.portal.a")


def test_provisioning_creates_exactly_the_topics_it_provisions():
    """The provision principal may create every topic `create_topics` makes and nothing else; it
    reads and writes nothing."""
    provision = principals(PREFIXED)["User:provision"]
    wanted = {spec.name for spec in topic_specs(PREFIXED)}
    creatable = {
        g.name for g in provision.grants if Operation.CREATE in g.operations and g.pattern is Pattern.LITERAL
    }
    assert creatable == wanted
    assert all(set(g.operations) == {Operation.CREATE, Operation.DESCRIBE} for g in provision.grants)


def test_topic_prefix_is_on_every_topic_group_and_reply_prefix():
    """With SIGNGATE_TOPIC_PREFIX set, every resource name carries it, groups included."""
    for principal in principals(PREFIXED).values():
        for grant in principal.grants:
            assert grant.name.startswith("prod.signgate"), grant
    identity = principals(PREFIXED)["User:identity"]
    assert allowed(identity, Operation.READ, Resource.GROUP, "prod.signgate-identity")
    assert not allowed(identity, Operation.READ, Resource.GROUP, "signgate-identity")
    assert caller_reply_prefix(PREFIXED, "portal") == "prod.signgate.replies.portal."


def test_no_caller_reply_prefix_covers_another():
    """Reply names have no dot, so no caller's prefix is a prefix of another caller's; a dotted
    name or two callers with one reply name are refused."""
    with pytest.raises(ValueError, match="letters, digits"):
        deployment_principals(SERVICES, PLAIN, callers=["User:a.b"])
    with pytest.raises(ValueError, match="share a reply prefix"):
        deployment_principals(SERVICES, PLAIN, callers=["User:portal", "portal=User:CN=portal"])
    prefixes = [caller_reply_prefix(PLAIN, n) for n in ("a", "ab", "a-b")]
    assert not [(x, y) for x in prefixes for y in prefixes if x != y and y.startswith(x)]


def test_caller_specs_name_principal_and_reply_name():
    """``User:portal`` replies under ``portal``; ``NAME=PRINCIPAL`` names it for a certificate principal."""
    assert parse_caller("User:portal") == ("User:portal", "portal")
    assert parse_caller("crm=User:CN=crm,O=Example") == ("User:CN=crm,O=Example", "crm")
    with pytest.raises(ValueError):
        parse_caller("portal")


def test_commands_are_kafka_acls_invocations_of_each_grant():
    """Each grant is one ``kafka-acls.sh --add`` command with its operations, and the prefixed
    pattern flag exactly on prefixed grants."""
    found = list(principals().values())
    commands = kafka_acls_commands(found, "kafka:19092", "/tmp/admin.properties")
    assert len(commands) == sum(len(p.grants) for p in found)
    argv = shlex.split(commands[-1])
    assert argv[:8] == [
        "kafka-acls.sh", "--bootstrap-server", "kafka:19092", "--command-config", "/tmp/admin.properties",
        "--add", "--allow-principal", "User:gateway",
    ]
    assert argv[8:] == [
        "--operation", "Read", "--operation", "Describe", "--operation", "Create",
        "--topic", "signgate.replies.gateway.", "--resource-pattern-type", "prefixed",
    ]
    prefixed = [c for c in commands if "--resource-pattern-type prefixed" in c]
    assert len(prefixed) == sum(g.pattern is Pattern.PREFIXED for p in found for g in p.grants)


def test_cli_prints_the_script_and_the_json():
    """`signgate acls` prints the commands as a script, and the same grants as JSON with --json."""
    runner = CliRunner()
    args = ["acls", "--caller", "User:portal", "--caller", "User:crm", "--bootstrap-server", "k:1"]
    script = runner.invoke(app, [*args, "--command-config", "c.properties"])
    assert script.exit_code == 0, script.output
    lines = script.output.splitlines()
    assert lines[:2] == ["#!/bin/sh", "set -eu"]
    assert lines[2:] == kafka_acls_commands(principals().values(), "k:1", "c.properties")
    data = runner.invoke(app, [*args, "--json"])
    assert data.exit_code == 0, data.output
    assert json.loads(data.output) == json.loads(json.dumps(as_json(principals().values())))


def test_cli_refuses_a_bad_caller_in_one_line():
    """A caller the tool cannot give a reply prefix of its own is bad input: exit code 3 and one line."""
    result = CliRunner().invoke(app, ["acls", "--caller", "User:a.b"])
    assert result.exit_code == 3
    assert "letters, digits" in result.output
