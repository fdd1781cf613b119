"""Revoked grants reaching a viewer on the real stack: the authentication service alone, fed workflow's
facts as workflow publishes them (signed, policies sealed), recipients proving themselves with
invitations, grants checked by `signgate_client`'s verifier with the JWKS the running service serves
over a real socket and the revocations `GrantRevocations.follow` reads from the events topic.

The grant rules themselves (bounds, what revokes which grants, replays, no grant text off the
replies topic) are in tests/component/test_grants.py; this is what only a broker can show."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
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
    WORKFLOW_EVENTS,
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
async def service(provisioned: ConnectionSettings, clock: MovableClock) -> AsyncIterator[Service]:
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


async def revoked(watch: TopicWatcher, connections: ConnectionSettings, package_id: str, count: int = 1) -> list[dict]:
    events = connections.topic(AUTHENTICATION_EVENTS.name)
    found = await watch.wait_for(lambda r: r.topic == events and b"document_access_revoked" in r.value
                                 and json.loads(r.value)["package_id"] == package_id, count=count)
    return [json.loads(record.value) for record in found]


async def until_revoked_here(revocations: GrantRevocations, jti: str) -> None:
    async def known() -> bool:
        return jti in revocations

    await until(known, what=f"the viewer learning that {jti} is revoked")


# -- the tests --


async def test_a_viewer_following_the_events_topic_refuses_the_grants_a_termination_revoked(
    provisioned: ConnectionSettings, service: Service, watch: TopicWatcher, verifier: GrantVerifier,
    revocations: GrantRevocations, clock: MovableClock,
) -> None:
    """Terminating the package revokes the grants of all its recipients, one event each on the events
    topic, and a viewer holding the keys fetched over HTTP from the running service and following that
    topic from its start learns of each and then refuses the grant."""
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
