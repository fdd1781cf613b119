"""Three replicas of every service, sharing partitions and outboxes, on a database of their own.

Under a burst, each package's and each user's commands are published in order at once; the
outcomes are read from the outcome topics and compared, key by key, with the order of their
commands. The longer form (``SIGNGATE_CHAOS_SCALE=long``) sends more packages and users. And a
reply addressed to a caller topic nobody created is dead-lettered while the rest go on.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator

import pyotp
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from libs.devstack.embedded import Endpoints
from libs.runtime.settings import ConnectionSettings
from libs.security.tokens import TokenIssuer, TokenSettings
from libs.tools.provision import ProvisionSettings, provision
from services.registry import SERVICES
from signgate_contracts import Command, encode
from signgate_contracts import identity as idn
from signgate_contracts.topics import AUTHENTICATION_EVENTS, OUTCOME_TOPIC, WORKFLOW_EVENTS
from tests.support.chaos_scale import LONG, report, scaled
from tests.support.databases import own_database
from tests.support.kafka import correlated, producer
from tests.support.system import System, running_system
from tests.support.waiting import until
from tests.support.workflow_burst import generate, new_prefix, reference
from tests.support.workflow_driver import User

pytestmark = pytest.mark.timeout(1800 if LONG else 120)
REPLICAS = 3
PASSWORD = "Scale-pass-7731"


def burst_of_commands(secrets: dict[str, str], rng: random.Random) -> tuple[list[tuple[str, str, Command]], dict[str, int]]:
    """(topic, key, command) in publication order, each key's commands in their own order, the keys
    interleaved at random; and how many outcomes each command is owed (by correlation id)."""
    issuer = TokenIssuer.from_settings(TokenSettings(private_key=secrets["SIGNGATE_TOKEN_PRIVATE_KEY"],
                                                     public_key=secrets["SIGNGATE_TOKEN_PUBLIC_KEY"]))
    burst = generate(User.new(issuer, "owner"), User.new(issuer, "stranger"), packages=scaled(24, 200),
                     per_package=scaled(10, 25), seed=rng.randrange(1 << 30), prefix=new_prefix("scale"))
    owed = {c: len(types) for c, types in reference(burst).outcomes.items()}
    streams: dict[str, list[tuple[str, str, Command]]] = defaultdict(list)
    for command in burst.commands:
        streams[command.package_id].append(  # type: ignore[attr-defined]
            ("signgate.workflow.commands", command.package_id, command))  # type: ignore[attr-defined]
    admin = issuer.issue("operator:scale", "operator:scale", roles=["admin"]).token
    for n in range(scaled(12, 300)):
        name = f"scale-{uuid.uuid4().hex[:8]}@example.com"
        streams[name] = [("signgate.identity.commands", name, c) for c in (
            idn.RegisterUser(user_name=name, first_name="S", last_name="O", password=PASSWORD, access_token=admin,
                             accounts=[idn.AccountMembership(name="Acme", context_identifier=uuid.uuid4(),
                                                             is_primary=True)]),
            idn.AuthenticateUser(user_name=name, password=PASSWORD),
            idn.AuthenticateUser(user_name=name, password=f"Wrong-{n}"),
            idn.AuthenticateUser(user_name=name, password=PASSWORD),
        )]
        owed.update({str(c.correlation_id): 1 for _, _, c in streams[name]})
    queues = list(streams.values())
    ordered = []
    while any(queues):
        queue = rng.choice([q for q in queues if q])
        ordered.append(queue.pop(0))
    return ordered, owed


def out_of_order(records: list[tuple[str, str, str]], rank: dict[str, int]) -> list[tuple[str, str, list[int]]]:
    """(topic, key, ranks) of every key on a topic whose records' ranks went down in the order the
    topic holds them: ``records`` are (topic, key, id) in topic order, a repeated id (a record
    published again) counting where it first appeared, ids without a rank ignored."""
    seen: set[tuple[str, str]] = set()
    ranks: dict[tuple[str, str], list[int]] = defaultdict(list)
    for topic, key, ident in records:
        if ident in rank and (topic, ident) not in seen:
            seen.add((topic, ident))
            ranks[(topic, key)].append(rank[ident])
    return [(topic, key, r) for (topic, key), r in ranks.items() if r != sorted(r)]


@pytest.fixture(scope="module")
async def replicated(endpoints: Endpoints, run_id: str,
                     tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[System]:
    """Every service as three instances of its consumer group, on a database and topics of their own."""
    async with own_database(endpoints.database_url, f"{run_id}_scale") as database_url:
        connections = ConnectionSettings(
            kafka_bootstrap=endpoints.kafka_bootstrap, kafka_idempotence=False, database_url=database_url,
            redis_url=endpoints.redis_url, topic_prefix=f"{run_id}.scale.", redis_prefix=f"{run_id}:scale:")
        await provision(ProvisionSettings(connections=connections), SERVICES)
        async with running_system(connections, tmp_path_factory.mktemp("scale"), replicas=REPLICAS) as system:
            yield system


async def test_outcomes_keep_each_keys_order_with_three_replicas_of_every_service(replicated: System) -> None:
    """With three replicas of every service in each consumer group, each sharing its service's
    outbox, every command gets its outcomes, each package's and each user's outcomes appear on the
    outcome topic in the order of their commands, and what the authentication service makes of a
    package's workflow events appears in the order of those events."""
    system, connections = replicated, replicated.connections
    async with producer(connections.kafka_bootstrap) as client:
        commands, owed = burst_of_commands(system.secrets, random.Random(1616))
        outcome_topic = {str(c.correlation_id): connections.topic(OUTCOME_TOPIC[t].name) for t, _, c in commands}
        started = time.monotonic()
        for topic, key, command in commands:
            await client.send(connections.topic(topic), encode(command), key=key.encode())
        await client.flush()
        answered: dict[str, set[str]] = defaultdict(set)
        read = [0]

        async def all_answered() -> bool:
            fresh, read[0] = system.watch.records[read[0]:], len(system.watch.records)
            for record in fresh:
                body = json.loads(record.value)
                if outcome_topic.get(body.get("correlation_id")) == record.topic:
                    answered[body["correlation_id"]].add(body["event_id"])
            return all(len(answered[c]) >= n for c, n in owed.items())

        await until(all_answered, timeout=scaled(90, 1500), what="every outcome of every command")
        elapsed = time.monotonic() - started
        records = list(system.watch.records)
        replicas = len(system.replicas or [])

    rank = {str(c.correlation_id): n for n, (_, _, c) in enumerate(commands)}
    outcomes = [(r.topic, r.key.decode(), json.loads(r.value)) for r in records
                if r.topic in set(outcome_topic.values())]
    by_command = out_of_order(
        [(topic, key, body["correlation_id"]) for topic, key, body in outcomes
         if outcome_topic.get(body["correlation_id"]) == topic], rank)
    workflow_events = connections.topic(WORKFLOW_EVENTS.name)
    event_rank = {}
    for topic, _key, body in outcomes:  # a workflow event's place on its topic, where it first appeared
        if topic == workflow_events:
            event_rank.setdefault(body["event_id"], len(event_rank))
    caused = [(r.topic, r.key.decode(), json.loads(r.value)) for r in records
              if r.topic == connections.topic(AUTHENTICATION_EVENTS.name)]
    by_cause = out_of_order(
        [(topic, key, body["event_id"]) for topic, key, body in caused if body.get("causation_id") in event_rank],
        {body["event_id"]: event_rank[body["causation_id"]] for _, _, body in caused
         if body.get("causation_id") in event_rank})
    report("scale out", replicas=replicas, commands=len(commands), keys=len({k for _, k, _ in commands}),
           outcome_records=len(outcomes), caused_by_workflow_events=len(caused),
           keys_out_of_order=len(by_command), caused_out_of_order=len(by_cause), seconds=round(elapsed, 1))
    assert replicas == REPLICAS * 4
    assert by_command == []
    assert by_cause == []


async def test_a_reply_to_a_topic_nobody_created_is_dead_lettered_and_the_rest_go_on(replicated: System) -> None:
    """A token reply addressed to a caller reply topic that does not exist is set aside on the
    identity replies' DLQ, once, with its reason and without its payload; the topic is not created,
    and the outcomes of the commands sent after it arrive without waiting for it."""
    system, connections = replicated, replicated.connections
    issuer = TokenIssuer.from_settings(TokenSettings(private_key=system.secrets["SIGNGATE_TOKEN_PRIVATE_KEY"],
                                                     public_key=system.secrets["SIGNGATE_TOKEN_PUBLIC_KEY"]))
    admin = issuer.issue("operator:scale", "operator:scale", roles=["admin"]).token
    nowhere = connections.topic(f"{connections.caller_reply_prefix}never-made-{uuid.uuid4().hex[:8]}")
    name = f"nowhere-{uuid.uuid4().hex[:8]}@example.com"
    register = idn.RegisterUser(user_name=name, first_name="N", last_name="W", password=PASSWORD, access_token=admin,
                                accounts=[idn.AccountMembership(name="Acme", context_identifier=uuid.uuid4(),
                                                                is_primary=True)])
    stranded = idn.AuthenticateUser(user_name=name, password=PASSWORD, reply_to=nowhere)
    later = [idn.AuthenticateUser(user_name=name, password=PASSWORD) for _ in range(3)]
    dlq = connections.topic("signgate.identity.replies.dlq")
    async with producer(connections.kafka_bootstrap) as client:
        await client.send_and_wait(connections.topic("signgate.identity.commands"), encode(register),
                                   key=name.encode())
        await system.watch.outcome(register.correlation_id)
        for command in (stranded, *later):
            await client.send(connections.topic("signgate.identity.commands"), encode(command), key=name.encode())
        await client.flush()
    # Before, each flush waited the producer's request timeout (15 s) for the topic, failed, and the
    # outbox held every later record behind it: 10 s is less than one such wait.
    replies = connections.topic("signgate.identity.replies")
    for command in later:
        [answer] = await system.watch.wait_for(
            lambda r, c=command: r.topic == replies and correlated(r, c.correlation_id), timeout=10)
        assert json.loads(answer.value)["type"] == "identity.authentication_succeeded"
    [dead] = await system.watch.wait_for(lambda r: r.topic == dlq and json.loads(r.value)["correlation_id"]
                                         == str(stranded.correlation_id), timeout=10)
    letter = json.loads(dead.value)
    admin_client = AIOKafkaAdminClient(bootstrap_servers=connections.kafka_bootstrap)
    await admin_client.start()
    try:
        topics = await admin_client.list_topics()
    finally:
        await admin_client.close()
    assert letter["reason"] == f"topic {nowhere} does not exist"
    assert letter["destination_topic"] == nowhere and letter["service"] == "identity"
    assert letter["type"] == "identity.authentication_succeeded"
    assert letter["payload"] is None  # a token was in it
    assert name not in dead.value.decode() and name.encode() != dead.key  # the user name is masked
    assert dict(dead.headers)["reason"].decode() == letter["reason"]
    assert nowhere not in topics
    counted = [s.metrics.registry.get_sample_value("signgate_messages_dead_lettered_total",
                                                   {"service": "identity", "topic": replies})
               for s in system.replicas or [] if s.definition.name == "identity"]
    assert sum(c or 0 for c in counted) == 1
    assert len(system.watch.matching(lambda r: r.topic == dlq)) == 1


def authentications_handled(system: System) -> list[float]:
    """AuthenticateUser commands each identity replica has handled so far."""
    return [s.metrics.registry.get_sample_value("signgate_handling_seconds_count",
                                                {"service": "identity", "type": "identity.authenticate_user"}) or 0
            for s in system.replicas or [] if s.definition.name == "identity"]


async def test_one_totp_code_sent_500_times_at_once_across_identity_replicas_gets_one_token(
        replicated: System) -> None:
    """500 AuthenticateUser commands with the user's right password and the same valid TOTP code,
    published at once under scattered record keys (a hostile caller chooses the key, so they land on
    every partition and reach more than one identity replica): exactly one token; the other 499 are
    answered totp_code_used; no failure is counted."""
    system, connections = replicated, replicated.connections
    issuer = TokenIssuer.from_settings(TokenSettings(private_key=system.secrets["SIGNGATE_TOKEN_PRIVATE_KEY"],
                                                     public_key=system.secrets["SIGNGATE_TOKEN_PUBLIC_KEY"]))
    admin = issuer.issue("operator:scale", "operator:scale", roles=["admin"]).token
    name = f"totp-{uuid.uuid4().hex[:8]}@example.com"
    replies = connections.topic("signgate.identity.replies")
    commands_topic = connections.topic("signgate.identity.commands")

    async def answered(command: Command) -> dict:
        """The command's reply (its event, for a registration, which has no reply)."""
        async with producer(connections.kafka_bootstrap) as client:
            await client.send_and_wait(commands_topic, encode(command), key=name.encode())
        if isinstance(command, idn.RegisterUser):
            return await system.watch.outcome(command.correlation_id)
        [record] = await system.watch.wait_for(
            lambda r: r.topic == replies and correlated(r, command.correlation_id), timeout=20)
        return json.loads(record.value)

    await answered(idn.RegisterUser(user_name=name, first_name="T", last_name="O", password=PASSWORD,
                                    access_token=admin, accounts=[idn.AccountMembership(
                                        name="Acme", context_identifier=uuid.uuid4(), is_primary=True)]))
    token = (await answered(idn.AuthenticateUser(user_name=name, password=PASSWORD)))["access_token"]
    enrolment = await answered(idn.EnrolAuthenticator(user_name=name, access_token=token))
    totp = pyotp.TOTP(enrolment["secret"])
    confirmed = await answered(idn.ConfirmAuthenticator(user_name=name, one_time_code=totp.now(), access_token=token))
    assert confirmed["type"] == "identity.recovery_codes_issued", confirmed
    code = totp.at(time.time() + 30)  # the next step's: in the drift window, after the step confirming spent
    before = authentications_handled(system)

    burst = [idn.AuthenticateUser(user_name=name, password=PASSWORD, one_time_code=code) for _ in range(500)]
    async with producer(connections.kafka_bootstrap) as client:
        for n, command in enumerate(burst):
            await client.send(commands_topic, encode(command), key=f"{name}#{n}".encode())
        await client.flush()
    sent = {str(c.correlation_id) for c in burst}
    answers = [json.loads(r.value) for r in await system.watch.wait_for(
        lambda r: r.topic == replies and json.loads(r.value).get("correlation_id") in sent, count=500, timeout=90)]

    handled = [after - earlier for after, earlier in zip(authentications_handled(system), before, strict=True)]
    report("totp replay across replicas", submissions=len(burst), tokens=sum(a["success"] for a in answers),
           replicas_handling=sum(1 for h in handled if h))
    assert sum(1 for h in handled if h) >= 2, handled
    assert [a["type"] for a in answers].count("identity.authentication_succeeded") == 1
    assert sorted(r["code"] for a in answers for r in a.get("reasons", [])) == ["totp_code_used"] * 499
