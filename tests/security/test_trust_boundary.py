"""The trust boundary's regressions on the real stack, as an attacker with write access to the topics
would try them: a NUL byte that stalled a partition, replies sent where the caller said, and
records forged on internal topics."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from libs.security.record_signatures import RecordSigner, generate_record_keys
from libs.security.secrets import SecretHasher
from libs.tools.topics_admin import create_topics
from signgate_contracts import Topic, TopicKind, encode
from signgate_contracts import authentication as auth
from signgate_contracts import identity as idn
from signgate_contracts.envelope import Secret
from signgate_contracts.otp import OtpDeliveryRequested
from signgate_contracts.topics import (
    AUTHENTICATION_COMMANDS,
    AUTHENTICATION_EVENTS,
    AUTHENTICATION_REPLIES,
    IDENTITY_COMMANDS,
    IDENTITY_EVENTS,
    OTP_EVENTS,
    OTP_REQUESTS,
    TOPICS,
    WORKFLOW_COMMANDS,
    WORKFLOW_EVENTS,
    WORKFLOW_REPLIES,
)
from signgate_contracts.workflow import sealed_policy_context
from tests.support.chaos_identity import (
    admin_token,
    authenticate,
    register_user,
    register_user_with_id,
)
from tests.support.kafka import TopicWatcher, correlated, json_object, producer
from tests.support.recipients import (
    access_code,
    delivered_code,
    invitations_in,
    projected,
    shared_package,
)
from tests.support.signing import authentication_sealer, signer_of
from tests.support.system import System

pytestmark = pytest.mark.timeout(300)




def events_of(system: System, topic: str, correlation_id: Any) -> list[dict[str, Any]]:
    deployed = system.connections.topic(topic)
    return [json.loads(r.value) for r in system.watch.records
            if r.topic == deployed and correlated(r, correlation_id)]


async def outcome(system: System, topic: str, correlation_id: Any, timeout: float = 30) -> dict[str, Any]:
    deployed = system.connections.topic(topic)
    [record, *_] = await system.watch.wait_for(
        lambda r: r.topic == deployed and correlated(r, correlation_id), timeout=timeout)
    return json.loads(record.value)


def dead_letters_of(system: System, topic: str, key: bytes) -> list[dict[str, Any]]:
    dlq = system.connections.topic(topic) + ".dlq"
    return [json.loads(r.value) for r in system.watch.records if r.topic == dlq and r.key == key]


async def publish(system: System, client: AIOKafkaProducer, topic: str, value: bytes, key: bytes) -> None:
    await client.send_and_wait(system.connections.topic(topic), value, key=key)


@contextlib.asynccontextmanager
async def admin_client(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


# -- 1. one NUL byte stalled a partition for good --


async def test_a_nul_in_a_user_name_is_refused_and_the_commands_behind_it_on_its_key_are_applied(
        system: System) -> None:
    """A NUL in AuthenticateUser's user name, which Postgres cannot store, is refused with 400 naming
    the field; the five RegisterUser behind it on the same key are each registered once, and nothing
    is dead-lettered (before: the lane's transaction aborted and the batch was delivered forever)."""
    key = b"nul\x00y@example.com"
    nul = {"type": "identity.authenticate_user", "event_id": str(uuid.uuid4()),
           "correlation_id": str(uuid.uuid4()), "user_name": "nul\u0000y@example.com", "password": "x"}
    token = admin_token(system)
    registers = [idn.RegisterUser(user_name=f"nul-{n}-{uuid.uuid4().hex[:6]}@example.com", first_name="N",
                                  last_name="L", access_token=token,
                                  accounts=[idn.AccountMembership(name="A", context_identifier=uuid.uuid4(), is_primary=True)])
                 for n in range(5)]
    async with producer(system.connections.kafka_bootstrap) as client:
        await publish(system, client, IDENTITY_COMMANDS.name, json.dumps(nul).encode(), key)
        for register in registers:
            await publish(system, client, IDENTITY_COMMANDS.name, encode(register), key)

    refused = await outcome(system, IDENTITY_EVENTS.name, nul["correlation_id"])
    answers = [await outcome(system, IDENTITY_EVENTS.name, r.correlation_id) for r in registers]

    assert (refused["type"], refused["status"], refused["code"], refused["field"]) == (
        "command.rejected", 400, "invalid_command", "user_name")
    assert [a["type"] for a in answers] == ["identity.user_registered_v2"] * 5
    for register in registers:
        assert len(events_of(system, IDENTITY_EVENTS.name, register.correlation_id)) == 1
    assert dead_letters_of(system, IDENTITY_COMMANDS.name, key) == []


async def test_a_nul_or_a_lone_surrogate_in_a_field_that_is_written_is_answered_400_not_500(
        system: System) -> None:
    """RegisterUser writes its names: a NUL there, or an unpaired surrogate (not UTF-8 at all), is a
    400 naming the field, as any other invalid input."""
    token = admin_token(system)
    bodies = []
    for name, bad in (("first_name", "Ja\\u0000ne"), ("last_name", "\\ud800")):
        body = json.loads(idn.RegisterUser(
            user_name=f"w-{uuid.uuid4().hex[:6]}@example.com", first_name="J", last_name="D", access_token=token,
            accounts=[idn.AccountMembership(name="A", context_identifier=uuid.uuid4(), is_primary=True)],
        ).model_dump_json())
        body["access_token"], body[name] = token, "@BAD@"
        bodies.append((name, body, json.dumps(body).replace('"@BAD@"', f'"{bad}"')))
    async with producer(system.connections.kafka_bootstrap) as client:
        for _name, body, text in bodies:
            await publish(system, client, IDENTITY_COMMANDS.name, text.encode(), body["user_name"].encode())

    for name, body, _text in bodies:
        refused = await outcome(system, IDENTITY_EVENTS.name, body["correlation_id"])
        assert (refused["status"], refused["code"], refused["field"]) == (400, "invalid_command", name)


async def test_a_nul_in_a_recipient_command_is_refused_and_the_next_on_its_key_is_answered(
        system: System) -> None:
    """In the authentication service the NUL failed in the lane's read-ahead, outside every guard,
    and nothing was even dead-lettered: now it is a 400, and the command behind it is answered."""
    package_id = f"nul-{uuid.uuid4().hex[:8]}"
    nul = {"type": "authentication.open_document_with_password", "event_id": str(uuid.uuid4()),
           "correlation_id": str(uuid.uuid4()), "package_id": package_id + "\u0000", "order": 1,
           "password": "guess"}
    following = auth.GetRecipientAuthenticationStatus(package_id=package_id, order=1)
    async with producer(system.connections.kafka_bootstrap) as client:
        await publish(system, client, AUTHENTICATION_COMMANDS.name, json.dumps(nul).encode(), package_id.encode())
        await publish(system, client, AUTHENTICATION_COMMANDS.name, encode(following), package_id.encode())

    refused = await outcome(system, AUTHENTICATION_EVENTS.name, nul["correlation_id"])
    answered = await outcome(system, AUTHENTICATION_EVENTS.name, following.correlation_id)

    assert (refused["status"], refused["code"], refused["field"]) == (400, "invalid_command", "package_id")
    assert (answered["type"], answered["code"]) == ("command.rejected", "credential_required")
    assert dead_letters_of(system, AUTHENTICATION_COMMANDS.name, package_id.encode()) == []


# -- 3. a reply went wherever reply_to said --


async def owner_token(system: System, client: AIOKafkaProducer) -> str:
    password = "Owner-pass-4471"
    user_name = await register_user(system, client, password)
    answer = await authenticate(system, client, user_name, password)
    assert answer.reply["success"] is True, answer.reply
    return answer.reply["access_token"]


async def shared(system: System, client: AIOKafkaProducer, n: int) -> tuple[str, dict[int, Secret]]:
    """A shared package whose order 1 opens with ``access_code(n)``, projected by authentication,
    and its recipients' invitations (what their signing links carry), by order."""
    package_id = f"reply-{uuid.uuid4().hex[:8]}"
    token = await owner_token(system, client)
    for command in shared_package(token, package_id, n):
        await publish(system, client, WORKFLOW_COMMANDS.name, encode(command), package_id.encode())
        answer = await outcome(system, WORKFLOW_EVENTS.name, command.correlation_id)
        assert answer["type"] != "command.rejected", answer
    invitations = invitations_in(await outcome(system, WORKFLOW_REPLIES.name, command.correlation_id))
    await projected(system.connections.database_url, [package_id])
    return package_id, invitations


def every_topic_but(system: System, service_replies: str) -> list[str]:
    """Every registry topic and dead-letter topic but ``service_replies``, deployed."""
    names = [name for t in TOPICS for name in (t.name, t.dlq)]
    return [system.connections.topic(name) for name in names if name != service_replies]


async def test_a_grant_is_never_sent_to_a_topic_that_is_not_a_callers(system: System) -> None:
    """The right access code with ``reply_to`` naming any registry topic or dead-letter topic (the
    authentication events topic, kept 7 days, among them) or a name the broker would create, is
    refused with 400 ``invalid_reply_to``: no grant is issued, nothing is sent there and no topic is
    created. The same code with a topic under the caller prefix then opens the document, there."""
    n = 9101
    connections = system.connections
    own = Topic(connections.caller_reply_prefix + f"trust-{uuid.uuid4().hex[:6]}", TopicKind.REPLIES, "k", 1,
                timedelta(minutes=15), (), "A caller's own reply topic.")
    await create_topics(connections, [own])
    invented = [connections.topic("portal.replies"), connections.topic("signgate.invented")]
    async with producer(connections.kafka_bootstrap) as client, \
            TopicWatcher(connections.kafka_bootstrap, connections.topic(own.name)) as caller:
        package_id, invitations = await shared(system, client, n)
        targets = [*every_topic_but(system, AUTHENTICATION_REPLIES.name), *invented]
        commands = [auth.OpenDocumentWithPassword(package_id=package_id, invitation=invitations[1],
                                                  password=access_code(n), reply_to=target) for target in targets]
        for command in commands:
            await publish(system, client, AUTHENTICATION_COMMANDS.name, encode(command), package_id.encode())
        answers = [await outcome(system, AUTHENTICATION_EVENTS.name, c.correlation_id) for c in commands]
        right = auth.OpenDocumentWithPassword(package_id=package_id, invitation=invitations[1],
                                              password=access_code(n), reply_to=connections.topic(own.name))
        await publish(system, client, AUTHENTICATION_COMMANDS.name, encode(right), package_id.encode())
        [granted] = await caller.wait_for(lambda r: correlated(r, right.correlation_id), timeout=30)

    for answer in answers:
        assert (answer["type"], answer["status"], answer["code"], answer["field"]) == (
            "command.rejected", 400, "invalid_reply_to", "reply_to"), answer
    refused = {str(c.correlation_id) for c in commands}
    sent_on = connections.topic(AUTHENTICATION_COMMANDS.name)
    for record in system.watch.records:  # what the services published, in answer to the refused
        if record.topic != sent_on and json_object(record).get("correlation_id") in refused:
            assert json_object(record)["type"] == "command.rejected", record.topic
    assert json.loads(granted.value)["type"] == "authentication.document_access_granted"
    async with admin_client(connections.kafka_bootstrap) as admin:
        assert not set(invented) & set(await admin.list_topics())


# -- 2. a forged internal record opened any recipient's document --


def genuine(system: System, topic: str, type_: str, package_id: str, order: int) -> Any:
    """The last record of ``type_`` about recipient ``order`` of ``package_id`` its writer published."""
    deployed = system.connections.topic(topic)
    return [r for r in system.watch.records if r.topic == deployed and r.key == package_id.encode()
            and json_object(r).get("type") == type_ and json_object(r).get("order") == order][-1]


def fresh_ids(document: dict[str, Any]) -> dict[str, Any]:
    return {**document, "event_id": str(uuid.uuid4()), "correlation_id": str(uuid.uuid4())}


def other_signer() -> RecordSigner:
    """A key no deployment knows, as an attacker would make one."""
    return RecordSigner(generate_record_keys(["attacker"])["SIGNGATE_ATTACKER_RECORD_SIGNING_KEY"])


def sign_as(signer: RecordSigner, topic: str, key: bytes, value: bytes) -> list[tuple[str, bytes]]:
    type_ = json.loads(value)["type"]
    return [(n, v.encode()) for n, v in signer.headers(topic, key, value, {"type": type_}).items()]


async def dead_letter_at(system: System, topic: str, partition: int, offset: int,
                         count: int = 1) -> list[dict[str, Any]]:
    dlq = system.connections.topic(topic) + ".dlq"
    records = await system.watch.wait_for(
        lambda r: r.topic == dlq and (b := json_object(r)).get("partition") == partition
        and b.get("offset") == offset, count=count, timeout=30)
    return [json.loads(r.value) for r in records]


async def test_a_forged_otp_request_sends_no_code_and_a_forged_policy_opens_nothing(system: System) -> None:
    """An unsigned `otp.delivery_requested` with the attacker's phone for a real recipient sends
    nothing; a `workflow.recipient_authentication_updated_v2` whose sealed part holds the attacker's
    access-code hash (made with the deployment's own pepper, and sealed to the authentication
    service's public key, which anyone may hold) signed with a key of the attacker's, and the
    genuine record replayed under its signature with that sealed part put in, are each
    dead-lettered as unauthenticated, once: the attacker's code does not open the document, the
    owner's still does."""
    n = 9202
    connections = system.connections
    attacker_phone, attacker_code = "+447700999888", "attacker-code-1"
    async with producer(connections.kafka_bootstrap) as client:
        package_id, invitations = await shared(system, client, n)
        requests = connections.topic(OTP_REQUESTS.name)
        forged_request = OtpDeliveryRequested(package_id=package_id, order=2, channel="sms",
                                              destination=attacker_phone, code_length=6, ttl_seconds=600)
        request_sent = await client.send_and_wait(requests, encode(forged_request),
                                                  key=str(forged_request.challenge_id).encode())

        events = connections.topic(WORKFLOW_EVENTS.name)
        original = genuine(system, WORKFLOW_EVENTS.name, "workflow.recipient_authentication_updated_v2", package_id,
                           order=1)
        document = json.loads(original.value)
        attacker_hash = SecretHasher(system.secrets["SIGNGATE_SECRET_PEPPER"].encode()).hash_now(attacker_code)
        context = sealed_policy_context(package_id, 1, document["authentication_version"])
        document["authentication"]["sealed"] = authentication_sealer().seal(
            context, {"secret_hash": attacker_hash, "destination": None})
        forged = json.dumps(fresh_ids(document)).encode()
        signed_by_attacker = await client.send_and_wait(events, forged, key=package_id.encode(),
                                                        headers=sign_as(other_signer(), events, package_id.encode(),
                                                                        forged))
        tampered = json.dumps({**json.loads(original.value), "authentication": document["authentication"]}).encode()
        replayed = await client.send_and_wait(events, tampered, key=package_id.encode(), headers=list(original.headers))

        letters = {
            "request": await dead_letter_at(system, OTP_REQUESTS.name, request_sent.partition, request_sent.offset),
            "attacker key": await dead_letter_at(system, WORKFLOW_EVENTS.name, signed_by_attacker.partition,
                                                 signed_by_attacker.offset),
            "replayed": await dead_letter_at(system, WORKFLOW_EVENTS.name, replayed.partition, replayed.offset),
        }
        attempt = auth.OpenDocumentWithPassword(package_id=package_id, invitation=invitations[1], password=attacker_code)
        await publish(system, client, AUTHENTICATION_COMMANDS.name, encode(attempt), package_id.encode())
        refused = await outcome(system, AUTHENTICATION_EVENTS.name, attempt.correlation_id)
        right = auth.OpenDocumentWithPassword(package_id=package_id, invitation=invitations[1], password=access_code(n))
        await publish(system, client, AUTHENTICATION_COMMANDS.name, encode(right), package_id.encode())
        opened = await outcome(system, AUTHENTICATION_EVENTS.name, right.correlation_id)

    assert [d["reason"] for d in letters["request"]] == ["unauthenticated: no signature"]
    assert [d["reason"] for d in letters["attacker key"]] == ["unauthenticated: signed by an unknown key"]
    assert [d["reason"] for d in letters["replayed"]] == ["unauthenticated: the signature does not match the record"]
    assert all(d["service"] == "authentication" for d in letters["attacker key"] + letters["replayed"])
    assert not events_of(system, OTP_EVENTS.name, forged_request.correlation_id)
    assert delivered_code(system.sandbox, attacker_phone) is None
    assert (refused["type"], refused["reason"]) == ("authentication.recipient_authentication_failed", "wrong_secret")
    assert opened["type"] == "authentication.recipient_authenticated"


async def test_a_fact_signed_by_another_service_or_unsigned_has_no_effect(system: System) -> None:
    """A disabled user stays disabled when `identity.user_enabled_v2` comes signed by the workflow
    service's key (a service may speak only for itself on its own topics), and an unsigned
    `otp.sent` is not taken for a delivery: each consumer that handles the type dead-letters it once."""
    connections = system.connections
    async with producer(connections.kafka_bootstrap) as client:
        password = "Disabled-pass-5512"
        user_name, user_id = await register_user_with_id(system, client, password)
        registered = {"user_id": user_id}
        disable = idn.DisableUser(user_name=user_name, access_token=admin_token(system))
        await publish(system, client, IDENTITY_COMMANDS.name, encode(disable), user_name.encode())
        assert (await outcome(system, IDENTITY_EVENTS.name, disable.correlation_id))["type"] == "identity.user_disabled_v2"

        events = connections.topic(IDENTITY_EVENTS.name)
        enabled = json.dumps({"type": "identity.user_enabled_v2", "event_id": str(uuid.uuid4()),
                              "correlation_id": str(uuid.uuid4()), "occurred_at": "2026-12-02T10:00:00Z",
                              "user_id": user_id}).encode()
        workflow_signer = signer_of("workflow")
        forged = await client.send_and_wait(events, enabled, key=user_id.encode(),
                                            headers=sign_as(workflow_signer, events, user_id.encode(), enabled))
        consumers = [s for s in system.services.values()
                     if any(t.name == IDENTITY_EVENTS.name for t in s.definition.consumes)
                     and idn.UserEnabledV2 in s.definition.handlers]
        letters = await dead_letter_at(system, IDENTITY_EVENTS.name, forged.partition, forged.offset,
                                       count=len(consumers))

        otp_events = connections.topic(OTP_EVENTS.name)
        sent = json.dumps({"type": "otp.sent", "event_id": str(uuid.uuid4()), "correlation_id": str(uuid.uuid4()),
                           "challenge_id": str(uuid.uuid4()), "purpose": "document_opening", "package_id": "p-x",
                           "order": 1, "channel": "sms", "destination": "+44******9888",
                           "provider_message_id": "m", "expires_at": "2026-12-02T10:05:00Z",
                           "resend_available_at": "2026-12-02T10:01:00Z", "sends_remaining": 4}).encode()
        unsigned = await client.send_and_wait(otp_events, sent, key=b"p-x")
        otp_letters = await dead_letter_at(system, OTP_EVENTS.name, unsigned.partition, unsigned.offset)
        answer = await authenticate(system, client, user_name, password)

    assert consumers and {d["service"] for d in letters} == {s.definition.name for s in consumers}
    assert len(letters) == len(consumers)
    assert {d["reason"] for d in letters} == {"unauthenticated: signed by workflow, not by identity, the writer "
                                              "of this topic"}
    assert [(d["service"], d["reason"]) for d in otp_letters] == [("authentication", "unauthenticated: no signature")]
    assert [r["code"] for r in answer.reply["reasons"]] == ["account_disabled"]
    for service in consumers:
        assert service.resources.pool is not None
        assert await service.resources.pool.fetchval(
            "SELECT disabled FROM account_states WHERE user_id = $1", uuid.UUID(registered["user_id"])) is True
