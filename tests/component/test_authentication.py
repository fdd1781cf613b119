"""The authentication service's rules on real Postgres and Redis, fed workflow's facts as workflow
publishes them (signed), its outcomes read from what it publishes: no broker."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from libs.security.otp_store import OtpRecipient, OtpStore
from libs.security.tokens import TokenIssuer
from services.authentication import repository
from services.authentication.app import DEFINITION
from signgate_client import GrantVerifier
from signgate_contracts import Message
from signgate_contracts import authentication as auth
from signgate_contracts import workflow as wf
from signgate_contracts.topics import AUTHENTICATION_EVENTS, AUTHENTICATION_REPLIES, OTP_REQUESTS
from tests.support.clock import MovableClock
from tests.support.component import (
    ON_SERVER_AND_CLUSTER,
    ComponentService,
    ComponentStack,
    on,
    outcome,
)
from tests.support.signing import invitation_for, policy_updated, session_digests

pytestmark = ON_SERVER_AND_CLUSTER

OWNER = str(uuid.uuid4())


@pytest.fixture(scope="module")
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture(scope="module")
async def service(stack: ComponentStack, clock: MovableClock) -> AsyncIterator[ComponentService]:
    async with stack.service(DEFINITION, clock=clock) as built:
        yield built


@pytest.fixture(autouse=True)
def wall_clock(clock: MovableClock):
    yield
    clock.reset()


def policy(stack: ComponentStack, methods: list[str], *, secret: str | None = None, retry_count: int = 3,
           phone: str | None = None) -> wf.AuthenticationPolicy:
    destination = wf.Destination(channel="sms", address=phone, masked="+44******0123") if phone else None
    return wf.AuthenticationPolicy(
        methods=methods, secret_hash=stack.hasher.hash_now(secret) if secret else None,
        destination=destination, retry_count=retry_count, frequency="OncePerDocument",
    )


async def package_with(service: ComponentService,
                       *recipients: tuple[int, wf.AuthenticationPolicy | None, wf.AccessWindow | None]) -> str:
    """A shared package whose recipients have these policies, projected from workflow's facts."""
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
    facts += [policy_updated(package_id, order, f"r{order}@example.com", rule, window)
              for order, rule, window in recipients]
    facts.append(wf.WorkflowShared(package_id=package_id, workflow_type="sequential", shared_at=datetime.now(UTC)))
    for fact in facts:
        await service.handle(fact)
    return package_id


def open_with(package_id: str, order: int, password: str, version: int = 1) -> auth.OpenDocumentWithPassword:
    return auth.OpenDocumentWithPassword(package_id=package_id, order=order, password=password,
                                         invitation=invitation_for(package_id, order, version))


async def event_of(service: ComponentService, command: Message) -> dict:
    """Handle ``command``; its one outcome on the events topic."""
    return outcome(await service.handle(command), AUTHENTICATION_EVENTS).document


async def two_method_recipient(stack: ComponentStack, service: ComponentService, clock: MovableClock) -> str:
    """A package whose recipient 1 must pass the password ``right`` and an SMS OTP, with the code
    ``123456`` pending (issued as otp-dispatch would)."""
    phone = "+447700900123"
    package_id = await package_with(service, (1, policy(stack, ["password", "sms_otp"], secret="right", phone=phone), None))
    store = OtpStore(service.service.resources.redis, prefix=stack.connections.redis_prefix, pepper=stack.otp_pepper)
    await store.issue(uuid.uuid4(), OtpRecipient.document_opening(package_id, 1), challenge_id=uuid.uuid4(),
                      code="123456", channel="sms", destination=phone, ttl=timedelta(minutes=5), now=clock())
    return package_id


async def test_right_access_code_opens_and_grants_access_to_the_reply_topic_only(
    stack: ComponentStack, service: ComponentService
) -> None:
    """The right access code yields RecipientAuthenticated on the events topic and a grant, signed with
    the keys the service publishes, on the replies topic only."""
    package_id = await package_with(service, (1, policy(stack, ["access_code"], secret="S3cret-code"), None))

    published = await service.handle(open_with(package_id, 1, "S3cret-code"))

    authenticated, granted = outcome(published, AUTHENTICATION_EVENTS), outcome(published, AUTHENTICATION_REPLIES)
    assert (authenticated["type"], authenticated["method"]) == ("authentication.recipient_authenticated", "access_code")
    assert granted["type"] == "authentication.document_access_granted"
    grant = GrantVerifier.from_jwks(await service.jwks()).verify(granted["grant"], package_id=package_id, order=1)
    assert (grant.package_id, grant.order) == (package_id, 1)
    events = on(service.recorder.records, AUTHENTICATION_EVENTS)
    assert all(b"grant" not in r.value and b"S3cret-code" not in r.value for r in events)


async def test_wrong_codes_count_down_then_lock_and_the_right_code_is_refused(
    stack: ComponentStack, service: ComponentService
) -> None:
    """Each wrong access code says how many attempts remain; the third locks; then even the right code
    is refused with 403."""
    package_id = await package_with(service, (1, policy(stack, ["access_code"], secret="right"), None))

    outcomes = [await event_of(service, open_with(package_id, 1, "wrong")) for _ in range(3)]
    after = await event_of(service, open_with(package_id, 1, "right"))

    assert [(o["type"], o.get("attempts_remaining")) for o in outcomes] == [
        ("authentication.recipient_authentication_failed", 2),
        ("authentication.recipient_authentication_failed", 1),
        ("authentication.recipient_locked_out", None),
    ]
    assert (after["type"], after["status"], after["code"]) == ("command.rejected", 403, "recipient_locked")


async def test_wrong_passwords_and_wrong_codes_spend_one_retry_count(
    stack: ComponentStack, service: ComponentService, clock: MovableClock
) -> None:
    """A recipient who must pass both a password and an SMS OTP is locked by the third wrong attempt
    of either kind (retry count 3), not after two of each, and the right code is then refused."""
    package_id = await two_method_recipient(stack, service, clock)
    wrong_code = auth.VerifyDocumentOtp(package_id=package_id, order=1, invitation=invitation_for(package_id, 1), code="000000")

    outcomes = [
        await event_of(service, open_with(package_id, 1, "wrong")),
        await event_of(service, wrong_code),
        await event_of(service, open_with(package_id, 1, "wrong")),
    ]
    after = await event_of(service, auth.VerifyDocumentOtp(package_id=package_id, order=1,
                                                            invitation=invitation_for(package_id, 1), code="123456"))

    assert [(o["type"], o.get("attempts_used", o.get("failures")), o.get("attempts_remaining")) for o in outcomes] == [
        ("authentication.recipient_authentication_failed", 1, 2),
        ("authentication.recipient_authentication_failed", 2, 1),
        ("authentication.recipient_locked_out", 3, None),
    ]
    assert (after["type"], after["status"], after["code"]) == ("command.rejected", 403, "recipient_locked")


async def test_an_otp_passed_before_the_password_still_counts_towards_the_grant(
    stack: ComponentStack, service: ComponentService, clock: MovableClock
) -> None:
    """A recipient who must pass both a password and an SMS OTP is granted access when the right code
    comes first and the right password second (the password's success does not forget the code's)."""
    package_id = await two_method_recipient(stack, service, clock)

    by_code = await service.handle(auth.VerifyDocumentOtp(package_id=package_id, order=1,
                                                          invitation=invitation_for(package_id, 1), code="123456"))
    by_password = await service.handle(open_with(package_id, 1, "right"))

    assert [(outcome(p, AUTHENTICATION_EVENTS)["type"], outcome(p, AUTHENTICATION_EVENTS)["method"])
            for p in (by_code, by_password)] == [
        ("authentication.recipient_authenticated", "sms_otp"), ("authentication.recipient_authenticated", "password"),
    ]
    assert on(by_code, AUTHENTICATION_REPLIES) == []
    assert outcome(by_password, AUTHENTICATION_REPLIES)["type"] == "authentication.document_access_granted"


async def test_lockout_survives_a_redis_flush(stack: ComponentStack, service: ComponentService) -> None:
    """A locked recipient stays locked when Redis forgets everything: the lock is in Postgres."""
    package_id = await package_with(service, (1, policy(stack, ["access_code"], secret="right", retry_count=1), None))
    locked = await event_of(service, open_with(package_id, 1, "x"))
    await stack.forget_redis()

    after = await event_of(service, open_with(package_id, 1, "right"))

    assert locked["type"] == "authentication.recipient_locked_out"
    assert (after["status"], after["code"]) == (403, "recipient_locked")


async def test_reset_unlocks_one_recipient_and_leaves_the_other_alone(
    stack: ComponentStack, service: ComponentService
) -> None:
    """The sender's reset clears recipient 2's lock and failures; recipient 1's failures stay."""
    package_id = await package_with(
        service,
        (1, policy(stack, ["access_code"], secret="one"), None),
        (2, policy(stack, ["access_code"], secret="two", retry_count=1), None),
    )
    first = await event_of(service, open_with(package_id, 1, "bad"))
    await event_of(service, open_with(package_id, 2, "bad"))
    reset = policy_updated(package_id, 2, "r2@example.com", policy(stack, ["access_code"], secret="two", retry_count=1),
                           version=2, kind=wf.RecipientAuthenticationResetV2)
    cleared = outcome(await service.handle(reset), AUTHENTICATION_EVENTS)

    stale = await event_of(service, open_with(package_id, 2, "two"))
    opened = await event_of(service, open_with(package_id, 2, "two", version=2))
    one_more = await event_of(service, open_with(package_id, 1, "bad"))

    assert first["attempts_remaining"] == 2
    assert (cleared["type"], cleared["was_locked"]) == ("authentication.recipient_authentication_cleared", True)
    assert cleared["correlation_id"] == str(reset.correlation_id)
    assert (stale["status"], stale["code"]) == (401, "invitation_not_valid")  # the reset raised the version
    assert opened["type"] == "authentication.recipient_authenticated"
    assert one_more["attempts_remaining"] == 1  # recipient 1's earlier failure still counts


async def test_access_window_refuses_before_and_after(
    stack: ComponentStack, service: ComponentService, clock: MovableClock
) -> None:
    """Before the start the answer is 403 with a clear message; after the end, the seed's text."""
    start, end = clock() + timedelta(hours=1), clock() + timedelta(hours=2)
    package_id = await package_with(
        service, (1, policy(stack, ["access_code"], secret="c"), wf.AccessWindow(starts_at=start, ends_at=end)),
    )
    early = await event_of(service, open_with(package_id, 1, "c"))
    clock.advance(timedelta(hours=2, seconds=1))
    late = await event_of(service, open_with(package_id, 1, "c"))

    assert (early["status"], early["code"]) == (403, "access_period_not_started")
    assert (late["status"], late["message"]) == (403, "You cannot access this document after the access period ends")


async def test_status_query_reports_attempts_and_lock_without_secrets(
    stack: ComponentStack, service: ComponentService
) -> None:
    """The status query answers attempts used and left, the lock and the last failure, to the replies topic."""
    package_id = await package_with(service, (1, policy(stack, ["access_code"], secret="c"), None))
    await event_of(service, open_with(package_id, 1, "x"))
    query = auth.GetRecipientAuthenticationStatus(package_id=package_id, order=1, invitation=invitation_for(package_id, 1))

    status = outcome(await service.handle(query), AUTHENTICATION_REPLIES)

    assert (status["attempts_used"], status["attempts_remaining"], status["locked"]) == (1, 2, False)
    assert status["last_failure_reason"] == "wrong_secret"
    assert b"$argon2" not in status.value


async def test_signer_otp_refusals_follow_the_seed(stack: ComponentStack, service: ComponentService) -> None:
    """Signer OTP: no token 401, unknown document 404 "Document not found", a stranger 403 "Document does
    not belong to user", the owner without a mobile number 400."""
    package_id = await package_with(service, (1, policy(stack, ["access_code"], secret="c"), None))
    issuer: TokenIssuer = stack.token_issuer()
    stranger = issuer.issue(str(uuid.uuid4()), "stranger@example.com").token

    no_token = await event_of(service, auth.RequestSigningOtp(package_id=package_id, document_id="doc-1", field_name="f"))
    missing = await event_of(service, auth.RequestSigningOtp(
        package_id=package_id, document_id="doc-9", field_name="f", access_token=stranger))
    foreign = await event_of(service, auth.RequestSigningOtp(
        package_id=package_id, document_id="doc-1", field_name="f", access_token=stranger))
    no_mobile = await event_of(service, auth.RequestSigningOtp(
        package_id=package_id, document_id="doc-1", field_name="f", access_token=issuer.issue(OWNER, "owner").token))

    assert (no_token["status"], no_token["message"]) == (401, "User authentication required")
    assert (missing["status"], missing["message"]) == (404, "Document not found")
    assert (foreign["status"], foreign["message"]) == (403, "Document does not belong to user")
    assert (no_mobile["status"], no_mobile["code"]) == (400, "mobile_number_missing")


async def test_attempts_handled_in_one_batch_see_each_others_writes(
    stack: ComponentStack, service: ComponentService
) -> None:
    """Wrong access codes and then the right one, handled in one batch (where the recipient was read
    ahead for all of them): the third locks, and the right code after it is refused, not granted on
    the recipient as it was read before the lock."""
    package_id = await package_with(service, (1, policy(stack, ["access_code"], secret="right"), None))
    attempts = [open_with(package_id, 1, p) for p in ("wrong", "wrong", "wrong", "right")]

    published = await service.handle_together(*attempts)

    assert [(o["type"], o.get("code")) for o in on(published, AUTHENTICATION_EVENTS)] == [
        ("authentication.recipient_authentication_failed", None),
        ("authentication.recipient_authentication_failed", None),
        ("authentication.recipient_locked_out", None),
        ("command.rejected", "recipient_locked"),
    ]
    assert on(published, AUTHENTICATION_REPLIES) == []


async def test_a_document_otp_is_requested_for_the_recipients_number(
    stack: ComponentStack, service: ComponentService
) -> None:
    """RequestDocumentOtp for a recipient with an SMS OTP asks OTP dispatch, on the requests topic only,
    to send a code to the policy's number; nothing is published on the events topic yet."""
    phone = "+447700900777"
    package_id = await package_with(service, (1, policy(stack, ["sms_otp"], phone=phone), None))
    command = auth.RequestDocumentOtp(package_id=package_id, order=1, invitation=invitation_for(package_id, 1))

    published = await service.handle(command)

    request = outcome(published, OTP_REQUESTS)
    assert (request["type"], request["purpose"], request["channel"], request["destination"]) == (
        "otp.delivery_requested", "document_opening", "sms", phone)
    assert (request["package_id"], request["order"]) == (package_id, 1)
    assert request.caused_by(command) and on(published, AUTHENTICATION_EVENTS) == []


async def test_only_one_attempt_takes_the_lock(stack: ComponentStack, service: ComponentService) -> None:
    """Of two attempts that both reach the retry count at once (two consumers during a rebalance),
    only the first records the lock; the second learns the recipient is locked already."""
    package_id = await package_with(service, (1, policy(stack, ["access_code"], secret="right"), None))
    pool = service.service.resources.pool
    assert pool is not None
    now = datetime.now(UTC)

    async with pool.acquire() as connection:
        first = await repository.update_recipient_locked(connection, package_id, 1, now, 3)
        second = await repository.update_recipient_locked(connection, package_id, 1, now, 3)

    assert (first, second) == (True, False)


async def test_a_locked_workflow_does_not_stop_a_recipient_from_opening(
    stack: ComponentStack, service: ComponentService
) -> None:
    """The workflow's lock stops the owner's changes, not the recipients: the right access code still
    opens a package whose workflow the owner locked."""
    package_id = await package_with(service, (1, policy(stack, ["access_code"], secret="right"), None))
    await service.handle(wf.WorkflowLocked(package_id=package_id))

    opened = await event_of(service, open_with(package_id, 1, "right"))

    assert opened["type"] == "authentication.recipient_authenticated"
