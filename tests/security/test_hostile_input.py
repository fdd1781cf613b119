"""Hypothesis-generated hostile records on every command topic, against the four running services."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import Counter

import psutil
import pytest

from signgate_contracts import authentication as auth
from signgate_contracts import encode
from signgate_contracts import identity as idn
from signgate_contracts import workflow as wf
from signgate_contracts.topics import OUTCOME_TOPIC
from tests.support.chaos_payloads import expected as expected_ending
from tests.support.chaos_payloads import generate
from tests.support.chaos_scale import report, scaled
from tests.support.kafka import producer
from tests.support.scanning import leaks
from tests.support.signing import as_writer
from tests.support.system import System

pytestmark = pytest.mark.timeout(600)


async def test_every_hostile_record_is_rejected_or_dead_lettered_and_no_consumer_dies(
        system: System, caplog: pytest.LogCaptureFixture) -> None:
    """Every generated record ends as a 400 `command.rejected` or outcome, or a dead letter with a reason;
    afterwards every service still answers a valid command, and memory stays bounded."""
    caplog.set_level(logging.INFO)
    connections = system.connections
    cases = generate(scaled(80, 800))
    rss_before = psutil.Process().memory_info().rss
    owed: dict[str, tuple] = {}   # correlation id -> case
    dead: dict[tuple[str, int, int], tuple] = {}  # source position -> case
    started = time.monotonic()
    async with producer(connections.kafka_bootstrap) as client:
        client._max_request_size = 2 * 1024 * 1024  # noqa: SLF001 - oversize records must reach the broker
        for case in cases:
            deployed = connections.topic(case.topic)
            try:
                metadata = await client.send_and_wait(deployed, case.value, key=case.key)
            except Exception as error:  # the broker itself refused it: nothing was accepted
                owed[f"refused-by-broker-{len(owed)}"] = (case, type(error).__name__)
                continue
            lettered, correlation_id = expected_ending(case, deployed, metadata.partition, metadata.offset)
            if lettered:
                dead[(deployed, metadata.partition, metadata.offset)] = (case,)
            if correlation_id is not None:
                owed[str(correlation_id)] = (case,)
    broker_refused = [k for k in owed if k.startswith("refused-by-broker")]
    outcome_topics = {connections.topic(OUTCOME_TOPIC[t].name) for t in OUTCOME_TOPIC}

    def outcome_of(record) -> str | None:
        if record.topic not in outcome_topics:
            return None
        return json.loads(record.value).get("correlation_id")

    def letter_of(record) -> tuple[str, int, int] | None:
        if not record.topic.endswith(".dlq"):
            return None
        body = json.loads(record.value)
        return body["source_topic"], body["partition"], body["offset"]

    answered = {k for k in owed if not k.startswith("refused-by-broker")}
    await system.watch.wait_for(lambda r: outcome_of(r) in answered, count=len(answered), timeout=scaled(90, 400))
    await system.watch.wait_for(lambda r: letter_of(r) in dead, count=len(dead), timeout=60)
    elapsed = time.monotonic() - started

    outcomes = {outcome_of(r): json.loads(r.value) for r in system.watch.records if outcome_of(r) in answered}
    letters = {letter_of(r): json.loads(r.value) for r in system.watch.records if letter_of(r) in dead}
    endings: Counter[str] = Counter()
    for correlation_id, (case, *why) in owed.items():
        if why:
            endings[f"{case.kind}: refused by the broker ({why[0]})"] += 1
        elif correlation_id in outcomes:
            outcome = outcomes[correlation_id]
            ending = (f"rejected {outcome['status']} {outcome['code']}" if outcome["type"] == "command.rejected"
                      else outcome["type"])
            endings[f"{case.kind}: {ending}"] += 1
    for position, letter in letters.items():
        [case] = dead[position]
        endings[f"{case.kind}: dead-lettered ({letter['reason'].split(':')[0]})"] += 1
        assert letter["reason"] and letter["service"], letter
    rejected_5xx = [o for o in outcomes.values() if o["type"] == "command.rejected" and o["status"] >= 500]
    assert rejected_5xx == [], rejected_5xx

    # every consumer is alive: a valid command to each command topic still gets its outcome
    alive = await _valid_commands_answered(system)
    rss_after = psutil.Process().memory_info().rss
    growth = (rss_after - rss_before) / 2**20
    assert growth < 400, f"memory grew by {growth:.0f} MiB over {len(cases)} hostile records"

    published = [r.value.decode(errors="replace") for r in system.watch.records
                 if r.topic.endswith((".events", ".dlq", ".replies"))]
    logged = [logging.getLogger().handlers[0].format(record) for record in caplog.records]
    secrets = [system.secrets[name] for name in sorted(system.secrets)]
    found = leaks(published + logged, secrets)
    assert found == []
    report("hostile input", cases=len(cases), outcomes=len(outcomes), dead_letters=len(letters),
           refused_by_broker=len(broker_refused), endings=dict(sorted(endings.items())),
           consumers_alive=alive, rss_growth_mib=round(growth, 1), seconds=round(elapsed, 1),
           secrets_found=len(found), scanned=len(published) + len(logged))


async def _valid_commands_answered(system: System) -> list[str]:
    connections = system.connections
    commands = {
        "signgate.identity.commands": idn.AuthenticateUser(user_name="nobody@example.com", password="Wrong-pass-1"),
        "signgate.workflow.commands": wf.GetWorkflowHistory(package_id="no-such-package", access_token="x"),
        "signgate.authentication.commands": auth.GetRecipientAuthenticationStatus(package_id="none", order=1),
    }
    bodies = {topic: encode(command) for topic, command in commands.items()}
    correlation_ids = {topic: command.correlation_id for topic, command in commands.items()}
    correlation_ids["signgate.otp.requests"] = uuid.uuid4()  # a request missing its destination: a 400
    bodies["signgate.otp.requests"] = json.dumps({"type": "otp.delivery_requested", "event_id": str(uuid.uuid4()),
                                                  "correlation_id": str(correlation_ids["signgate.otp.requests"])}).encode()
    async with producer(connections.kafka_bootstrap) as client:
        for topic, body in bodies.items():
            deployed = connections.topic(topic)
            await client.send_and_wait(deployed, body, key=b"k", headers=as_writer(topic, deployed, b"k", body))
    for correlation_id in correlation_ids.values():
        await system.watch.outcome(correlation_id, timeout=30)
    return sorted(bodies)
