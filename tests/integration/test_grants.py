"""Bounded, revocable grants on the real stack: the authentication service alone, fed workflow's facts
as workflow publishes them (signed, policies sealed), recipients proving themselves with invitations,
grants checked by `signgate_client`'s verifier with the JWKS the service serves over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
import uvicorn

from libs.runtime.service import Service, build_service
from libs.runtime.settings import ConnectionSettings
from libs.security.otp_store import OtpStoreSettings
from libs.security.secrets import SecretHasher, SecretSettings, generate_pepper
from libs.security.tokens import TokenSettings, generate_key_pair
from services.authentication.app import DEFINITION, AuthenticationSettings
from services.authentication.grants import GrantSettings
from signgate_client import GrantRevocations, GrantRevoked, GrantVerifier, fetch_grant_keys
from signgate_contracts import Message
from signgate_contracts import authentication as auth
from signgate_contracts import workflow as wf
from signgate_contracts.topics import (
    AUTHENTICATION_COMMANDS,
    AUTHENTICATION_EVENTS,
    AUTHENTICATION_REPLIES,
    TOPICS,
    WORKFLOW_EVENTS,
    TopicKind,
)
from tests.support.clock import MovableClock
from tests.support.kafka import TopicWatcher, correlated
from tests.support.signing import (
    invitation_for,
    session_digests,
)
from tests.support.signing import (
    policy_updated as signed_policy_updated,
)
from tests.support.signing import (
    publish_as_writer as publish,
)
from tests.support.waiting import until

PEPPER = generate_pepper()
HASHER = SecretHasher(PEPPER.encode())
ACCESS_CODE = "Grant-code-42"
SECRET_HASH = HASHER.hash_now(ACCESS_CODE)
LIFETIME = timedelta(minutes=20)
DIGESTS = session_digests()
GRANT_KEY = generate_key_pair()


@pytest.fixture(scope="module")
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture(scope="module")
async def everything(provisioned: ConnectionSettings) -> AsyncIterator[TopicWatcher]:
    """Every topic of the registry, from before the service starts: what each test leaves on the bus."""
    names = [provisioned.topic(t.name) for t in TOPICS]
    async with TopicWatcher(provisioned.kafka_bootstrap, *names) as watcher:
        yield watcher


@pytest.fixture(scope="module")
async def service(provisioned: ConnectionSettings, clock: MovableClock,
                  everything: TopicWatcher) -> AsyncIterator[Service]:
    settings = AuthenticationSettings(
        connections=provisioned, retry_first_delay=0.01, clock=clock,
        secrets=SecretSettings(pepper=PEPPER), tokens=TokenSettings(public_key=generate_key_pair().public_key),
        otp_store=OtpStoreSettings(pepper=PEPPER),
        grants=GrantSettings(private_key=GRANT_KEY.private_key, lifetime=LIFETIME),
    )
    built = build_service(DEFINITION, settings)
    async with built.app:
        yield built


@pytest.fixture(scope="module")
async def jwks_url(service: Service) -> AsyncIterator[str]:
    """The service's HTTP routes on a real loopback socket, as `faststream run` serves them (the
    broker and resources are the fixture's: the server's lifespan is off)."""
    server = uvicorn.Server(uvicorn.Config(service.app, host="127.0.0.1", port=0, lifespan="off",
                                           log_level="warning"))
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return server.started

    await until(started, what="the HTTP server")
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/.well-known/jwks.json"
    server.should_exit = True
    await task


@pytest.fixture(scope="module")
async def revocations(provisioned: ConnectionSettings, clock: MovableClock) -> AsyncIterator[GrantRevocations]:
    """What a viewer knows of revocations: the events topic, followed from its start."""
    known = GrantRevocations(clock=clock)
    task = asyncio.create_task(known.follow(provisioned.kafka_bootstrap, topic_prefix=provisioned.topic_prefix))
    await asyncio.wait_for(known.caught_up.wait(), 20)
    yield known
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.fixture(scope="module")
async def verifier(jwks_url: str, revocations: GrantRevocations, clock: MovableClock) -> GrantVerifier:
    """A viewer's verifier: the keys fetched over HTTP with a real client, the revocations followed."""
    async with httpx.AsyncClient() as client:
        keys = await fetch_grant_keys(jwks_url, client=client)
    return GrantVerifier(keys, revocations=revocations, clock=clock)


@pytest.fixture
async def watch(provisioned: ConnectionSettings) -> AsyncIterator[TopicWatcher]:
    topics = (AUTHENTICATION_EVENTS, AUTHENTICATION_REPLIES)
    async with TopicWatcher(provisioned.kafka_bootstrap, *(provisioned.topic(t.name) for t in topics)) as watcher:
        yield watcher


# -- workflow's facts, as workflow publishes them --




def email(order: int) -> str:
    return f"grantee{order}@example.com"


GRANTEE_POLICY = wf.AuthenticationPolicy(methods=["access_code"], secret_hash=SECRET_HASH, retry_count=3,
                                         frequency="OncePerDocument")


def policy_updated(package_id: str, order: int, version: int, window: wf.AccessWindow | None = None,
                   kind: type = wf.RecipientAuthenticationUpdatedV2) -> Message:
    """Recipient ``order``'s access-code policy at ``version``, as workflow publishes it."""
    return signed_policy_updated(package_id, order, email(order), GRANTEE_POLICY, window, version, kind)


@dataclass
class Package:
    package_id: str
    versions: dict[int, int]
    """Each recipient's authentication version (what their invitation must carry)."""


async def shared_package(connections: ConnectionSettings, service: Service, *orders: int,
                         windows: dict[int, wf.AccessWindow] | None = None) -> Package:
    """A shared package whose recipients at ``orders`` open with the access code, projected."""
    package_id = f"pkg-{uuid.uuid4().hex[:10]}"
    windows = windows or {}
    summaries = [wf.RecipientSummary(order=o, name=f"R{o}", role="signer", email_masked="g***@example.com",
                                     email_digest=DIGESTS.email(email(o))) for o in orders]
    await publish(connections, WORKFLOW_EVENTS.name, package_id, wf.PackageRegistered(
        package_id=package_id, owner_id=str(uuid.uuid4()), name="Contract", workflow_type="parallel",
        documents=[wf.DocumentSummary(document_id="doc-1", name="contract.pdf")], recipients=summaries,
    ), *(policy_updated(package_id, o, 1, windows.get(o)) for o in orders),
        wf.WorkflowShared(package_id=package_id, workflow_type="parallel", shared_at=datetime.now(UTC)))
    pool = service.resources.pool
    await until(lambda: pool.fetchval(
        """SELECT count(*) = $2 FROM recipients r JOIN packages p USING (package_id)
           WHERE package_id = $1 AND authentication_version = 1 AND p.state = 'in_progress'""",
        package_id, len(orders)), what="the projection of the package")
    return Package(package_id, dict.fromkeys(orders, 1))


@dataclass
class Granted:
    token: str
    reply: dict
    authenticated: dict


async def open_document(connections: ConnectionSettings, watch: TopicWatcher, package: Package,
                        order: int, clock: MovableClock) -> Granted:
    """The recipient opens with their invitation and the access code; their grant and its event."""
    invitation = invitation_for(package.package_id, order, package.versions[order], now=clock())
    command = auth.OpenDocumentWithPassword(package_id=package.package_id, invitation=invitation,
                                            password=ACCESS_CODE)
    await publish(connections, AUTHENTICATION_COMMANDS.name, package.package_id, command)
    replies, events = connections.topic(AUTHENTICATION_REPLIES.name), connections.topic(AUTHENTICATION_EVENTS.name)
    [reply] = await watch.wait_for(lambda r: r.topic == replies and correlated(r, command.correlation_id))
    [event] = await watch.wait_for(lambda r: r.topic == events and correlated(r, command.correlation_id))
    granted = json.loads(reply.value)
    assert granted["type"] == "authentication.document_access_granted", granted
    return Granted(granted["grant"], granted, json.loads(event.value))


def revocations_of(watch: TopicWatcher, connections: ConnectionSettings, package_id: str) -> list[dict]:
    events = connections.topic(AUTHENTICATION_EVENTS.name)
    return [document for record in watch.records if record.topic == events
            for document in [json.loads(record.value)]
            if document["type"] == "authentication.document_access_revoked" and document["package_id"] == package_id]


async def revoked(watch: TopicWatcher, connections: ConnectionSettings, package_id: str, count: int = 1) -> list[dict]:
    events = connections.topic(AUTHENTICATION_EVENTS.name)
    await watch.wait_for(lambda r: r.topic == events and b"document_access_revoked" in r.value
                         and json.loads(r.value)["package_id"] == package_id, count=count)
    return revocations_of(watch, connections, package_id)


async def until_revoked_here(revocations: GrantRevocations, jti: str) -> None:
    async def known() -> bool:
        return jti in revocations

    await until(known, what=f"the viewer learning that {jti} is revoked")


async def settled(connections: ConnectionSettings, watch: TopicWatcher, package: Package, order: int) -> None:
    """Everything published before for the package has been handled: a reset published after it
    (same key, same partition, handled in order) has been answered."""
    package.versions[order] += 1
    marker = policy_updated(package.package_id, order, package.versions[order],
                            kind=wf.RecipientAuthenticationResetV2)
    await publish(connections, WORKFLOW_EVENTS.name, package.package_id, marker)
    events = connections.topic(AUTHENTICATION_EVENTS.name)
    await watch.wait_for(lambda r: r.topic == events and correlated(r, marker.correlation_id)
                         and b"recipient_authentication_cleared" in r.value)


# -- the tests --


async def test_a_grant_is_bounded_recorded_and_verifies_with_the_jwks_served_over_http(
    provisioned: ConnectionSettings, service: Service, watch: TopicWatcher, verifier: GrantVerifier,
    jwks_url: str, clock: MovableClock,
) -> None:
    """A grant carries aud, jti, a kid the served JWKS lists, and an exp no later than the grant
    lifetime (without a window, OncePerDocument) or the access window's end (when it closes first);
    it is recorded, and the viewer's verifier accepts it."""
    window_end = clock().replace(microsecond=0) + timedelta(minutes=7)
    package = await shared_package(provisioned, service, 1, 2, windows={
        2: wf.AccessWindow(starts_at=clock() - timedelta(hours=1), ends_at=window_end)})
    before = clock()
    first = await open_document(provisioned, watch, package, 1, clock)
    second = await open_document(provisioned, watch, package, 2, clock)

    async with httpx.AsyncClient() as client:
        served = await client.get(jwks_url)
    [key] = served.json()["keys"]
    assert served.status_code == 200 and served.headers["content-type"] == "application/jwk-set+json"
    assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
    header = jwt.get_unverified_header(first.token)
    claims = jwt.decode(first.token, options={"verify_signature": False})
    assert header["kid"] == key["kid"] and header["alg"] == "EdDSA"
    assert claims["aud"] == "signgate-viewer" and uuid.UUID(claims["jti"])
    assert claims["iat"] >= int(before.timestamp()) and claims["exp"] - claims["iat"] == LIFETIME.total_seconds()
    windowed = jwt.decode(second.token, options={"verify_signature": False})
    assert windowed["exp"] == int(window_end.timestamp())
    assert first.reply["grant_id"] == claims["jti"] and first.authenticated["access_until"] == first.reply["expires_at"]

    verified = verifier.verify(first.token, package_id=package.package_id, order=1)
    assert (verified.grant_id, verified.order, verified.key_id) == (claims["jti"], 1, key["kid"])
    assert verifier.verify(second.token, package_id=package.package_id).order == 2
    rows = await service.resources.pool.fetch(
        'SELECT jti, "order", expires_at, revoked_at FROM issued_grants WHERE package_id = $1 ORDER BY "order"',
        package.package_id)
    assert [(str(r["jti"]), r["order"], r["revoked_at"]) for r in rows] == [
        (claims["jti"], 1, None), (windowed["jti"], 2, None)]
    assert rows[1]["expires_at"] == window_end


REVOKING_FACTS = {
    "recipient_signed": lambda p, o, v: wf.RecipientSigned(package_id=p, order=o, signed_at=datetime.now(UTC)),
    "recipient_declined": lambda p, o, v: wf.RecipientDeclined(package_id=p, order=o, declined_at=datetime.now(UTC)),
    "authentication_changed": lambda p, o, v: policy_updated(p, o, v + 1),
    "authentication_reset": lambda p, o, v: policy_updated(p, o, v + 1, kind=wf.RecipientAuthenticationResetV2),
    "authentication_removed": lambda p, o, v: wf.RecipientAuthenticationRemoved(
        package_id=p, order=o, authentication_version=v + 1),
}


@pytest.mark.parametrize("reason", sorted(REVOKING_FACTS))
async def test_a_recipient_fact_revokes_their_grants_only_and_the_verifier_refuses_them(
    provisioned: ConnectionSettings, service: Service, watch: TopicWatcher, verifier: GrantVerifier,
    revocations: GrantRevocations, clock: MovableClock, reason: str,
) -> None:
    """Signing, declining, or a change, reset or removal of the authentication revokes each of the
    recipient's grants with one event (jti, package, order, reason; no grant text), and the viewer
    then refuses them; another recipient's grant stays valid."""
    package = await shared_package(provisioned, service, 1, 2)
    grants = [await open_document(provisioned, watch, package, 1, clock) for _ in range(2)]
    other = await open_document(provisioned, watch, package, 2, clock)
    jtis = {jwt.decode(g.token, options={"verify_signature": False})["jti"] for g in grants}

    await publish(provisioned, WORKFLOW_EVENTS.name, package.package_id,
                  REVOKING_FACTS[reason](package.package_id, 1, package.versions[1]))
    announced = await revoked(watch, provisioned, package.package_id, count=2)

    assert {r["jti"] for r in announced} == jtis and len(announced) == 2
    assert {(r["order"], r["reason"]) for r in announced} == {(1, reason)}
    assert all(set(r) >= {"jti", "package_id", "order", "reason", "occurred_at", "expires_at"} for r in announced)
    for granted in grants:
        assert granted.token not in json.dumps(announced)
    for jti in jtis:
        await until_revoked_here(revocations, jti)
    for granted in grants:
        with pytest.raises(GrantRevoked):
            verifier.verify(granted.token)
    assert verifier.verify(other.token).order == 2
    rows = await service.resources.pool.fetch(
        'SELECT "order", revocation_reason FROM issued_grants WHERE package_id = $1 AND revoked_at IS NOT NULL',
        package.package_id)
    assert sorted((r["order"], r["revocation_reason"]) for r in rows) == [(1, reason), (1, reason)]


async def test_termination_revokes_every_recipients_grants(
    provisioned: ConnectionSettings, service: Service, watch: TopicWatcher, verifier: GrantVerifier,
    revocations: GrantRevocations, clock: MovableClock,
) -> None:
    """Terminating the package revokes the grants of all its recipients, one event each."""
    package = await shared_package(provisioned, service, 1, 2, 3)
    grants = {order: await open_document(provisioned, watch, package, order, clock) for order in (1, 2, 3)}

    await publish(provisioned, WORKFLOW_EVENTS.name, package.package_id, wf.WorkflowTerminated(
        package_id=package.package_id, terminated_at=datetime.now(UTC), reason="withdrawn"))
    announced = await revoked(watch, provisioned, package.package_id, count=3)

    assert sorted((r["order"], r["reason"]) for r in announced) == [
        (1, "package_terminated"), (2, "package_terminated"), (3, "package_terminated")]
    for granted in grants.values():
        await until_revoked_here(revocations, granted.reply["grant_id"])
        with pytest.raises(GrantRevoked):
            verifier.verify(granted.token)


async def test_a_replayed_or_repeated_fact_revokes_each_grant_once(
    provisioned: ConnectionSettings, service: Service, watch: TopicWatcher, clock: MovableClock,
) -> None:
    """The same RecipientSigned delivered twice, and a second signing fact, announce the grant's
    revocation once; a grant issued after the revocation is revoked by the next fact only."""
    package = await shared_package(provisioned, service, 1)
    granted = await open_document(provisioned, watch, package, 1, clock)
    signed = wf.RecipientSigned(package_id=package.package_id, order=1, signed_at=datetime.now(UTC))

    await publish(provisioned, WORKFLOW_EVENTS.name, package.package_id, signed, signed,
                  signed.model_copy(update={"event_id": uuid.uuid4()}))
    await settled(provisioned, watch, package, 1)  # its reset revokes nothing left

    [announced] = revocations_of(watch, provisioned, package.package_id)
    assert (announced["jti"], announced["reason"]) == (granted.reply["grant_id"], "recipient_signed")
    later = await open_document(provisioned, watch, package, 1, clock)
    await publish(provisioned, WORKFLOW_EVENTS.name, package.package_id, signed)  # the replay again
    await settled(provisioned, watch, package, 1)
    assert [(r["jti"], r["reason"]) for r in revocations_of(watch, provisioned, package.package_id)] == [
        (granted.reply["grant_id"], "recipient_signed"), (later.reply["grant_id"], "authentication_reset")]


async def test_a_grant_long_expired_is_not_revoked(
    provisioned: ConnectionSettings, service: Service, watch: TopicWatcher, clock: MovableClock,
) -> None:
    """A grant past its exp (and the margin for verifiers' clock skew) is left alone: nothing to announce."""
    package = await shared_package(provisioned, service, 1)
    await open_document(provisioned, watch, package, 1, clock)
    clock.advance(LIFETIME + timedelta(minutes=10))
    try:
        await publish(provisioned, WORKFLOW_EVENTS.name, package.package_id,
                      wf.RecipientSigned(package_id=package.package_id, order=1, signed_at=datetime.now(UTC)))
        await settled(provisioned, watch, package, 1)
    finally:
        clock.reset()
    assert revocations_of(watch, provisioned, package.package_id) == []


async def test_no_grant_text_is_on_any_events_topic(
    provisioned: ConnectionSettings, service: Service, everything: TopicWatcher,
) -> None:
    """After every test above, no grant issued appears on any topic but the replies topic: not on an
    events topic, a command topic or a request topic."""
    replies = provisioned.topic(AUTHENTICATION_REPLIES.name)
    grants = [json.loads(r.value)["grant"] for r in everything.records
              if r.topic == replies and b"document_access_granted" in r.value]
    assert len(grants) >= 10
    elsewhere = [r for r in everything.records if r.topic != replies]
    events = {provisioned.topic(t.name) for t in TOPICS if t.kind is TopicKind.EVENTS}
    assert any(r.topic in events and b"document_access_revoked" in r.value for r in elsewhere)
    for record in elsewhere:
        value = record.value or b""
        assert not any(grant.encode() in value or grant.split(".")[2].encode() in value for grant in grants), record.topic
