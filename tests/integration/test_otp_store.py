"""The shared OTP store's Lua scripts on real Redis, one server and a 3-master cluster, with an injected clock."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from libs.runtime.redis_client import RedisClient
from libs.runtime.settings import ConnectionSettings
from libs.security.otp_store import (
    Issued,
    OtpRecipient,
    OtpStore,
    SeenBefore,
    SendLimits,
    SendRefused,
    VerifyOutcome,
)
from tests.support.redis import redis_client as client_of

PEPPER = "test-pepper-0123456789abcdef"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
PHONE = "+447700908899"
NO_LIMITS = SendLimits(resend_cooldown=timedelta(0), per_recipient=1000, per_destination=1000)


@pytest.fixture
async def redis_client(redis_connections: ConnectionSettings) -> AsyncIterator[RedisClient]:
    async with client_of(redis_connections) as client:
        yield client


@pytest.fixture
def prefix(redis_connections: ConnectionSettings) -> str:
    """A key prefix of this test's own, so it can 'lose' its keys without touching anyone else's."""
    return f"{redis_connections.redis_prefix}otp-store-{uuid.uuid4().hex[:8]}:"


@pytest.fixture
def store(redis_client: RedisClient, prefix: str) -> OtpStore:
    return OtpStore(redis_client, prefix=prefix, pepper=PEPPER, clock=lambda: T0)


def recipient(order: int = 2) -> OtpRecipient:
    return OtpRecipient.document_opening(f"pkg-{uuid.uuid4().hex[:8]}", order)


async def issue(
    store: OtpStore,
    who: OtpRecipient,
    code: str = "123456",
    *,
    at: datetime = T0,
    ttl: timedelta = timedelta(minutes=5),
    limits: SendLimits = NO_LIMITS,
    destination: str = PHONE,
    request_id: uuid.UUID | None = None,
) -> Issued | SendRefused | SeenBefore:
    return await store.issue(
        request_id or uuid.uuid4(), who, challenge_id=uuid.uuid4(), code=code, channel="sms",
        destination=destination, ttl=ttl, limits=limits, now=at,
    )


async def test_a_correct_code_verifies_once(store: OtpStore) -> None:
    """The pending code verifies, and a second submission of it finds nothing pending."""
    who = recipient()
    issued = await issue(store, who)

    first = await store.verify_and_consume(who, "123456", retry_count=3)
    second = await store.verify_and_consume(who, "123456", retry_count=3)

    assert isinstance(issued, Issued)
    assert (first.outcome, first.challenge_id) == (VerifyOutcome.OK, issued.challenge_id)
    assert second.outcome is VerifyOutcome.NO_PENDING


async def test_an_attempt_made_again_gets_its_first_answer_and_changes_nothing(store: OtpStore) -> None:
    """A verification repeated with its command's id (a redelivery) is answered as the first time:
    a wrong code counts once, a right code is not refused as already used, and a new attempt
    still sees the code consumed."""
    who = recipient()
    await issue(store, who, "123456")
    wrong, right = uuid.uuid4(), uuid.uuid4()

    first_wrong = await store.verify_and_consume(who, "000000", retry_count=3, attempt=wrong)
    again_wrong = await store.verify_and_consume(who, "000000", retry_count=3, attempt=wrong)
    first_right = await store.verify_and_consume(who, "123456", retry_count=3, attempt=right)
    again_right = await store.verify_and_consume(who, "123456", retry_count=3, attempt=right)
    another = await store.verify_and_consume(who, "123456", retry_count=3, attempt=uuid.uuid4())

    assert first_wrong == again_wrong and first_wrong.attempts_used == 1
    assert first_right == again_right and first_right.ok
    assert another.outcome is VerifyOutcome.NO_PENDING


async def test_a_hundred_concurrent_wrong_guesses_count_exactly_the_retry_count(store: OtpStore) -> None:
    """100 concurrent wrong guesses at retry count 3 count exactly 3 failures, one of which signals the lock."""
    who = recipient()
    await issue(store, who, "123456")

    results = await asyncio.gather(
        *(store.verify_and_consume(who, f"{900000 + n}", retry_count=3) for n in range(100))
    )

    outcomes = [r.outcome for r in results]
    assert outcomes.count(VerifyOutcome.WRONG) == 2
    assert outcomes.count(VerifyOutcome.LOCKED) == 98
    assert sum(r.locked_now for r in results) == 1
    assert (await store.status(who)).failures == 3
    correct = await store.verify_and_consume(who, "123456", retry_count=3)
    assert correct.outcome is VerifyOutcome.LOCKED and not correct.locked_now


async def test_fifty_concurrent_submissions_of_the_correct_code_succeed_once(store: OtpStore) -> None:
    """50 concurrent submissions of one correct code yield exactly one success."""
    who = recipient()
    await issue(store, who, "654321")

    results = await asyncio.gather(
        *(store.verify_and_consume(who, "654321", retry_count=3) for _ in range(50))
    )

    outcomes = [r.outcome for r in results]
    assert outcomes.count(VerifyOutcome.OK) == 1
    assert outcomes.count(VerifyOutcome.NO_PENDING) == 49


async def test_a_code_submitted_at_ten_minutes_and_one_second_is_rejected(store: OtpStore) -> None:
    """A code with the longest TTL verifies just before ten minutes and not at ten minutes and one second."""
    early, late = recipient(1), recipient(2)
    await issue(store, early, ttl=timedelta(minutes=10))
    await issue(store, late, ttl=timedelta(minutes=10))

    in_time = await store.verify_and_consume(early, "123456", retry_count=3, now=T0 + timedelta(seconds=599))
    too_late = await store.verify_and_consume(late, "123456", retry_count=3, now=T0 + timedelta(seconds=601))

    assert in_time.outcome is VerifyOutcome.OK
    assert too_late.outcome is VerifyOutcome.EXPIRED and too_late.attempts_used == 0
    assert (await store.verify_and_consume(late, "123456", retry_count=3)).outcome is VerifyOutcome.NO_PENDING


async def test_a_code_cannot_be_issued_for_longer_than_ten_minutes(store: OtpStore) -> None:
    """The store refuses a TTL over ten minutes before touching Redis."""
    with pytest.raises(ValueError, match="at most 600"):
        await issue(store, recipient(), ttl=timedelta(seconds=601))


async def test_a_new_code_does_not_reset_the_failure_count(store: OtpStore) -> None:
    """Two wrong guesses, a new code, and one more wrong guess lock the recipient at retry count 3."""
    who = recipient()
    await issue(store, who, "111111")
    await store.verify_and_consume(who, "000000", retry_count=3)
    await store.verify_and_consume(who, "000001", retry_count=3)

    await issue(store, who, "222222")
    third = await store.verify_and_consume(who, "000002", retry_count=3)

    assert (third.outcome, third.locked_now, third.attempts_used) == (VerifyOutcome.LOCKED, True, 3)
    assert (await store.verify_and_consume(who, "222222", retry_count=3)).outcome is VerifyOutcome.LOCKED


async def test_a_ceiling_already_spent_by_other_failures_refuses_the_right_code_unchecked(store: OtpStore) -> None:
    """A ceiling of 0 (the recipient's password failures spent the shared retry count) answers LOCKED,
    already spent, without checking or consuming the code; the right code then verifies under a ceiling."""
    who = recipient()
    await issue(store, who, "123456")

    refused = await store.verify_and_consume(who, "123456", retry_count=0)

    assert (refused.outcome, refused.locked_now, refused.spent, refused.attempts_used) == (VerifyOutcome.LOCKED, False, True, 0)
    assert (await store.failures(who), (await store.status(who)).pending is not None) == (0, True)
    assert (await store.verify_and_consume(who, "123456", retry_count=3)).ok


async def test_a_new_code_replaces_the_pending_one(store: OtpStore) -> None:
    """After a second code is issued the first no longer verifies and the second does."""
    who = recipient()
    await issue(store, who, "111111")
    await issue(store, who, "222222")

    old = await store.verify_and_consume(who, "111111", retry_count=5)
    new = await store.verify_and_consume(who, "222222", retry_count=5)

    assert (old.outcome, old.attempts_used, old.attempts_remaining) == (VerifyOutcome.WRONG, 1, 4)
    assert new.outcome is VerifyOutcome.OK


async def test_success_resets_the_failure_count(store: OtpStore) -> None:
    """A correct code after two wrong ones leaves the recipient with no failures counted."""
    who = recipient()
    await issue(store, who, "123456")
    await store.verify_and_consume(who, "000000", retry_count=3)
    await store.verify_and_consume(who, "000001", retry_count=3)

    result = await store.verify_and_consume(who, "123456", retry_count=3)

    assert (result.outcome, result.attempts_used, result.attempts_remaining) == (VerifyOutcome.OK, 0, 3)
    assert (await store.status(who)).failures == 0


async def test_reset_clears_the_lock_of_one_recipient_only(store: OtpStore) -> None:
    """The sender's reset unlocks one recipient; another recipient's failures stay."""
    locked, other = recipient(2), recipient(1)
    for who in (locked, other):
        await issue(store, who, "123456")
    for guess in ("000000", "000001", "000002"):
        await store.verify_and_consume(locked, guess, retry_count=3)
    await store.verify_and_consume(other, "000000", retry_count=3)

    assert await store.reset(locked) == 3
    await issue(store, locked, "777777")

    assert (await store.verify_and_consume(locked, "777777", retry_count=3)).ok
    assert (await store.status(other)).failures == 1


async def test_losing_redis_leaves_no_code_that_verifies(
    store: OtpStore, redis_client: RedisClient, prefix: str
) -> None:
    """Once the store's keys are gone (Redis flushed or restarted), a pending code finds nothing pending."""
    who = recipient()
    await issue(store, who, "123456")

    keys = [key async for key in redis_client.scan_iter(match=f"{prefix}*")]
    await redis_client.delete(*keys)
    await redis_client.script_flush()

    assert (await store.verify_and_consume(who, "123456", retry_count=3)).outcome is VerifyOutcome.NO_PENDING


async def test_redis_holds_neither_the_code_nor_the_destination(
    store: OtpStore, redis_client: RedisClient, prefix: str
) -> None:
    """Nothing under the store's keys, names or values, contains the code or the phone number in clear."""
    await issue(store, recipient(), "482913", request_id=uuid.uuid4())

    dump = []
    async for key in redis_client.scan_iter(match=f"{prefix}*"):
        kind = (await redis_client.type(key)).decode()
        dump.append(key.decode())
        if kind == "hash":
            dump += [f"{k.decode()}={v.decode()}" for k, v in (await redis_client.hgetall(key)).items()]
        elif kind == "zset":
            dump += [m.decode() for m in await redis_client.zrange(key, 0, -1)]
        elif kind == "string":
            dump.append((await redis_client.get(key)).decode())
    text = "\n".join(dump)

    assert dump and "482913" not in text and PHONE not in text and PHONE[1:] not in text
    assert "+44******8899" in text


async def test_a_resend_inside_the_cooldown_is_refused_until_it_ends(store: OtpStore) -> None:
    """A second code within 30 s is refused with the moment the cooldown ends, and allowed from then."""
    who = recipient()
    limits = SendLimits()
    await issue(store, who, limits=limits)

    refused = await issue(store, who, at=T0 + timedelta(seconds=10), limits=limits)
    allowed = await issue(store, who, at=T0 + timedelta(seconds=30), limits=limits)

    assert isinstance(refused, SendRefused)
    assert (refused.limit, refused.retry_at, refused.retry_after_seconds) == (
        "cooldown", T0 + timedelta(seconds=30), 20
    )
    assert isinstance(allowed, Issued)


async def test_a_recipient_gets_at_most_five_codes_per_window(store: OtpStore) -> None:
    """The sixth code for one recipient within the window is refused until the first leaves it."""
    who = recipient()
    limits = SendLimits()
    sent = [await issue(store, who, at=T0 + timedelta(minutes=n), limits=limits) for n in range(5)]

    sixth = await issue(store, who, at=T0 + timedelta(minutes=5), limits=limits)
    next_day = await issue(store, who, at=T0 + timedelta(hours=24), limits=limits)

    assert [s.sends_remaining for s in sent if isinstance(s, Issued)] == [4, 3, 2, 1, 0]
    assert isinstance(sixth, SendRefused)
    assert (sixth.limit, sixth.retry_at) == ("recipient", T0 + timedelta(hours=24))
    assert isinstance(next_day, Issued)


async def test_a_destination_gets_at_most_ten_codes_an_hour_across_packages(store: OtpStore) -> None:
    """Ten codes to one phone number for ten different recipients fill its hour; the eleventh waits."""
    limits = SendLimits()
    for n in range(10):
        assert isinstance(await issue(store, recipient(), at=T0 + timedelta(minutes=n), limits=limits), Issued)

    eleventh = await issue(store, recipient(), at=T0 + timedelta(minutes=30), limits=limits)
    other_phone = await issue(store, recipient(), at=T0 + timedelta(minutes=30), limits=limits, destination="+15555550100")
    an_hour_later = await issue(store, recipient(), at=T0 + timedelta(hours=1), limits=limits)

    assert isinstance(eleventh, SendRefused)
    assert (eleventh.limit, eleventh.retry_at) == ("destination", T0 + timedelta(hours=1))
    assert isinstance(other_phone, Issued) and isinstance(an_hour_later, Issued)


async def test_concurrent_sends_to_one_destination_never_exceed_its_limit(store: OtpStore) -> None:
    """Thirty concurrent requests for thirty recipients at one phone number issue exactly ten codes."""
    results = await asyncio.gather(*(issue(store, recipient(), limits=SendLimits()) for _ in range(30)))

    assert sum(isinstance(r, Issued) for r in results) == 10
    assert {r.limit for r in results if isinstance(r, SendRefused)} == {"destination"}


async def test_a_refused_or_repeated_request_holds_no_extra_place_in_the_destinations_window(store: OtpStore) -> None:
    """With two sends per destination: a request refused by the cooldown gives its place back and a
    request delivered again after it issued is not counted again, so a second recipient still gets
    a code there and only a third is refused for the destination."""
    limits = SendLimits(per_destination=2)
    first, request = recipient(), uuid.uuid4()
    issued = await issue(store, first, limits=limits, request_id=request)
    in_cooldown = await issue(store, first, at=T0 + timedelta(seconds=5), limits=limits)
    again = await issue(store, first, at=T0 + timedelta(seconds=6), limits=limits, request_id=request)

    second = await issue(store, recipient(), at=T0 + timedelta(seconds=7), limits=limits)
    third = await issue(store, recipient(), at=T0 + timedelta(seconds=8), limits=limits)

    assert isinstance(issued, Issued) and isinstance(again, SeenBefore)
    assert isinstance(in_cooldown, SendRefused) and in_cooldown.limit == "cooldown"
    assert isinstance(second, Issued)
    assert isinstance(third, SendRefused) and (third.limit, third.retry_at) == ("destination", T0 + timedelta(hours=1))


async def test_a_request_interrupted_between_its_two_steps_takes_one_place_when_delivered_again(
    store: OtpStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delivery that took its place in the destination's window and then lost Redis before
    claiming the recipient issues on redelivery with that same place: with two sends per
    destination a second recipient still gets a code, a third does not."""
    limits = SendLimits(per_destination=2)
    first, request = recipient(), uuid.uuid4()
    claim = store._scripts["otp_issue"]

    async def lost(**_: object) -> object:
        raise ConnectionError("Redis went away between the two steps")

    monkeypatch.setitem(store._scripts, "otp_issue", lost)
    with pytest.raises(ConnectionError):
        await issue(store, first, limits=limits, request_id=request)
    monkeypatch.setitem(store._scripts, "otp_issue", claim)

    redelivered = await issue(store, first, at=T0 + timedelta(seconds=1), limits=limits, request_id=request)
    second = await issue(store, recipient(), at=T0 + timedelta(seconds=2), limits=limits)
    third = await issue(store, recipient(), at=T0 + timedelta(seconds=3), limits=limits)

    assert isinstance(redelivered, Issued) and isinstance(second, Issued)
    assert isinstance(third, SendRefused) and third.limit == "destination"


async def test_a_request_issued_twice_stores_one_code(store: OtpStore) -> None:
    """The same request id issued again changes nothing: the first code still verifies, the second never does."""
    who, request_id = recipient(), uuid.uuid4()
    first = await issue(store, who, "111111", request_id=request_id)
    again = await issue(store, who, "222222", request_id=request_id)

    assert isinstance(first, Issued)
    assert isinstance(again, SeenBefore) and (again.state, again.challenge_id) == ("claimed", first.challenge_id)
    assert (await store.verify_and_consume(who, "111111", retry_count=3)).ok


async def test_a_refused_request_is_refused_again_when_redelivered(store: OtpStore) -> None:
    """A request refused by the cooldown gets the same refusal on redelivery, even after the cooldown."""
    who, request_id = recipient(), uuid.uuid4()
    await issue(store, who, limits=SendLimits())
    refused = await issue(store, who, at=T0 + timedelta(seconds=5), limits=SendLimits(), request_id=request_id)

    again = await issue(store, who, at=T0 + timedelta(minutes=5), limits=SendLimits(), request_id=request_id)

    assert isinstance(again, SeenBefore) and again.refusal == refused


async def test_the_first_recorded_outcome_stands_and_withdraws_only_its_own_code(store: OtpStore) -> None:
    """Settling twice keeps the first outcome; withdrawing a code that was already replaced leaves the new one."""
    who, request_id = recipient(), uuid.uuid4()
    first = await issue(store, who, "111111", request_id=request_id)
    assert isinstance(first, Issued)
    await issue(store, who, "222222")

    kept = await store.settle(request_id, who, '{"first": true}', withdraw=first.challenge_id)
    later = await store.settle(request_id, who, '{"second": true}')
    seen = await issue(store, who, request_id=request_id)

    assert kept == later == '{"first": true}'
    assert isinstance(seen, SeenBefore) and (seen.state, seen.outcome) == ("settled", '{"first": true}')
    assert (await store.verify_and_consume(who, "222222", retry_count=3)).ok


async def test_status_shows_the_pending_code_and_cooldown_without_secrets(store: OtpStore) -> None:
    """The status has the failures, the pending code's expiry and masked destination, and the cooldown's end."""
    who = recipient()
    issued = await issue(store, who, limits=SendLimits())
    await store.verify_and_consume(who, "000000", retry_count=3)

    status = await store.status(who, now=T0 + timedelta(seconds=1))
    after_expiry = await store.status(who, now=T0 + timedelta(minutes=6))

    assert isinstance(issued, Issued) and status.pending is not None
    assert (status.failures, status.pending.challenge_id, status.pending.destination) == (
        1, issued.challenge_id, "+44******8899"
    )
    assert status.pending.expires_at == T0 + timedelta(minutes=5)
    assert status.resend_available_at == T0 + timedelta(seconds=30)
    assert after_expiry.pending is None and after_expiry.resend_available_at is None


async def test_a_code_for_one_recipient_does_not_verify_for_another(store: OtpStore) -> None:
    """Digests are bound to their recipient: one recipient's code counts as wrong for another."""
    alice, bob = recipient(1), recipient(2)
    await issue(store, alice, "111111")
    await issue(store, bob, "222222")

    result = await store.verify_and_consume(bob, "111111", retry_count=3)

    assert result.outcome is VerifyOutcome.WRONG
    assert store.digest(alice, "111111") != store.digest(bob, "111111")


async def test_signer_codes_are_per_field(store: OtpStore) -> None:
    """A signer's code for one field does not verify for another field of the same document."""
    field_a = OtpRecipient.signing("pkg-s", "user-1", "doc-1", "sig-a")
    field_b = OtpRecipient.signing("pkg-s", "user-1", "doc-1", "sig-b")
    await issue(store, field_a, "314159")

    assert (await store.verify_and_consume(field_b, "314159", retry_count=3)).outcome is VerifyOutcome.NO_PENDING
    assert (await store.verify_and_consume(field_a, "314159", retry_count=3)).ok
