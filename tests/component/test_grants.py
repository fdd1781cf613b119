"""Bounded, revocable grants on real Postgres and Redis, without a broker: the authentication service
alone, fed workflow's facts as workflow publishes them (signed, policies sealed), recipients proving
themselves with invitations, grants checked by `signgate_client`'s verifier with the JWKS the
service's HTTP routes serve, and told of revocations by the events the service publishes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest

from libs.security.tokens import generate_key_pair
from services.authentication.app import DEFINITION
from services.authentication.grants import GrantSettings
from signgate_client import GrantRevocations, GrantRevoked, GrantVerifier, fetch_grant_keys
from signgate_contracts import Message
from signgate_contracts import authentication as auth
from signgate_contracts import workflow as wf
from signgate_contracts.topics import (
    AUTHENTICATION_EVENTS,
    AUTHENTICATION_REPLIES,
    TOPICS,
    TopicKind,
)
from tests.support.clock import MovableClock
from tests.support.component import ComponentService, ComponentStack, Published, on, outcome
from tests.support.signing import invitation_for, session_digests
from tests.support.signing import policy_updated as signed_policy_updated

ACCESS_CODE = "Grant-code-42"
LIFETIME = timedelta(minutes=20)
DIGESTS = session_digests()
GRANT_KEY = generate_key_pair()
JWKS_URL = "http://authentication/.well-known/jwks.json"


@pytest.fixture(scope="module")
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture(scope="module")
async def service(stack: ComponentStack, clock: MovableClock) -> AsyncIterator[ComponentService]:
    async with stack.service(DEFINITION, clock=clock,
                             grants=GrantSettings(private_key=GRANT_KEY.private_key, lifetime=LIFETIME)) as built:
        yield built


@pytest.fixture(scope="module")
async def http(service: ComponentService) -> AsyncIterator[httpx.AsyncClient]:
    """A real HTTP client on the service's routes (the app's ASGI interface, no socket)."""
    transport = httpx.ASGITransport(app=service.service.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://authentication") as client:
        yield client


@pytest.fixture(scope="module")
def revocations(clock: MovableClock) -> GrantRevocations:
    """What a viewer knows of revocations: fed the authentication events topic (`learn`)."""
    return GrantRevocations(clock=clock)


@pytest.fixture(scope="module")
async def verifier(http: httpx.AsyncClient, revocations: GrantRevocations, clock: MovableClock) -> GrantVerifier:
    """A viewer's verifier: the keys fetched from the service's JWKS route, the revocations fed."""
    keys = await fetch_grant_keys(JWKS_URL, client=http)
    return GrantVerifier(keys, revocations=revocations, clock=clock)


# -- workflow's facts, as workflow publishes them --


def email(order: int) -> str:
    return f"grantee{order}@example.com"


def grantee_policy(stack: ComponentStack) -> wf.AuthenticationPolicy:
    return wf.AuthenticationPolicy(methods=["access_code"], secret_hash=stack.hasher.hash_now(ACCESS_CODE),
                                   retry_count=3, frequency="OncePerDocument")


@dataclass
class Package:
    package_id: str
    versions: dict[int, int]
    """Each recipient's authentication version (what their invitation must carry)."""
    policy: wf.AuthenticationPolicy

    def policy_updated(self, order: int, version: int, window: wf.AccessWindow | None = None,
                       kind: type = wf.RecipientAuthenticationUpdatedV2) -> Message:
        """Recipient ``order``'s access-code policy at ``version``, as workflow publishes it."""
        return signed_policy_updated(self.package_id, order, email(order), self.policy, window, version, kind)


async def shared_package(stack: ComponentStack, service: ComponentService, *orders: int,
                         windows: dict[int, wf.AccessWindow] | None = None) -> Package:
    """A shared package whose recipients at ``orders`` open with the access code, projected."""
    package = Package(f"pkg-{uuid.uuid4().hex[:10]}", dict.fromkeys(orders, 1), grantee_policy(stack))
    windows = windows or {}
    summaries = [wf.RecipientSummary(order=o, name=f"R{o}", role="signer", email_masked="g***@example.com",
                                     email_digest=DIGESTS.email(email(o))) for o in orders]
    facts: list[Message] = [wf.PackageRegistered(
        package_id=package.package_id, owner_id=str(uuid.uuid4()), name="Contract", workflow_type="parallel",
        documents=[wf.DocumentSummary(document_id="doc-1", name="contract.pdf")], recipients=summaries,
    ), *(package.policy_updated(o, 1, windows.get(o)) for o in orders),
        wf.WorkflowShared(package_id=package.package_id, workflow_type="parallel", shared_at=datetime.now(UTC))]
    for fact in facts:
        await service.handle(fact)
    projected = await service.pool.fetchval(
        """SELECT count(*) = $2 FROM recipients r JOIN packages p USING (package_id)
           WHERE package_id = $1 AND authentication_version = 1 AND p.state = 'in_progress'""",
        package.package_id, len(orders))
    assert projected, "the projection of the package"
    return package


@dataclass
class Granted:
    token: str
    reply: Published
    authenticated: Published


async def open_document(service: ComponentService, package: Package, order: int, clock: MovableClock) -> Granted:
    """The recipient opens with their invitation and the access code; their grant and its event."""
    invitation = invitation_for(package.package_id, order, package.versions[order], now=clock())
    command = auth.OpenDocumentWithPassword(package_id=package.package_id, invitation=invitation,
                                            password=ACCESS_CODE)
    published = await service.handle(command)
    reply, event = outcome(published, AUTHENTICATION_REPLIES), outcome(published, AUTHENTICATION_EVENTS)
    assert reply.caused_by(command) and event.caused_by(command)
    assert reply.type == "authentication.document_access_granted", reply.document
    return Granted(reply["grant"], reply, event)


def revocations_of(service: ComponentService, package_id: str) -> list[dict]:
    """Every revocation of ``package_id``'s grants the service has published, in order."""
    return [record.document for record in on(service.recorder.records, AUTHENTICATION_EVENTS)
            if record.type == "authentication.document_access_revoked" and record["package_id"] == package_id]


def learn(revocations: GrantRevocations, service: ComponentService) -> None:
    """The viewer reads the authentication events topic from its start, as `GrantRevocations.follow` does."""
    for record in on(service.recorder.records, AUTHENTICATION_EVENTS):
        revocations.feed(record.value)


async def settled(service: ComponentService, package: Package, order: int) -> None:
    """The owner resets recipient ``order``'s authentication (raising their version); it is answered."""
    package.versions[order] += 1
    marker = package.policy_updated(order, package.versions[order], kind=wf.RecipientAuthenticationResetV2)
    published = await service.handle(marker)
    assert any(e.caused_by(marker) and e.type == "authentication.recipient_authentication_cleared"
               for e in on(published, AUTHENTICATION_EVENTS))


# -- the tests --


async def test_a_grant_is_bounded_recorded_and_verifies_with_the_jwks_served_over_http(
    stack: ComponentStack, service: ComponentService, http: httpx.AsyncClient, verifier: GrantVerifier,
    clock: MovableClock,
) -> None:
    """A grant carries aud, jti, a kid the served JWKS lists, and an exp no later than the grant
    lifetime (without a window, OncePerDocument) or the access window's end (when it closes first);
    it is recorded, and the viewer's verifier accepts it."""
    window_end = clock().replace(microsecond=0) + timedelta(minutes=7)
    package = await shared_package(stack, service, 1, 2, windows={
        2: wf.AccessWindow(starts_at=clock() - timedelta(hours=1), ends_at=window_end)})
    before = clock()
    first = await open_document(service, package, 1, clock)
    second = await open_document(service, package, 2, clock)

    served = await http.get(JWKS_URL)
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
    rows = await service.pool.fetch(
        'SELECT jti, "order", expires_at, revoked_at FROM issued_grants WHERE package_id = $1 ORDER BY "order"',
        package.package_id)
    assert [(str(r["jti"]), r["order"], r["revoked_at"]) for r in rows] == [
        (claims["jti"], 1, None), (windowed["jti"], 2, None)]
    assert rows[1]["expires_at"] == window_end


REVOKING_FACTS = {
    "recipient_signed": lambda pkg, o: wf.RecipientSigned(package_id=pkg.package_id, order=o,
                                                          signed_at=datetime.now(UTC)),
    "recipient_declined": lambda pkg, o: wf.RecipientDeclined(package_id=pkg.package_id, order=o,
                                                              declined_at=datetime.now(UTC)),
    "authentication_changed": lambda pkg, o: pkg.policy_updated(o, pkg.versions[o] + 1),
    "authentication_reset": lambda pkg, o: pkg.policy_updated(o, pkg.versions[o] + 1,
                                                              kind=wf.RecipientAuthenticationResetV2),
    "authentication_removed": lambda pkg, o: wf.RecipientAuthenticationRemoved(
        package_id=pkg.package_id, order=o, authentication_version=pkg.versions[o] + 1),
}


@pytest.mark.parametrize("reason", sorted(REVOKING_FACTS))
async def test_a_recipient_fact_revokes_their_grants_only_and_the_verifier_refuses_them(
    stack: ComponentStack, service: ComponentService, verifier: GrantVerifier,
    revocations: GrantRevocations, clock: MovableClock, reason: str,
) -> None:
    """Signing, declining, or a change, reset or removal of the authentication revokes each of the
    recipient's grants with one event (jti, package, order, reason; no grant text), and the viewer
    then refuses them; another recipient's grant stays valid."""
    package = await shared_package(stack, service, 1, 2)
    grants = [await open_document(service, package, 1, clock) for _ in range(2)]
    other = await open_document(service, package, 2, clock)
    jtis = {jwt.decode(g.token, options={"verify_signature": False})["jti"] for g in grants}

    published = await service.handle(REVOKING_FACTS[reason](package, 1))
    announced = [r.document for r in on(published, AUTHENTICATION_EVENTS)
                 if r.type == "authentication.document_access_revoked"]

    assert {r["jti"] for r in announced} == jtis and len(announced) == 2
    assert revocations_of(service, package.package_id) == announced
    assert {(r["order"], r["reason"]) for r in announced} == {(1, reason)}
    assert all(set(r) >= {"jti", "package_id", "order", "reason", "occurred_at", "expires_at"} for r in announced)
    for granted in grants:
        assert all(granted.token.encode() not in r.value for r in published)
    learn(revocations, service)
    assert all(jti in revocations for jti in jtis)
    for granted in grants:
        with pytest.raises(GrantRevoked):
            verifier.verify(granted.token)
    assert verifier.verify(other.token).order == 2
    rows = await service.pool.fetch(
        'SELECT "order", revocation_reason FROM issued_grants WHERE package_id = $1 AND revoked_at IS NOT NULL',
        package.package_id)
    assert sorted((r["order"], r["revocation_reason"]) for r in rows) == [(1, reason), (1, reason)]


async def test_termination_revokes_every_recipients_grants(
    stack: ComponentStack, service: ComponentService, verifier: GrantVerifier,
    revocations: GrantRevocations, clock: MovableClock,
) -> None:
    """Terminating the package revokes the grants of all its recipients, one event each."""
    package = await shared_package(stack, service, 1, 2, 3)
    grants = {order: await open_document(service, package, order, clock) for order in (1, 2, 3)}

    await service.handle(wf.WorkflowTerminated(
        package_id=package.package_id, terminated_at=datetime.now(UTC), reason="withdrawn"))
    announced = revocations_of(service, package.package_id)

    assert sorted((r["order"], r["reason"]) for r in announced) == [
        (1, "package_terminated"), (2, "package_terminated"), (3, "package_terminated")]
    assert sorted(r["jti"] for r in announced) == sorted(g.reply["grant_id"] for g in grants.values())
    learn(revocations, service)
    for granted in grants.values():
        assert granted.reply["grant_id"] in revocations
        with pytest.raises(GrantRevoked):
            verifier.verify(granted.token)


async def test_a_replayed_or_repeated_fact_revokes_each_grant_once(
    stack: ComponentStack, service: ComponentService, clock: MovableClock,
) -> None:
    """The same RecipientSigned delivered twice, and a second signing fact, announce the grant's
    revocation once; a grant issued after the revocation is revoked by the next fact only."""
    package = await shared_package(stack, service, 1)
    granted = await open_document(service, package, 1, clock)
    signed = wf.RecipientSigned(package_id=package.package_id, order=1, signed_at=datetime.now(UTC))

    await service.handle_together(signed, signed, signed.model_copy(update={"event_id": uuid.uuid4()}))
    await settled(service, package, 1)  # its reset revokes nothing left

    [announced] = revocations_of(service, package.package_id)
    assert (announced["jti"], announced["reason"]) == (granted.reply["grant_id"], "recipient_signed")
    later = await open_document(service, package, 1, clock)
    await service.handle(signed)  # the replay again, in a batch of its own
    await settled(service, package, 1)
    assert [(r["jti"], r["reason"]) for r in revocations_of(service, package.package_id)] == [
        (granted.reply["grant_id"], "recipient_signed"), (later.reply["grant_id"], "authentication_reset")]


async def test_a_grant_long_expired_is_not_revoked(
    stack: ComponentStack, service: ComponentService, clock: MovableClock,
) -> None:
    """A grant past its exp (and the margin for verifiers' clock skew) is left alone: nothing to announce."""
    package = await shared_package(stack, service, 1)
    await open_document(service, package, 1, clock)
    clock.advance(LIFETIME + timedelta(minutes=10))
    try:
        await service.handle(wf.RecipientSigned(package_id=package.package_id, order=1, signed_at=datetime.now(UTC)))
        await settled(service, package, 1)
    finally:
        clock.reset()
    assert revocations_of(service, package.package_id) == []


async def test_no_grant_text_is_on_any_events_topic(service: ComponentService) -> None:
    """After every test above, no grant issued appears on any topic but the replies topic: not on an
    events topic, a command topic or a request topic."""
    records = service.recorder.records
    grants = [r["grant"] for r in on(records, AUTHENTICATION_REPLIES) if r.type == "authentication.document_access_granted"]
    assert len(grants) >= 10
    elsewhere = [r for r in records if r.topic != AUTHENTICATION_REPLIES.name]
    events = {t.name for t in TOPICS if t.kind is TopicKind.EVENTS}
    assert any(r.topic in events and b"document_access_revoked" in r.value for r in elsewhere)
    for record in elsewhere:
        value = record.value or b""
        assert not any(grant.encode() in value or grant.split(".")[2].encode() in value for grant in grants), record.topic
