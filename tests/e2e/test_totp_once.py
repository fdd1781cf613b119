"""One authenticator-app code, submitted 10,000 times at once, opens once.

Every service runs as two instances of its consumer group (the authentication replicas each own
half the partitions of its commands topic), on a database and topics of their own. One API user
signs for a recipient of six packages, one package on each partition, and has confirmed an
authenticator app with identity. Ten thousand `VerifyDocumentTotp` commands with the same valid
code, spread over the six packages, are published in batches by one producer: the code is
accepted exactly once, the 9,999 others are refused as used, and every command gets exactly one
outcome. (privacyIDEA 3.14, measured on this machine: the same valid HOTP accepted twice in 10 of
10 concurrent trials, once per worker.) The services' clock stands still during the burst, so the
code stays valid however long the machine takes.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import asyncpg
import pyotp
import pytest
from aiokafka.partitioner import DefaultPartitioner

from libs.devstack.embedded import Endpoints
from libs.runtime.settings import ConnectionSettings
from libs.security.tokens import TokenIssuer, TokenSettings
from libs.tools.provision import ProvisionSettings, provision
from services.registry import SERVICES
from signgate_contracts import Command, encode
from signgate_contracts import authentication as auth
from signgate_contracts import identity as idn
from signgate_contracts import workflow as wf
from signgate_contracts.envelope import Secret
from signgate_contracts.topics import (
    AUTHENTICATION_COMMANDS,
    AUTHENTICATION_EVENTS,
    IDENTITY_EVENTS,
    WORKFLOW_COMMANDS,
    WORKFLOW_REPLIES,
)
from tests.support.chaos_scale import report
from tests.support.databases import own_database
from tests.support.kafka import producer
from tests.support.signing import as_writer, authentication_sealer
from tests.support.system import System, running_system
from tests.support.waiting import until

pytestmark = pytest.mark.timeout(240)
SUBMISSIONS = 10_000
BATCH = 1_000
PRIVACYIDEA_DOUBLE_ACCEPTANCES = (10, 10)
"""privacyIDEA 3.14 on this machine: trials with the same valid HOTP accepted twice, of trials."""


@pytest.fixture(scope="module")
async def replicated(endpoints: Endpoints, run_id: str,
                     tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[System]:
    """Every service as two instances of its consumer group, on a database and topics of their own."""
    async with own_database(endpoints.database_url, f"{run_id}_totp") as database_url:
        connections = ConnectionSettings(
            kafka_bootstrap=endpoints.kafka_bootstrap, kafka_idempotence=False, database_url=database_url,
            redis_url=endpoints.redis_url, topic_prefix=f"{run_id}.totp.", redis_prefix=f"{run_id}:totp:")
        await provision(ProvisionSettings(connections=connections), SERVICES)
        async with running_system(connections, tmp_path_factory.mktemp("totp"), replicas=2) as system:
            yield system


def one_package_per_partition(partitions: int) -> list[str]:
    """Package ids whose records land on each partition of a topic of ``partitions``, one each."""
    partitioner, chosen = DefaultPartitioner(), {}
    every = list(range(partitions))
    while len(chosen) < partitions:
        package_id = f"totp-{uuid.uuid4().hex[:10]}"
        chosen.setdefault(partitioner(package_id.encode(), every, every), package_id)
    return [chosen[p] for p in every]


async def send_all(system: System, topic: str, commands: list[Command]) -> None:
    """Publish ``commands`` (keyed by package) in batches of `BATCH` with one producer."""
    connections = system.connections
    async with producer(connections.kafka_bootstrap) as client:
        for start in range(0, len(commands), BATCH):
            sent = [await client.send(connections.topic(topic), encode(c), key=c.package_id.encode())  # type: ignore[attr-defined]
                    for c in commands[start:start + BATCH]]
            await asyncio.gather(*sent)


async def invitations_of(system: System, owner: str, user: uuid.UUID, package_ids: list[str]) -> list[Secret]:
    """Each package registered with the user as recipient 1's signer, TOTP from their authenticator,
    shared: recipient 1's invitation of each."""
    commands: list[Command] = []
    shares = []
    for package_id in package_ids:
        share = wf.ShareWorkflow(package_id=package_id, access_token=owner)
        shares.append(share)
        commands += [
            wf.RegisterPackage(package_id=package_id, name="Lease", access_token=owner,
                               documents=[wf.DocumentSpec(document_id="doc-1", name="lease.pdf")],
                               recipients=[wf.RecipientSpec(order=1, email="dana@example.com", name="Dana",
                                                            signer_user_id=user)]),
            wf.AddAuthentication.model_validate({"package_id": package_id, "access_token": owner, "body": {
                "emailId": "dana@example.com", "authenticationType": "TOTP", "totpSource": "user_authenticator"}}),
            share,
        ]
    await send_all(system, WORKFLOW_COMMANDS.name, commands)
    replies = system.connections.topic(WORKFLOW_REPLIES.name)
    invitations = []
    for share in shares:
        [reply] = await system.watch.wait_for(
            lambda r, s=share: r.topic == replies and json.loads(r.value)["correlation_id"] == str(s.correlation_id),
            timeout=30)
        invitations.append(Secret(json.loads(reply.value)["invitations"][0]["invitation"]))
    return invitations


async def confirm_authenticator(system: System, user: uuid.UUID, secret: str) -> None:
    """identity's AuthenticatorConfirmed, sealed and signed as identity publishes it."""
    confirmed = idn.AuthenticatorConfirmed(
        user_id=user, authenticator_id=uuid.uuid4(), changed_by="user",
        secret_sealed=authentication_sealer().seal(idn.user_totp_context(user), secret))
    topic, key, value = system.connections.topic(IDENTITY_EVENTS.name), str(user).encode(), encode(confirmed)
    async with producer(system.connections.kafka_bootstrap) as client:
        await client.send_and_wait(topic, value, key=key,
                                   headers=as_writer(IDENTITY_EVENTS.name, topic, key, value))


async def projected(system: System, user: uuid.UUID, package_ids: list[str]) -> bool:
    """Whether authentication holds the user's authenticator and every package, shared (its share
    follows the recipient's policy on the package's partition)."""
    connection = await asyncpg.connect(system.connections.database_url)
    try:
        authenticators = await connection.fetchval(
            "SELECT count(*) FROM authentication.user_authenticators WHERE user_id = $1", user)
        shared = await connection.fetchval(
            "SELECT count(*) FROM authentication.recipients r JOIN authentication.packages p USING (package_id)"
            " WHERE p.package_id = ANY($1) AND p.state = 'in_progress' AND r.totp_source = 'user_authenticator'",
            package_ids)
    finally:
        await connection.close()
    return authenticators == 1 and shared == len(package_ids)


async def test_one_valid_code_submitted_ten_thousand_times_across_two_replicas_opens_once(
        replicated: System) -> None:
    """10,000 concurrent submissions of one valid TOTP code for one user, across two authentication
    replicas: exactly one is accepted, the 9,999 others are refused as used (409 totp_code_used),
    none is lost or answered twice, both replicas handled some, and nothing went to a dead-letter topic."""
    system = replicated
    issuer = TokenIssuer.from_settings(TokenSettings(private_key=system.secrets["SIGNGATE_TOKEN_PRIVATE_KEY"],
                                                     public_key=system.secrets["SIGNGATE_TOKEN_PUBLIC_KEY"]))
    owner = issuer.issue(str(uuid.uuid4()), "owner-totp").token
    user, secret = uuid.uuid4(), pyotp.random_base32()
    package_ids = one_package_per_partition(AUTHENTICATION_COMMANDS.partitions)
    await confirm_authenticator(system, user, secret)
    invitations = await invitations_of(system, owner, user, package_ids)
    await until(lambda: projected(system, user, package_ids), timeout=30, what="the authenticator and policies projected")

    code = pyotp.TOTP(secret).at(system.clock.freeze())
    try:
        commands = [auth.VerifyDocumentTotp(package_id=package_ids[n % len(package_ids)],
                                            invitation=invitations[n % len(package_ids)], code=code)
                    for n in range(SUBMISSIONS)]
        owed = {str(c.correlation_id) for c in commands}
        events = system.connections.topic(AUTHENTICATION_EVENTS.name)
        outcomes: dict[str, list[dict]] = {}
        read = [0]

        async def all_answered() -> bool:
            fresh, read[0] = system.watch.records[read[0]:], len(system.watch.records)
            for record in fresh:
                if record.topic == events:
                    body = json.loads(record.value)
                    if body.get("correlation_id") in owed:
                        outcomes.setdefault(body["correlation_id"], []).append(body)
            return len(outcomes) == len(owed)

        started = time.monotonic()
        await send_all(system, AUTHENTICATION_COMMANDS.name, commands)
        await until(all_answered, timeout=180, what="an outcome for every submission")
        seconds = time.monotonic() - started
    finally:
        system.clock.reset()

    kinds = Counter((o["type"], o.get("code")) for answers in outcomes.values() for o in answers)
    handled = [replica.metrics.registry.get_sample_value(
        "signgate_handling_seconds_count", {"service": "authentication", "type": auth.VerifyDocumentTotp.model_fields["type"].default})
        for replica in system.replicas or [] if replica.definition.name == "authentication"]
    dead = [r for r in system.watch.records if r.topic.endswith(".dlq")]
    report("totp once", submissions=SUBMISSIONS, replicas=len(handled), handled_per_replica=handled,
           accepted=kinds[("authentication.recipient_authenticated", None)],
           refused_as_used=kinds[("command.rejected", "totp_code_used")],
           outcomes=sum(kinds.values()), seconds=round(seconds, 1),
           privacyidea_double_acceptances=f"{PRIVACYIDEA_DOUBLE_ACCEPTANCES[0]} of {PRIVACYIDEA_DOUBLE_ACCEPTANCES[1]} trials")
    assert kinds == {("authentication.recipient_authenticated", None): 1,
                     ("command.rejected", "totp_code_used"): SUBMISSIONS - 1}
    assert all(len(answers) == 1 for answers in outcomes.values())
    assert len(handled) == 2 and all(h and h > 0 for h in handled) and sum(h or 0 for h in handled) >= SUBMISSIONS
    assert dead == []
