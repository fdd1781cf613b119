"""The authentication service on the real stack, fed workflow's facts as workflow publishes them."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from libs.runtime.service import Service, build_service
from libs.runtime.settings import ConnectionSettings
from libs.security.otp_store import OtpRecipient, OtpStore, OtpStoreSettings
from libs.security.secrets import SecretHasher, SecretSettings, generate_pepper
from libs.security.tokens import TokenIssuer, TokenSettings, generate_key_pair
from services.authentication import repository
from services.authentication.app import DEFINITION, AuthenticationSettings
from services.authentication.grants import GrantSettings
from signgate_client import GrantVerifier
from signgate_contracts import Command, Message, Topic, encode
from signgate_contracts import authentication as auth
from signgate_contracts import workflow as wf
from signgate_contracts.topics import (
    AUTHENTICATION_COMMANDS,
    AUTHENTICATION_EVENTS,
    AUTHENTICATION_REPLIES,
    WORKFLOW_EVENTS,
)
from tests.support.kafka import TopicWatcher, correlated, producer
from tests.support.signing import invitation_for, policy_updated, session_digests
from tests.support.signing import publish_as_writer as publish
from tests.support.waiting import until

PEPPER = generate_pepper()
KEYS = generate_key_pair()
OWNER = str(uuid.uuid4())


class Clock:
    """Real time, moved by ``offset`` when a test travels."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
async def service(provisioned: ConnectionSettings, clock: Clock) -> AsyncIterator[Service]:
    settings = AuthenticationSettings(
        connections=provisioned, retry_first_delay=0.01, clock=clock,
        secrets=SecretSettings(pepper=PEPPER), tokens=TokenSettings(public_key=KEYS.public_key),
        otp_store=OtpStoreSettings(pepper=PEPPER), grants=GrantSettings(),
    )
    built = build_service(DEFINITION, settings)
    async with built.app:
        yield built


@pytest.fixture
async def watch(provisioned: ConnectionSettings) -> AsyncIterator[TopicWatcher]:
    topics = (AUTHENTICATION_EVENTS, AUTHENTICATION_REPLIES)
    async with TopicWatcher(provisioned.kafka_bootstrap, *(provisioned.topic(t.name) for t in topics)) as watcher:
        yield watcher




HASHER = SecretHasher(PEPPER.encode())


def policy(methods: list[str], *, secret: str | None = None, retry_count: int = 3,
           frequency: str = "OncePerDocument", phone: str | None = None) -> wf.AuthenticationPolicy:
    destination = wf.Destination(channel="sms", address=phone, masked="+44******0123") if phone else None
    return wf.AuthenticationPolicy(
        methods=methods, secret_hash=HASHER.hash_now(secret) if secret else None, destination=destination,
        retry_count=retry_count, frequency=frequency,
    )


async def package_with(connections: ConnectionSettings, service: Service, *recipients: tuple[int, wf.AuthenticationPolicy | None, wf.AccessWindow | None]) -> str:
    """A package whose recipients have these policies, projected into the service."""
    package_id = f"pkg-{uuid.uuid4().hex[:8]}"
    summaries = [
        wf.RecipientSummary(order=order, name=f"R{order}", role="signer", email_masked="r***@example.com",
                            email_digest=session_digests().email(f"r{order}@example.com"))
        for order, _, _ in recipients
    ]
    facts: list[Message] = [wf.PackageRegistered(
        package_id=package_id, owner_id=OWNER, name="Contract", workflow_type="sequential", state="draft",
        documents=[wf.DocumentSummary(document_id="doc-1", name="contract.pdf")], recipients=summaries,
    )]
    for order, rule, window in recipients:
        facts.append(policy_updated(package_id, order, f"r{order}@example.com", rule, window))
    facts.append(wf.WorkflowShared(package_id=package_id, workflow_type="sequential", shared_at=datetime.now(UTC)))
    await publish(connections, WORKFLOW_EVENTS.name, package_id, *facts)
    pool = service.resources.pool
    assert pool is not None
    await until(lambda: pool.fetchval("SELECT count(*) = $2 FROM recipients WHERE package_id = $1 AND methods <> '{}'"
                                      " AND EXISTS (SELECT 1 FROM packages WHERE package_id = $1 AND state = 'in_progress')",
                                      package_id, sum(1 for _, rule, _ in recipients if rule)),
                what="the projection of the package")
    return package_id


async def two_method_recipient(provisioned: ConnectionSettings, service: Service, clock: Clock) -> str:
    """A package whose recipient 1 must pass the password ``right`` and an SMS OTP, with the code
    ``123456`` pending (issued as otp-dispatch would)."""
    phone = "+447700900123"
    package_id = await package_with(provisioned, service, (1, policy(["password", "sms_otp"], secret="right",
                                                                     phone=phone), None))
    store = OtpStore(service.resources.redis, prefix=provisioned.redis_prefix, pepper=PEPPER)
    await store.issue(uuid.uuid4(), OtpRecipient.document_opening(package_id, 1), challenge_id=uuid.uuid4(),
                      code="123456", channel="sms", destination=phone, ttl=timedelta(minutes=5), now=clock())
    return package_id


async def command(connections: ConnectionSettings, watch: TopicWatcher, message: Command,
                  topic: Topic = AUTHENTICATION_EVENTS) -> dict:
    """Send a command and return its outcome: the record with its correlation id on ``topic``."""
    await publish(connections, AUTHENTICATION_COMMANDS.name, getattr(message, "package_id", "k"), message)
    [record, *_] = await watch.wait_for(
        lambda r: r.topic == connections.topic(topic.name) and correlated(r, message.correlation_id)
    )
    return json.loads(record.value)


async def test_right_access_code_opens_and_grants_access_to_the_reply_topic_only(
    provisioned: ConnectionSettings, service: Service, watch: TopicWatcher
) -> None:
    """The right access code yields RecipientAuthenticated on the events topic and a signed grant on
    the replies topic only."""
    package_id = await package_with(provisioned, service, (1, policy(["access_code"], secret="S3cret-code"), None))
    opening = auth.OpenDocumentWithPassword(package_id=package_id, order=1, invitation=invitation_for(package_id, 1), password="S3cret-code")

    outcome = await command(provisioned, watch, opening)
    [granted] = await watch.wait_for(lambda r: r.topic.endswith(AUTHENTICATION_REPLIES.name)
                                     and b"document_access_granted" in r.value)

    assert outcome["type"] == "authentication.recipient_authenticated" and outcome["method"] == "access_code"
    signer = service.resources.dependencies.grants
    grant = GrantVerifier.from_jwks(signer.jwks()).verify(json.loads(granted.value)["grant"], package_id=package_id, order=1)
    assert (grant.package_id, grant.order) == (package_id, 1)
    events = [r for r in watch.records if r.topic.endswith(AUTHENTICATION_EVENTS.name)]
    assert all(b"grant" not in r.value and b"S3cret-code" not in r.value for r in events)


async def test_wrong_codes_count_down_then_lock_and_the_right_code_is_refused(
    provisioned: ConnectionSettings, service: Service, watch: TopicWatcher
) -> None:
    """Each wrong access code says how many attempts remain; the third locks; then even the right code
    is refused with 403."""
    package_id = await package_with(provisioned, service, (1, policy(["access_code"], secret="right"), None))
    outcomes = [
        await command(provisioned, watch, auth.OpenDocumentWithPassword(package_id=package_id, order=1, invitation=invitation_for(package_id, 1), password="wrong"))
        for _ in range(3)
    ]
    after = await command(provisioned, watch, auth.OpenDocumentWithPassword(package_id=package_id, order=1, invitation=invitation_for(package_id, 1), password="right"))

    assert [(o["type"], o.get("attempts_remaining")) for o in outcomes] == [
        ("authentication.recipient_authentication_failed", 2),
        ("authentication.recipient_authentication_failed", 1),
        ("authentication.recipient_locked_out", None),
    ]
    assert (after["type"], after["status"], after["code"]) == ("command.rejected", 403, "recipient_locked")


async def test_wrong_passwords_and_wrong_codes_spend_one_retry_count(
    provisioned: ConnectionSettings, service: Service, watch: TopicWatcher, clock: Clock
) -> None:
    """A recipient who must pass both a password and an SMS OTP is locked by the third wrong attempt
    of either kind (retry count 3), not after two of each, and the right code is then refused."""
    package_id = await two_method_recipient(provisioned, service, clock)
    wrong_password = auth.OpenDocumentWithPassword(package_id=package_id, order=1, invitation=invitation_for(package_id, 1), password="wrong")
    outcomes = [
        await command(provisioned, watch, wrong_password),
        await command(provisioned, watch, auth.VerifyDocumentOtp(package_id=package_id, order=1, invitation=invitation_for(package_id, 1), code="000000")),
        await command(provisioned, watch, wrong_password.model_copy(update={"event_id": uuid.uuid4(),
                                                                            "correlation_id": uuid.uuid4()})),
    ]
    after = await command(provisioned, watch, auth.VerifyDocumentOtp(package_id=package_id, order=1, invitation=invitation_for(package_id, 1), code="123456"))

    assert [(o["type"], o.get("attempts_used", o.get("failures")), o.get("attempts_remaining")) for o in outcomes] == [
        ("authentication.recipient_authentication_failed", 1, 2),
        ("authentication.recipient_authentication_failed", 2, 1),
        ("authentication.recipient_locked_out", 3, None),
    ]
    assert (after["type"], after["status"], after["code"]) == ("command.rejected", 403, "recipient_locked")


async def test_an_otp_passed_before_the_password_still_counts_towards_the_grant(
    provisioned: ConnectionSettings, service: Service, watch: TopicWatcher, clock: Clock
) -> None:
    """A recipient who must pass both a password and an SMS OTP is granted access when the right code
    comes first and the right password second (the password's success does not forget the code's)."""
    package_id = await two_method_recipient(provisioned, service, clock)
    by_code = await command(provisioned, watch, auth.VerifyDocumentOtp(package_id=package_id, order=1, invitation=invitation_for(package_id, 1), code="123456"))
    opening = auth.OpenDocumentWithPassword(package_id=package_id, order=1, invitation=invitation_for(package_id, 1), password="right")
    by_password = await command(provisioned, watch, opening)
    [granted] = await watch.wait_for(lambda r: r.topic == provisioned.topic(AUTHENTICATION_REPLIES.name)
                                     and correlated(r, opening.correlation_id))

    assert [(o["type"], o["method"]) for o in (by_code, by_password)] == [
        ("authentication.recipient_authenticated", "sms_otp"), ("authentication.recipient_authenticated", "password"),
    ]
    assert json.loads(granted.value)["type"] == "authentication.document_access_granted"


async def test_lockout_survives_a_redis_flush(
    provisioned: ConnectionSettings, service: Service, watch: TopicWatcher
) -> None:
    """A locked recipient stays locked when Redis forgets everything: the lock is in Postgres."""
    package_id = await package_with(provisioned, service, (1, policy(["access_code"], secret="right", retry_count=1), None))
    locked = await command(provisioned, watch, auth.OpenDocumentWithPassword(package_id=package_id, order=1, invitation=invitation_for(package_id, 1), password="x"))
    redis = service.resources.redis
    assert redis is not None
    await redis.flushdb()

    after = await command(provisioned, watch, auth.OpenDocumentWithPassword(package_id=package_id, order=1, invitation=invitation_for(package_id, 1), password="right"))

    assert locked["type"] == "authentication.recipient_locked_out"
    assert (after["status"], after["code"]) == (403, "recipient_locked")


async def test_reset_unlocks_one_recipient_and_leaves_the_other_alone(
    provisioned: ConnectionSettings, service: Service, watch: TopicWatcher
) -> None:
    """The sender's reset clears recipient 2's lock and failures; recipient 1's failures stay."""
    package_id = await package_with(
        provisioned, service,
        (1, policy(["access_code"], secret="one"), None), (2, policy(["access_code"], secret="two", retry_count=1), None),
    )
    first = await command(provisioned, watch, auth.OpenDocumentWithPassword(package_id=package_id, order=1, invitation=invitation_for(package_id, 1), password="bad"))
    await command(provisioned, watch, auth.OpenDocumentWithPassword(package_id=package_id, order=2, invitation=invitation_for(package_id, 2), password="bad"))
    reset = policy_updated(package_id, 2, "r2@example.com", policy(["access_code"], secret="two", retry_count=1),
                           version=2, kind=wf.RecipientAuthenticationResetV2)
    await publish(provisioned, WORKFLOW_EVENTS.name, package_id, reset)
    cleared = await watch.outcome(reset.correlation_id)

    stale = await command(provisioned, watch, auth.OpenDocumentWithPassword(package_id=package_id, order=2, invitation=invitation_for(package_id, 2), password="two"))
    opened = await command(provisioned, watch, auth.OpenDocumentWithPassword(package_id=package_id, order=2, invitation=invitation_for(package_id, 2, version=2), password="two"))
    one_more = await command(provisioned, watch, auth.OpenDocumentWithPassword(package_id=package_id, order=1, invitation=invitation_for(package_id, 1), password="bad"))

    assert first["attempts_remaining"] == 2
    assert (cleared["type"], cleared["was_locked"]) == ("authentication.recipient_authentication_cleared", True)
    assert (stale["status"], stale["code"]) == (401, "invitation_not_valid")  # the reset raised the version
    assert opened["type"] == "authentication.recipient_authenticated"
    assert one_more["attempts_remaining"] == 1  # recipient 1's earlier failure still counts


async def test_access_window_refuses_before_and_after(
    provisioned: ConnectionSettings, service: Service, watch: TopicWatcher, clock: Clock
) -> None:
    """Before the start the answer is 403 with a clear message; after the end, the seed's text."""
    start, end = clock() + timedelta(hours=1), clock() + timedelta(hours=2)
    package_id = await package_with(
        provisioned, service,
        (1, policy(["access_code"], secret="c"), wf.AccessWindow(starts_at=start, ends_at=end)),
    )
    early = await command(provisioned, watch, auth.OpenDocumentWithPassword(package_id=package_id, order=1, invitation=invitation_for(package_id, 1), password="c"))
    clock.offset = timedelta(hours=2, seconds=1)
    try:
        late = await command(provisioned, watch, auth.OpenDocumentWithPassword(package_id=package_id, order=1, invitation=invitation_for(package_id, 1), password="c"))
    finally:
        clock.offset = timedelta(0)

    assert (early["status"], early["code"]) == (403, "access_period_not_started")
    assert (late["status"], late["message"]) == (403, "You cannot access this document after the access period ends")


async def test_status_query_reports_attempts_and_lock_without_secrets(
    provisioned: ConnectionSettings, service: Service, watch: TopicWatcher
) -> None:
    """The status query answers attempts used and left, the lock and the last failure, to reply_to."""
    package_id = await package_with(provisioned, service, (1, policy(["access_code"], secret="c"), None))
    await command(provisioned, watch, auth.OpenDocumentWithPassword(package_id=package_id, order=1, invitation=invitation_for(package_id, 1), password="x"))
    query = auth.GetRecipientAuthenticationStatus(package_id=package_id, order=1, invitation=invitation_for(package_id, 1))

    status = await command(provisioned, watch, query, topic=AUTHENTICATION_REPLIES)

    assert (status["attempts_used"], status["attempts_remaining"], status["locked"]) == (1, 2, False)
    assert status["last_failure_reason"] == "wrong_secret"


async def test_signer_otp_refusals_follow_the_seed(
    provisioned: ConnectionSettings, service: Service, watch: TopicWatcher
) -> None:
    """Signer OTP: no token 401, unknown document 404 "Document not found", a stranger 403 "Document does
    not belong to user"."""
    package_id = await package_with(provisioned, service, (1, policy(["access_code"], secret="c"), None))
    issuer = TokenIssuer(KEYS.private_key)
    stranger = issuer.issue(str(uuid.uuid4()), "stranger@example.com").token

    no_token = await command(provisioned, watch, auth.RequestSigningOtp(package_id=package_id, document_id="doc-1", field_name="f"))
    missing = await command(provisioned, watch, auth.RequestSigningOtp(
        package_id=package_id, document_id="doc-9", field_name="f", access_token=stranger))
    foreign = await command(provisioned, watch, auth.RequestSigningOtp(
        package_id=package_id, document_id="doc-1", field_name="f", access_token=stranger))
    no_mobile = await command(provisioned, watch, auth.RequestSigningOtp(
        package_id=package_id, document_id="doc-1", field_name="f", access_token=issuer.issue(OWNER, "owner").token))

    assert (no_token["status"], no_token["message"]) == (401, "User authentication required")
    assert (missing["status"], missing["message"]) == (404, "Document not found")
    assert (foreign["status"], foreign["message"]) == (403, "Document does not belong to user")
    assert (no_mobile["status"], no_mobile["code"]) == (400, "mobile_number_missing")


async def test_only_one_attempt_takes_the_lock(provisioned: ConnectionSettings, service: Service) -> None:
    """Of two attempts that both reach the retry count at once (two consumers during a rebalance),
    only the first records the lock; the second learns the recipient is locked already."""
    package_id = await package_with(provisioned, service, (1, policy(["access_code"], secret="right"), None))
    pool = service.resources.pool
    assert pool is not None
    now = datetime.now(UTC)

    async with pool.acquire() as connection:
        first = await repository.update_recipient_locked(connection, package_id, 1, now, 3)
        second = await repository.update_recipient_locked(connection, package_id, 1, now, 3)

    assert (first, second) == (True, False)


async def test_attempts_sent_together_see_each_others_writes(
    provisioned: ConnectionSettings, service: Service, watch: TopicWatcher
) -> None:
    """Wrong access codes and then the right one, sent at once (so handled in one batch, where the
    recipient was read ahead for all of them): the third locks, and the right code after it is
    refused, not granted on the recipient as it was read before the lock."""
    package_id = await package_with(provisioned, service, (1, policy(["access_code"], secret="right"), None))
    attempts = [auth.OpenDocumentWithPassword(package_id=package_id, order=1, invitation=invitation_for(package_id, 1), password=p)
                for p in ("wrong", "wrong", "wrong", "right")]
    async with producer(provisioned.kafka_bootstrap) as client:
        sent = [await client.send(provisioned.topic(AUTHENTICATION_COMMANDS.name), encode(a), key=package_id.encode())
                for a in attempts]
        await asyncio.gather(*sent)

    outcomes = [json.loads(r.value) for r in await watch.wait_for(
        lambda r: r.topic.endswith(AUTHENTICATION_EVENTS.name) and r.key == package_id.encode(), count=4)]

    assert [(o["type"], o.get("code")) for o in outcomes] == [
        ("authentication.recipient_authentication_failed", None),
        ("authentication.recipient_authentication_failed", None),
        ("authentication.recipient_locked_out", None),
        ("command.rejected", "recipient_locked"),
    ]


async def test_a_locked_workflow_does_not_stop_a_recipient_from_opening(
    provisioned: ConnectionSettings, service: Service, watch: TopicWatcher
) -> None:
    """The workflow's lock stops the owner's changes, not the recipients: the right access code still
    opens a package whose workflow the owner locked."""
    package_id = await package_with(provisioned, service, (1, policy(["access_code"], secret="right"), None))
    await publish(provisioned, WORKFLOW_EVENTS.name, package_id, wf.WorkflowLocked(package_id=package_id))

    opened = await command(provisioned, watch, auth.OpenDocumentWithPassword(
        package_id=package_id, order=1, invitation=invitation_for(package_id, 1), password="right"))

    assert opened["type"] == "authentication.recipient_authenticated"
