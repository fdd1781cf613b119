"""Mixed commands to all four services while a supervisor SIGKILLs one at random and restarts it.

Beside the burst of commands, real recipients (set up before the first kill) try access codes and
one-time passwords throughout the kills, and their answers are checked against a reference
(`tests.support.recipient_traffic`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from libs.devstack.dev_secrets import generate_secrets
from libs.runtime.settings import ConnectionSettings
from libs.security.tokens import TokenIssuer, TokenSettings
from libs.tools.topics_admin import create_topics
from services.registry import SERVICES
from signgate_contracts import Command, encode, otp
from signgate_contracts import identity as idn
from signgate_contracts.topics import OUTCOME_TOPIC
from tests.support.chaos_scale import LONG, report, scaled
from tests.support.chaos_supervisor import Supervisor, chaos_env
from tests.support.kafka import TopicWatcher, consumer_lag, producer
from tests.support.recipient_traffic import RecipientTraffic
from tests.support.scanning import bus_leaks, leaks
from tests.support.signing import as_writer
from tests.support.store_restarts import Ledger
from tests.support.waiting import until
from tests.support.workflow_burst import (
    generate,
    new_prefix,
    outcome_types,
    reference,
    stored_against_reference,
)
from tests.support.workflow_driver import User

pytestmark = pytest.mark.timeout(3600 if LONG else 300)
PASSWORD = "Chaos-pass-5510"


def mixed_commands(secrets: dict[str, str], rng: random.Random, *, packages: int, per_package: int,
                   users: int, otps: int) -> tuple[list[tuple[str, str, Command]], object, list]:
    """(topic, key, command) in publication order: each stream's own order kept, streams interleaved."""
    issuer = TokenIssuer.from_settings(TokenSettings(private_key=secrets["SIGNGATE_TOKEN_PRIVATE_KEY"],
                                                     public_key=secrets["SIGNGATE_TOKEN_PUBLIC_KEY"]))
    burst = generate(User.new(issuer, "owner"), User.new(issuer, "stranger"), packages=packages,
                     per_package=per_package, seed=rng.randrange(1 << 30), prefix=new_prefix("chaos"))
    admin = issuer.issue("operator:chaos", "operator:chaos", roles=["admin"]).token
    streams: list[list[tuple[str, str, Command]]] = []
    by_package: dict[str, list] = defaultdict(list)
    for command in burst.commands:
        by_package[command.package_id].append(("signgate.workflow.commands", command.package_id, command))
    streams += by_package.values()
    for n in range(users):
        name = f"chaos-{uuid.uuid4().hex[:8]}@example.com"
        streams.append([("signgate.identity.commands", name, c) for c in (
            idn.RegisterUser(user_name=name, first_name="C", last_name="H", password=PASSWORD, access_token=admin,
                             accounts=[idn.AccountMembership(name="Acme", context_identifier=uuid.uuid4(),
                                                             is_primary=True)]),
            idn.AuthenticateUser(user_name=name, password=PASSWORD),
            idn.AuthenticateUser(user_name=name, password=f"Wrong-{n}"),
        )])
    for n in range(otps):
        request = otp.OtpDeliveryRequested(package_id=f"chaos-otp-{n}", order=1, channel="sms",
                                           destination="+447700900123")
        streams.append([("signgate.otp.requests", str(request.challenge_id), request)])
    ordered = []
    while any(streams):
        stream = rng.choice([s for s in streams if s])
        ordered.append(stream.pop(0))
    return ordered, burst, [admin]


async def test_no_command_is_lost_or_applied_twice_while_services_are_killed(
        provisioned: ConnectionSettings, tmp_path: Path) -> None:
    """While a random service is SIGKILLed every 2-5 s and restarted, every command gets its outcome,
    none is applied twice, the workflow state equals the reference model, real recipients' attempts
    are answered as applying them in order gives (no more failures than the retry count, one lockout,
    nothing accepted after it, no code accepted twice), and no consumer lags."""
    connections = provisioned.model_copy(update={"topic_prefix": f"{provisioned.topic_prefix}chaos."})
    await create_topics(connections)
    secrets = generate_secrets()
    rng = random.Random(2026)
    commands, burst, tokens = mixed_commands(
        secrets, rng, packages=scaled(10, 200), per_package=scaled(15, 30), users=scaled(30, 600),
        otps=scaled(30, 600))
    expected = reference(burst)
    owed = {str(c.correlation_id): connections.topic(OUTCOME_TOPIC[topic].name) for topic, _, c in commands}
    (tmp_path / "logs").mkdir()
    sandbox = tmp_path / "sandbox.jsonl"
    supervisor = Supervisor(chaos_env(connections, secrets, sandbox), tmp_path / "logs")
    topics = [connections.topic(t.name) for t in OUTCOME_TOPIC.values()]
    topics += [connections.topic(f"{name}.dlq") for name in OUTCOME_TOPIC]
    owner = User.new(TokenIssuer.from_settings(TokenSettings(private_key=secrets["SIGNGATE_TOKEN_PRIVATE_KEY"],
                                                             public_key=secrets["SIGNGATE_TOKEN_PUBLIC_KEY"])), "owner")
    async with TopicWatcher(connections.kafka_bootstrap, *topics) as watch, \
            producer(connections.kafka_bootstrap) as client:
        supervisor.start()
        try:
            # real recipients, registered and shared before the first kill (codes go to phones
            # +447700901000 and up, none of the burst's OTP requests')
            traffic = RecipientTraffic(Ledger(connections, client, watch), owner.token, sandbox, rng,
                                       packages=scaled(8, 150), prefix=new_prefix("chaos-auth"), first=1000)
            await traffic.prepare(connections.database_url, timeout=scaled(90, 300))
            started = time.monotonic()
            lags, kills_during_traffic = await _drive(connections, supervisor, client, watch, commands, owed,
                                                      expected, traffic)
            elapsed = time.monotonic() - started
        finally:
            supervisor.stop()
        records = [(r.topic, json.loads(r.value)) for r in watch.records]

    outcomes: dict[str, dict[str, dict]] = defaultdict(dict)  # correlation id -> event id -> body
    republished = 0
    for topic, body in records:
        if owed.get(body["correlation_id"]) == topic:  # its own outcome, not what it caused elsewhere
            republished += body["event_id"] in outcomes[body["correlation_id"]]
            outcomes[body["correlation_id"]][body["event_id"]] = body
    lost = [c for c in owed if not outcomes.get(c)]
    workflow = {c: sorted(outcome_types(list(outcomes[c].values()))) for c in expected.outcomes}
    twice = [c for c in owed if c not in expected.outcomes and len(outcomes[c]) > 1]
    twice += [c for c in expected.outcomes if len(workflow[c]) > len(expected.outcomes[c])]
    dead = [body for topic, body in records if topic.endswith(".dlq")]
    sent = [c for _, _, c in commands] + traffic.setup + [a.command for r in traffic.recipients for a in r.attempts]
    endings = Counter(f"{c.type} -> {', '.join(sorted(outcome_types(list(outcomes[str(c.correlation_id)].values()))))}"
                      for c in sent if str(c.correlation_id) not in expected.outcomes)
    assert lost == []
    assert twice == [], {c: list(outcomes[c].values()) for c in twice}
    assert dead == []
    assert workflow == {c: sorted(types) for c, types in expected.outcomes.items()}
    history_twice = await _workflow_matches_reference(connections, expected, burst)
    assert history_twice == 0
    not_found = [e for e in endings if e.startswith("authentication.") and "recipient_not_found" in e]
    assert not_found == []
    recipients = traffic.check()
    codes = [json.loads(line)["code"] for line in sandbox.read_text().splitlines()]
    found = leaks([json.dumps(body) for _, body in records] + supervisor.logged(),
                  [*codes, PASSWORD, *tokens, *secrets.values(), *traffic.secrets()])
    assert found == []
    assert bus_leaks(watch.records, connections) == []  # no hash, contact or credential where it must not be
    report("crash safety", commands_sent=len(sent), outcomes_received=len(set(owed) & set(outcomes)),
           lost=len(lost), applied_twice=len(twice) + history_twice, republished_after_a_kill=republished,
           kills=len(supervisor.kills), killed=dict(Counter(supervisor.kills)), restarts=supervisor.restarts,
           kills_during_recipient_traffic=kills_during_traffic,
           consumer_lag=lags, endings=dict(sorted(endings.items())), recipients=recipients,
           dead_letters=len(dead), secrets_found=len(found), otp_codes_scanned_for=len(codes),
           seconds=round(elapsed, 1))


async def _drive(connections: ConnectionSettings, supervisor: Supervisor, client, watch: TopicWatcher,
                 commands: list, owed: dict[str, str], expected, traffic: RecipientTraffic) -> tuple[dict[str, int], int]:
    """Publish the commands a slice after each kill while the supervisor kills and the recipients
    try their codes; wait for every outcome (``owed`` gains the recipients' commands) and for every
    consumer group to have committed everything; return the lags and the kills during the
    recipients' attempts."""
    slices = 40 if LONG else 4
    chunk = -(-len(commands) // slices)
    chaos = asyncio.create_task(supervisor.chaos(max_kills=None if LONG else 3))
    kills_before = len(supervisor.kills)
    # spread over most of the kills' schedule (a kill every 3.5 s on average)
    flows = asyncio.create_task(traffic.run(spread=slices * 3.5 * 0.75 if LONG else 6.0,
                                            pause=scaled(0.3, 1.0), timeout=scaled(120, 600)))
    try:
        for index in range(slices):  # a slice after each kill: commands are in flight at every kill
            if index:
                await asyncio.wait_for(supervisor.wait_kills(index if LONG else min(index, 3)), 120)
            for topic, key, command in commands[index * chunk:(index + 1) * chunk]:
                deployed, value = connections.topic(topic), encode(command)
                await client.send(deployed, value, key=key.encode(),
                                  headers=as_writer(topic, deployed, key.encode(), value, supervisor.env))
            await client.flush()
        await flows
        kills_during_traffic = len(supervisor.kills) - kills_before
        owed.update(traffic.ledger.owed)
        seen: dict[str, set[str]] = defaultdict(set)  # correlation id -> its outcomes' event ids
        read = [0]
        owed_count = {c: len(expected.outcomes.get(c, [None])) for c in owed}

        async def all_answered() -> bool:
            fresh, read[0] = watch.records[read[0]:], len(watch.records)
            for record in fresh:
                body = json.loads(record.value)
                if owed.get(body.get("correlation_id")) == record.topic:
                    seen[body["correlation_id"]].add(body["event_id"])
            return all(len(seen[c]) >= n for c, n in owed_count.items())

        await until(all_answered, timeout=scaled(240, 3000), what="every outcome of every command")
        if not LONG:
            await asyncio.wait_for(supervisor.wait_kills(3), 60)
    finally:
        for task in (flows, chaos):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    last: list[dict[str, int]] = [{}]
    try:
        return await until(lambda: _settled(connections, last), timeout=120), kills_during_traffic
    except AssertionError:
        raise AssertionError(f"consumer lag did not reach zero: {last[0]}") from None


async def _settled(connections: ConnectionSettings, last: list[dict[str, int]]) -> dict[str, int] | None:
    lags = last[0] = await consumer_lag(connections, SERVICES)
    return lags if not any(lags.values()) else None


async def _workflow_matches_reference(connections: ConnectionSettings, expected, burst) -> int:
    """Assert the workflow state equals the reference; return history entries applied twice."""
    histories, twice = await stored_against_reference(connections.database_url, expected, burst)
    for package_id, history in histories.items():
        # what the authentication service reports back (a reset clearing its counters) is
        # beyond the workflow-only reference: compared as "at most once" by the cause check
        own = [(h.action, h.order, h.details) for h in history if h.action != "recipient_authentication_cleared"]
        assert own == expected.history.get(package_id, [])
    return twice
