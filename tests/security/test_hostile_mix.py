"""Valid and hostile records mixed on one key and across keys, against the four running services.

Hostile means: unstorable text (a NUL, a lone surrogate) in every string field of every command
type; records forged on every internal topic (unsigned, signed by a key no one knows, signed by
another service); and ``reply_to`` naming every registry topic and dead-letter topic. Each
valid record gets exactly its outcome; each hostile one exactly one rejection or, per service
that would act on it, one dead letter; no credential reaches a topic but its caller's reply
topic; and every consumer group's lag returns to 0.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from libs.security.record_signatures import RecordSigner, generate_record_keys
from libs.tools.topics_admin import create_topics
from services.registry import SERVICES
from signgate_contracts import Command, Topic, TopicKind, encode
from signgate_contracts import authentication as auth
from signgate_contracts import identity as idn
from signgate_contracts import workflow as wf
from signgate_contracts.credentials import _types_in
from signgate_contracts.topics import OUTCOME_TOPIC, TOPICS
from tests.support.chaos_scale import report, scaled
from tests.support.kafka import TopicWatcher, consumer_lag, json_object, producer
from tests.support.signing import signer_of
from tests.support.system import System
from tests.support.waiting import until

pytestmark = pytest.mark.timeout(600)

COMMAND_TOPICS = [t for t in TOPICS if t.writer is None]
INTERNAL_TOPICS = [t for t in TOPICS if t.writer is not None]
UNSTORABLE = ('"a\\u0000b"', '"\\ud800"')
"""As JSON text: a NUL, and an unpaired surrogate (which no UTF-8 store can take)."""


@dataclass
class Plan:
    """What was sent, and what each record is owed."""

    records: list[tuple[str, bytes, bytes, list[tuple[str, bytes]] | None]] = field(default_factory=list)
    """(registry topic, key, value, headers), in the order they are sent."""
    outcomes: dict[str, tuple[str, int | None, str | None, str | None]] = field(default_factory=dict)
    """Correlation id -> (type, status, code, field) of its one outcome."""
    letters: dict[int, int] = field(default_factory=dict)
    """Index in ``records`` -> how many dead letters it is owed (one per service acting on it)."""
    kinds: Counter[str] = field(default_factory=Counter)
    canaries: list[str] = field(default_factory=list)

    def add(self, kind: str, topic: str, value: bytes, headers: list[tuple[str, bytes]] | None = None) -> int:
        self.kinds[kind] += 1
        self.records.append((topic, b"", value, headers))
        return len(self.records) - 1


def string_fields(model: type[Command]) -> list[str]:
    """The wire names of ``model``'s top-level fields that take text."""
    names = []
    for name, info in model.model_fields.items():
        if name in ("type", "event_id", "correlation_id", "causation_id", "occurred_at"):
            continue
        if any(t in (str, SecretStr) for t in _types_in(info.annotation)):
            names.append(info.alias or name)
    return names


def envelope(type_: str) -> dict[str, Any]:
    return {"type": type_, "event_id": str(uuid.uuid4()), "correlation_id": str(uuid.uuid4())}


def consumers_acting_on(topic: Topic, type_: str) -> int:
    """How many services would act on a record of ``type_`` on ``topic`` (and so dead-letter a forgery)."""
    return sum(1 for d in SERVICES if topic in d.consumes
               and (topic.answers_commands or any(m.model_fields["type"].default == type_ for m in d.handlers)))


def valid_records(caller_topic: str, password: str, count: int = 10):
    """Valid commands to each command topic, with the one outcome each is owed."""
    for _ in range(count):
        yield ("signgate.identity.commands", idn.AuthenticateUser(
            user_name=f"nobody-{uuid.uuid4().hex[:8]}@example.com", password=password, reply_to=caller_topic),
            ("identity.user_authentication_failed_v2", None, None, None))
        yield ("signgate.authentication.commands", auth.GetRecipientAuthenticationStatus(
            package_id=f"mix-{uuid.uuid4().hex[:8]}", order=1, reply_to=caller_topic),
            ("command.rejected", 401, "credential_required", None))  # refused before anything is read
        yield ("signgate.workflow.commands", wf.GetWorkflowHistory(
            package_id=f"mix-{uuid.uuid4().hex[:8]}", access_token="not-a-token", reply_to=caller_topic),
            ("command.rejected", 401, None, None))


def plan(system: System, caller_topic: str, rounds: int, rng: random.Random) -> Plan:
    connections = system.connections
    result = Plan()
    stranger = RecordSigner(generate_record_keys(["stranger"])["SIGNGATE_STRANGER_RECORD_SIGNING_KEY"])
    for _ in range(rounds):
        # valid records, each with its one expected outcome
        password = f"canary-{uuid.uuid4().hex}"
        result.canaries.append(password)
        for topic, command, owed in valid_records(caller_topic, password):
            result.add("valid", topic, encode(command))
            result.outcomes[str(command.correlation_id)] = owed
        # unstorable text in every string field of every command type
        for topic in COMMAND_TOPICS:
            for model in topic.messages:
                for name in string_fields(model):
                    document = envelope(model.model_fields["type"].default)
                    text = json.dumps({**document, name: "@"}).replace('"@"', rng.choice(UNSTORABLE))
                    result.add("unstorable text", topic.name, text.encode())
                    result.outcomes[document["correlation_id"]] = ("command.rejected", 400, "invalid_command", name)
        # forgeries on every internal topic a service acts on
        for topic in INTERNAL_TOPICS:
            wrong_writer = next(w for w in ("identity", "workflow", "authentication") if w != topic.writer)
            for model in topic.messages:
                type_ = model.model_fields["type"].default
                owed = consumers_acting_on(topic, type_)
                if not owed:
                    continue
                value = json.dumps({**envelope(type_), "package_id": "p", "order": 1}).encode()
                deployed = connections.topic(topic.name)
                signer = rng.choice([None, stranger, signer_of(wrong_writer)])
                headers = None if signer is None else [
                    (n, v.encode()) for n, v in signer.headers(deployed, b"", value, {"type": type_}).items()]
                result.letters[result.add("forged", topic.name, value, headers)] = owed
        # replies sent anywhere but to a caller
        for target in [connections.topic(n) for t in TOPICS for n in (t.name, t.dlq)]:
            topic, command = rng.choice([
                ("signgate.authentication.commands",
                 auth.GetRecipientAuthenticationStatus(package_id="p-x", order=1, reply_to=target)),
                ("signgate.identity.commands",
                 idn.AuthenticateUser(user_name="nobody@example.com", password=password, reply_to=target)),
            ])
            if target == connections.topic(OUTCOME_TOPIC[topic].name.replace(".events", ".replies")):
                continue  # a service's own replies topic takes its answers
            result.add("reply_to elsewhere", topic, encode(command))
            result.outcomes[str(command.correlation_id)] = ("command.rejected", 400, "invalid_reply_to", "reply_to")
    # on one key and across keys, in a random order
    order = list(range(len(result.records)))
    rng.shuffle(order)
    keys = [b"mix-shared" if rng.random() < 0.5 else f"mix-{uuid.uuid4().hex[:6]}".encode() for _ in order]
    records = [(result.records[i][0], keys[n], *result.records[i][2:]) for n, i in enumerate(order)]
    position = {i: n for n, i in enumerate(order)}
    result.letters = {position[i]: owed for i, owed in result.letters.items()}
    result.records = records  # type: ignore[assignment]
    return result


async def test_valid_and_hostile_records_mixed_on_shared_keys_each_get_exactly_their_ending(system: System) -> None:
    connections = system.connections
    caller = Topic(f"{connections.caller_reply_prefix}mix-{uuid.uuid4().hex[:6]}", TopicKind.REPLIES, "k", 1,
                   timedelta(minutes=15), (), "The suite's own reply topic.")
    await create_topics(connections, [caller])
    caller_topic = connections.topic(caller.name)
    sent_before = len(system.watch.records)
    the_plan = plan(system, caller_topic, scaled(1, 8), random.Random(13))
    positions: dict[tuple[str, int, int], int] = {}
    async with producer(connections.kafka_bootstrap) as client, \
            TopicWatcher(connections.kafka_bootstrap, caller_topic) as replies:
        sends = [(n, await client.send(connections.topic(topic), value, key=key, headers=headers))
                 for n, (topic, key, value, headers) in enumerate(the_plan.records)]
        for n, delivery in sends:
            metadata = await delivery
            positions[(metadata.topic, metadata.partition, metadata.offset)] = n

        outcome_topics = {connections.topic(t.name) for t in OUTCOME_TOPIC.values()}

        def outcome_of(record) -> str | None:
            return json_object(record).get("correlation_id") if record.topic in outcome_topics else None

        def letter_of(record) -> int | None:
            if not record.topic.endswith(".dlq"):
                return None
            document = json_object(record)
            return positions.get((document.get("source_topic"), document.get("partition"), document.get("offset")))

        await system.watch.wait_for(lambda r: outcome_of(r) in the_plan.outcomes, count=len(the_plan.outcomes),
                                    timeout=scaled(120, 500))
        await system.watch.wait_for(lambda r: letter_of(r) is not None, count=sum(the_plan.letters.values()),
                                    timeout=60)
        lags = await until(lambda: all_zero(connections), timeout=60, what="every group's lag back to 0")
        seen_replies = list(replies.records)

    records = system.watch.records[sent_before:]
    outcomes = Counter(outcome_of(r) for r in records if outcome_of(r) in the_plan.outcomes)
    assert set(outcomes.values()) == {1}, "a record was answered more than once"
    for record in records:
        correlation_id = outcome_of(record)
        if correlation_id in the_plan.outcomes:
            document = json_object(record)
            type_, status, code, field_name = the_plan.outcomes[correlation_id]
            got = (document["type"], document.get("status") if status else None,
                   document.get("code") if code else None, document.get("field") if field_name else None)
            assert got == (type_, status, code, field_name), document
    letters = Counter(letter_of(r) for r in records if letter_of(r) is not None)
    assert letters == Counter(the_plan.letters), "dead letters do not match the forgeries"
    assert all(json_object(r)["reason"].startswith("unauthenticated: ") for r in records if letter_of(r) is not None)
    published = [r.value.decode(errors="replace") for r in records
                 if not any(r.topic == connections.topic(t.name) for t in COMMAND_TOPICS)]
    published += [r.value.decode(errors="replace") for r in seen_replies]
    assert not [c for c in the_plan.canaries if any(c in text for text in published)]
    report("hostile mix", records=len(the_plan.records), kinds=dict(the_plan.kinds),
           outcomes=len(the_plan.outcomes), dead_letters=sum(letters.values()), lags=lags)


async def all_zero(connections) -> dict[str, int] | None:
    lags = await consumer_lag(connections, SERVICES)
    return lags if not any(lags.values()) else None
