"""An API user's authenticator app (TOTP) as their second factor, on real Postgres and Redis without a
broker: enrolling, confirming, logging in with a code or a recovery code, replays, the shared failure
budget, concurrent submissions of one code to two replicas, disabling and renewing recovery codes,
and what the events topic and the table hold of the secrets.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pyotp
import pytest
from pydantic import SecretStr

from libs.security.totp import GuessCeiling, TotpSettings, UsedSteps, current_step
from services.identity.app import DEFINITION as IDENTITY
from signgate_contracts import Command
from signgate_contracts.identity import (
    AccountMembership,
    AuthenticateUser,
    ChangePassword,
    ConfirmAuthenticator,
    DisableAuthenticator,
    EnrolAuthenticator,
    RegenerateRecoveryCodes,
    RegisterUser,
    normalise_user_name,
    user_totp_context,
)
from signgate_contracts.topics import IDENTITY_EVENTS
from tests.support.clock import MovableClock
from tests.support.component import ComponentService, ComponentStack, Published, on
from tests.support.redis import redis_client
from tests.support.scanning import leaks
from tests.support.signing import authentication_opener

ACCOUNT = AccountMembership(name="Example, Inc.", context_identifier=uuid.uuid4(), is_primary=True)
REPLIES = "signgate.replies.test-totp"
FAILED = "identity.user_authentication_failed_v2"


@pytest.fixture(scope="module")
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture(autouse=True)
def wall_clock(clock: MovableClock):
    yield
    clock.reset()


@pytest.fixture(scope="module")
async def identity(stack: ComponentStack, clock: MovableClock) -> AsyncIterator[ComponentService]:
    async with stack.service(IDENTITY, clock=clock) as built:
        yield built


@pytest.fixture(scope="module")
async def second_replica(
    stack: ComponentStack, clock: MovableClock
) -> AsyncIterator[ComponentService]:
    async with stack.service(IDENTITY, clock=clock) as built:
        yield built


class TotpUser:
    """One API user with a password, driving identity as its caller would."""

    def __init__(
        self, stack: ComponentStack, identity: ComponentService, clock: MovableClock
    ) -> None:
        self.stack, self.identity, self.clock = stack, identity, clock
        self.reply_to = stack.connections.topic(REPLIES)
        self.user_name = normalise_user_name(f"Totp-{uuid.uuid4().hex[:10]}@Example.com")
        self.password = f"pw-{uuid.uuid4().hex}"
        self.published: list[Published] = []
        self.secret = ""
        self.recovery_codes: list[str] = []
        self.user_id = ""

    def admin_token(self) -> str:
        return (
            self.stack.token_issuer(self.clock)
            .issue("operator:tests", "operator:tests", roles=["admin"])
            .token
        )

    async def send(
        self, command: Command, service: ComponentService | None = None
    ) -> list[Published]:
        published = await (service or self.identity).handle(command)
        self.published += published
        return published

    async def register(self) -> None:
        [registered] = on(
            await self.send(
                RegisterUser(
                    user_name=self.user_name,
                    accounts=[ACCOUNT],
                    password=self.password,
                    access_token=SecretStr(self.admin_token()),
                )
            ),
            IDENTITY_EVENTS,
        )
        self.user_id = registered["user_id"]

    async def login(
        self,
        password: str | None = None,
        code: str | None = None,
        service: ComponentService | None = None,
    ) -> dict[str, Any]:
        """AuthenticateUser; the reply on the caller's topic."""
        command = AuthenticateUser(
            user_name=self.user_name,
            password=password or self.password,
            one_time_code=code,
            reply_to=self.reply_to,
        )
        [reply] = on(await self.send(command, service), self.reply_to)
        return reply.document

    async def token(self, code: str | None = None) -> str:
        reply = await self.login(code=code)
        assert reply["type"] == "identity.authentication_succeeded", reply
        return str(reply["access_token"])

    async def as_user(self, command: Command, token: str | None = None) -> list[Published]:
        """``command`` with the user's own token (from a login now, unless given)."""
        token = token or await self.token(
            self.code() if self.secret and self.recovery_codes else None
        )
        return await self.send(
            command.model_copy(update={"access_token": SecretStr(token), "reply_to": self.reply_to})
        )

    def code(self, at: datetime | None = None) -> str:
        return str(pyotp.TOTP(self.secret).at(at or self.clock()))

    async def enrol(self) -> dict[str, Any]:
        [reply] = on(
            await self.as_user(EnrolAuthenticator(user_name=self.user_name)), self.reply_to
        )
        self.secret = reply["secret"]
        return reply.document

    async def confirm(self) -> list[Published]:
        published = await self.as_user(
            ConfirmAuthenticator(user_name=self.user_name, one_time_code=self.code()),
            await self.token(),
        )
        [reply] = on(published, self.reply_to)
        self.recovery_codes = reply["recovery_codes"]
        return published

    async def enrolled(self) -> None:
        """Registered, enrolled and confirmed; the clock moved to the next step (the confirming code is spent)."""
        await self.register()
        await self.enrol()
        await self.confirm()
        self.clock.advance(timedelta(seconds=30))

    async def failed_attempts(self) -> int:
        async with self.identity.pool.acquire() as connection:
            return int(
                await connection.fetchval(
                    "SELECT failed_attempts FROM users WHERE user_name = $1", self.user_name
                )
            )


@pytest.fixture
async def user(stack: ComponentStack, identity: ComponentService, clock: MovableClock) -> TotpUser:
    return TotpUser(stack, identity, clock)


def events(published: list[Published], type_: str) -> list[dict[str, Any]]:
    return [p.document for p in on(published, IDENTITY_EVENTS) if p.type == type_]


def reasons(reply: dict[str, Any]) -> list[str]:
    return [r["code"] for r in reply.get("reasons", [])]


# -- enrolling and confirming --


async def test_enrolling_answers_the_secret_and_uri_to_the_caller_only_and_stores_it_encrypted(
    user: TotpUser,
) -> None:
    """The enrolment's secret and otpauth URI go only to the reply topic; the event names the
    authenticator; the table holds the secret encrypted, not in clear."""
    await user.register()

    reply = await user.enrol()

    assert reply["type"] == "identity.authenticator_enrolment"
    assert reply["otpauth_uri"].startswith("otpauth://totp/signgate:")
    assert (
        f"secret={user.secret}" in reply["otpauth_uri"]
        and "issuer=signgate" in reply["otpauth_uri"]
    )
    [enrolled] = events(user.published, "identity.authenticator_enrolled")
    assert enrolled["authenticator_id"] == reply["authenticator_id"]
    async with user.identity.pool.acquire() as connection:
        stored = await connection.fetchval(
            "SELECT secret_encrypted FROM authenticators WHERE id = $1",
            uuid.UUID(reply["authenticator_id"]),
        )
    assert user.secret not in stored and user.secret.lower() not in stored.lower()
    events_topic = [p.value.decode() for p in on(user.published, IDENTITY_EVENTS)]
    assert leaks(events_topic, [user.secret, reply["otpauth_uri"]]) == []


async def test_another_users_token_cannot_enrol_or_confirm_for_a_user(
    user: TotpUser, stack: ComponentStack, identity: ComponentService, clock: MovableClock
) -> None:
    """Enrolling needs the user's own token: another user's, or an administrator's, is 403 not_the_user."""
    other = TotpUser(stack, identity, clock)
    await user.register()
    await other.register()
    other_token = await other.token()

    [by_other] = await user.send(
        EnrolAuthenticator(user_name=user.user_name, access_token=SecretStr(other_token))
    )
    [by_admin] = await user.send(
        EnrolAuthenticator(user_name=user.user_name, access_token=SecretStr(user.admin_token()))
    )

    assert (by_other["status"], by_other["code"]) == (403, "not_the_user")
    assert (by_admin["status"], by_admin["code"]) == (403, "not_the_user")


async def test_a_wrong_first_code_does_not_confirm_and_the_right_one_gives_ten_recovery_codes(
    user: TotpUser,
) -> None:
    """A wrong first code is 401 and the login still needs no code; the right one confirms: ten
    recovery codes to the caller only, and AuthenticatorConfirmed with the secret sealed to the
    authentication service (it opens there as this user's), no secret or code in clear."""
    await user.register()
    await user.enrol()
    wrong = "000000" if user.code() != "000000" else "111111"

    [refused] = await user.as_user(
        ConfirmAuthenticator(user_name=user.user_name, one_time_code=wrong)
    )
    still_password_only = await user.login()
    published = await user.confirm()

    assert (refused["status"], refused["code"]) == (401, "invalid_one_time_code")
    assert still_password_only["type"] == "identity.authentication_succeeded"
    assert len(user.recovery_codes) == 10 and len(set(user.recovery_codes)) == 10
    [confirmed] = events(published, "identity.authenticator_confirmed")
    assert (confirmed["user_id"], confirmed["changed_by"], confirmed["digits"]) == (
        user.user_id,
        "user",
        6,
    )
    assert (
        authentication_opener().open(user_totp_context(user.user_id), confirmed["secret_sealed"])
        == user.secret
    )
    events_topic = [p.value.decode() for p in on(user.published, IDENTITY_EVENTS)]
    assert leaks(events_topic, [user.secret, *user.recovery_codes]) == []


async def test_enrolling_again_after_confirming_is_refused_until_disabled(user: TotpUser) -> None:
    """A confirmed authenticator is 409 authenticator_exists for a new enrolment."""
    await user.enrolled()

    [refused] = await user.as_user(EnrolAuthenticator(user_name=user.user_name))

    assert (refused["status"], refused["code"]) == (409, "authenticator_exists")


# -- logging in with a second factor --


async def test_without_a_code_the_answer_is_second_factor_required_whether_or_not_the_password_was_right(
    user: TotpUser,
) -> None:
    """No code: the right and a wrong password get the same bytes (second_factor_required) and the
    same failure event; the wrong one counts a failure, the right one counts nothing."""
    await user.enrolled()

    right_published = await user.send(
        AuthenticateUser(user_name=user.user_name, password=user.password, reply_to=user.reply_to)
    )
    after_right = await user.failed_attempts()
    wrong_published = await user.send(
        AuthenticateUser(user_name=user.user_name, password="pw-wrong-one", reply_to=user.reply_to)
    )

    [right], [wrong] = on(right_published, user.reply_to), on(wrong_published, user.reply_to)
    assert reasons(right.document) == reasons(wrong.document) == ["second_factor_required"]
    assert without_ids(right) == without_ids(wrong)
    [right_event], [wrong_event] = events(right_published, FAILED), events(wrong_published, FAILED)
    assert right_event["reasons"] == wrong_event["reasons"] == ["second_factor_required"]
    assert (after_right, await user.failed_attempts()) == (0, 1)


def without_ids(record: Published) -> bytes:
    value = record.value
    for field in ("event_id", "correlation_id", "causation_id", "occurred_at"):
        value = value.replace(str(record.document[field]).encode(), field.encode())
    return value


async def test_the_right_code_gets_the_token_once_and_the_same_code_again_is_refused_as_used(
    user: TotpUser,
) -> None:
    """Password and code: a token (the event says TOTP proved it); the same code again is
    totp_code_used and spends nothing of the failure budget; the next step's code works."""
    await user.enrolled()
    code = user.code()

    first = await user.login(code=code)
    again = await user.login(code=code)
    failures = await user.failed_attempts()
    user.clock.advance(timedelta(seconds=30))
    next_step = await user.login(code=user.code())

    assert first["type"] == "identity.authentication_succeeded"
    assert reasons(again) == ["totp_code_used"] and failures == 0
    assert next_step["type"] == "identity.authentication_succeeded"
    assert [e["second_factor"] for e in events(user.published, "identity.user_authenticated_v2")][
        -2:
    ] == ["totp", "totp"]


async def test_a_wrong_code_or_a_wrong_password_with_the_right_code_is_invalid_credentials_and_counts(
    user: TotpUser,
) -> None:
    """A wrong code with the right password and the right code with a wrong password both answer the
    generic invalid_credentials and count; five such failures lock the user, whose right password and
    code then answer account_locked."""
    await user.enrolled()
    wrong_code = "000000" if user.code() != "000000" else "111111"

    answers = [
        await user.login(code=wrong_code),
        await user.login(password="pw-wrong", code=user.code()),
    ]
    answers += [await user.login(code=wrong_code) for _ in range(3)]
    locked = await user.login(code=user.code())

    assert [reasons(a) for a in answers] == [["invalid_credentials"]] * 5
    assert len(events(user.published, "identity.user_locked_out_v2")) == 1
    assert reasons(locked) == ["account_locked"]


async def test_a_wrong_password_spends_no_code(user: TotpUser) -> None:
    """The right code sent with a wrong password is not spent: with the right password it still works."""
    await user.enrolled()
    code = user.code()

    wrong = await user.login(password="pw-wrong", code=code)
    right = await user.login(code=code)

    assert reasons(wrong) == ["invalid_credentials"]
    assert right["type"] == "identity.authentication_succeeded"


async def test_a_used_code_gets_the_same_answer_whatever_the_password_so_it_tests_no_password(
    user: TotpUser,
) -> None:
    """A code already spent answers totp_code_used with the right password and with a wrong one
    alike (a code seen over a shoulder cannot test passwords); only the wrong password counts."""
    await user.enrolled()
    code = user.code()
    await user.login(code=code)

    with_right = await user.login(code=code)
    right_failures = await user.failed_attempts()
    with_wrong = await user.login(password="pw-wrong", code=code)
    wrong_failures = await user.failed_attempts()

    assert reasons(with_right) == reasons(with_wrong) == ["totp_code_used"]
    assert (right_failures, wrong_failures) == (0, 1)


async def test_a_recovery_code_opens_one_login_and_says_how_many_are_left(user: TotpUser) -> None:
    """A recovery code (typed in upper case without its hyphen) gets a token once; the event says 9
    are left; the same code again is invalid_credentials."""
    await user.enrolled()
    recovery = user.recovery_codes[3]

    first = await user.login(code=recovery.replace("-", "").upper())
    again = await user.login(code=recovery)

    assert first["type"] == "identity.authentication_succeeded"
    assert reasons(again) == ["invalid_credentials"]
    [used] = events(user.published, "identity.recovery_code_used")
    assert used["remaining"] == 9
    assert (
        events(user.published, "identity.user_authenticated_v2")[-1]["second_factor"]
        == "recovery_code"
    )
    events_topic = [p.value.decode() for p in on(user.published, IDENTITY_EVENTS)]
    assert leaks(events_topic, [user.secret, *user.recovery_codes]) == []


async def test_one_code_sent_many_times_at_once_to_two_replicas_gets_exactly_one_token(
    user: TotpUser, second_replica: ComponentService
) -> None:
    """200 AuthenticateUser commands with the same valid code, delivered concurrently to two identity
    replicas on the same Postgres and Redis: exactly one token; every other answer is totp_code_used,
    and none of them counts a failure."""
    await user.enrolled()
    code = user.code()

    commands = [
        AuthenticateUser(
            user_name=user.user_name,
            password=user.password,
            one_time_code=code,
            reply_to=user.reply_to,
        )
        for _ in range(200)
    ]
    replicas = (user.identity, second_replica)
    await asyncio.gather(*(replicas[i % 2].handle(command) for i, command in enumerate(commands)))

    sent = {str(c.correlation_id) for c in commands}
    answers = [
        p.document
        for r in replicas
        for p in on(r.recorder.records, user.reply_to)
        if p["correlation_id"] in sent
    ]
    assert len(answers) == 200

    tokens = [a for a in answers if a["type"] == "identity.authentication_succeeded"]
    assert len(tokens) == 1
    assert sorted(r for a in answers for r in reasons(a)) == ["totp_code_used"] * 199
    assert await user.failed_attempts() == 0


# -- disabling and renewing --


async def test_the_user_disables_with_a_code_and_then_the_password_alone_logs_in(
    user: TotpUser,
) -> None:
    """Disabling without a code is 400; with a wrong code 401 and counted; with the current code it
    publishes AuthenticatorRemoved, and then the password alone gets a token."""
    await user.enrolled()
    token = await user.token(user.code())
    wrong_code = "000000" if user.code() != "000000" else "111111"

    [no_code] = await user.as_user(DisableAuthenticator(user_name=user.user_name), token)
    wrong = await user.as_user(
        DisableAuthenticator(user_name=user.user_name, one_time_code=wrong_code), token
    )
    user.clock.advance(timedelta(seconds=30))
    removed = await user.as_user(
        DisableAuthenticator(user_name=user.user_name, one_time_code=user.code()), token
    )
    after = await user.login()

    assert (no_code["status"], no_code["code"]) == (400, "one_time_code_required")
    assert [(p["status"], p["code"]) for p in wrong if p.type == "command.rejected"] == [
        (401, "invalid_one_time_code")
    ]
    assert len(events(wrong, FAILED)) == 1
    [event] = events(removed, "identity.authenticator_removed")
    assert (event["user_id"], event["changed_by"]) == (user.user_id, "user")
    assert after["type"] == "identity.authentication_succeeded"


async def test_an_administrator_disables_without_a_code(user: TotpUser) -> None:
    """An administrator's DisableAuthenticator needs no code and is announced as theirs."""
    await user.enrolled()

    published = await user.send(
        DisableAuthenticator(user_name=user.user_name, access_token=SecretStr(user.admin_token()))
    )

    [event] = events(published, "identity.authenticator_removed")
    assert event["changed_by"] == "administrator"
    assert (await user.login())["type"] == "identity.authentication_succeeded"


async def test_renewed_recovery_codes_replace_the_old_set(user: TotpUser) -> None:
    """After RegenerateRecoveryCodes an old recovery code is invalid_credentials and a new one opens a login."""
    await user.enrolled()
    old = user.recovery_codes
    token = await user.token(user.code())
    user.clock.advance(timedelta(seconds=30))

    published = await user.as_user(
        RegenerateRecoveryCodes(user_name=user.user_name, one_time_code=user.code()), token
    )
    [reply] = on(published, user.reply_to)
    new = reply["recovery_codes"]

    assert set(new).isdisjoint(old) and len(new) == 10
    [renewed] = events(published, "identity.recovery_codes_regenerated")
    assert renewed["count"] == 10
    assert reasons(await user.login(code=old[0])) == ["invalid_credentials"]
    assert (await user.login(code=new[0]))["type"] == "identity.authentication_succeeded"
    assert (
        leaks([p.value.decode() for p in on(user.published, IDENTITY_EVENTS)], [*old, *new]) == []
    )


async def test_a_password_change_needs_the_second_factor_and_cannot_test_a_password(user: TotpUser) -> None:
    """For a user with an authenticator, ChangePassword without a code is 401 second_factor_required for
    the right and a wrong current password alike; with the code it changes the password."""
    await user.enrolled()

    [right] = on(await user.send(ChangePassword(user_name=user.user_name, current_password=user.password,
                                                new_password="pw-new-one-1")), IDENTITY_EVENTS)[:1]
    [wrong] = on(await user.send(ChangePassword(user_name=user.user_name, current_password="pw-not-it",
                                                new_password="pw-new-one-1")), IDENTITY_EVENTS)[:1]
    changed = await user.send(ChangePassword(user_name=user.user_name, current_password=user.password,
                                             new_password="pw-new-one-1", one_time_code=user.code()))

    assert (right["status"], right["code"]) == (wrong["status"], wrong["code"]) == (401, "second_factor_required")
    assert [p.type for p in on(changed, IDENTITY_EVENTS)] == ["identity.password_changed_v2"]


async def test_after_a_key_rotation_a_secret_opens_and_is_sealed_again_under_the_new_key(
        user: TotpUser, stack: ComponentStack, clock: MovableClock) -> None:
    """With a new key put first in SIGNGATE_IDENTITY_TOTP_KEY, a secret sealed under the old key still
    checks a code, and is then stored under the new key (its id first)."""
    await user.enrolled()
    old = json.loads(os.environ["SIGNGATE_IDENTITY_TOTP_KEY"])
    new_key = base64.b64encode(os.urandom(32)).decode()

    async with stack.service(IDENTITY, clock=clock, totp_key=SecretStr(json.dumps([new_key, *old]))) as rotated:
        reply = await user.login(code=user.code(), service=rotated)
        async with rotated.pool.acquire() as connection:
            stored = await connection.fetchval(
                "SELECT secret_encrypted FROM authenticators a JOIN users u ON u.id = a.user_id "
                "WHERE u.user_name = $1 AND a.removed_at IS NULL", user.user_name)

    assert reply["type"] == "identity.authentication_succeeded"
    assert stored.split(".")[0] == hashlib.sha256(base64.b64decode(new_key)).hexdigest()[:16]


async def test_an_enrolment_asked_to_answer_on_the_events_topic_is_refused_before_a_secret_is_made(
        user: TotpUser) -> None:
    """EnrolAuthenticator whose reply_to names the identity events topic is 400 invalid_reply_to, and
    no authenticator is stored: the secret never exists, let alone on the bus."""
    await user.register()
    token = await user.token()
    events_topic = user.stack.connections.topic(IDENTITY_EVENTS.name)

    [refused] = await user.send(EnrolAuthenticator(user_name=user.user_name, access_token=SecretStr(token),
                                                   reply_to=events_topic))

    assert (refused["status"], refused["code"]) == (400, "invalid_reply_to")
    async with user.identity.pool.acquire() as connection:
        stored = await connection.fetchval("SELECT count(*) FROM authenticators WHERE user_id = $1",
                                           uuid.UUID(user.user_id))
    assert stored == 0


async def test_the_code_that_confirmed_the_authenticator_opens_no_login(user: TotpUser) -> None:
    """The first code, spent by confirming, is totp_code_used at a login within its window."""
    await user.register()
    await user.enrol()
    confirming = user.code()
    await user.confirm()

    replayed = await user.login(code=confirming)

    assert reasons(replayed) == ["totp_code_used"]


async def test_a_locked_account_spends_no_recovery_code_and_the_code_opens_once_unlocked(
    user: TotpUser,
) -> None:
    """Locked by five wrong passwords, the user's right password with a recovery code is answered
    account_locked and the code is not used up (no event, still unused in the table); once the
    lock has passed, the same code gets the token, and nine are left."""
    await user.enrolled()
    recovery = user.recovery_codes[0]
    for _ in range(5):
        await user.login(password="pw-wrong")

    while_locked = await user.login(code=recovery)
    async with user.identity.pool.acquire() as connection:
        unused = await connection.fetchval(
            "SELECT count(*) FROM recovery_codes r JOIN authenticators a ON a.id = r.authenticator_id"
            " WHERE a.user_id = $1 AND r.used_at IS NULL",
            uuid.UUID(user.user_id),
        )
    user.clock.advance(timedelta(minutes=6))
    unlocked = await user.login(code=recovery)

    assert len(events(user.published, "identity.user_locked_out_v2")) == 1
    assert reasons(while_locked) == ["account_locked"]
    assert unused == 10
    assert unlocked["type"] == "identity.authentication_succeeded"
    [used] = events(user.published, "identity.recovery_code_used")
    assert used["remaining"] == 9


async def test_wrong_codes_for_the_user_from_anywhere_share_one_ceiling_with_the_login(
    user: TotpUser, stack: ComponentStack
) -> None:
    """Ten wrong codes for the user counted elsewhere (as the authentication service counts a
    package's, under the same Redis key) exhaust the user's ceiling: the right password and the
    right code, and a wrong password with it, are then both refused 429 totp_guesses_exhausted
    (so the refusal tells nothing of the password), spending neither the code nor a failure; once
    the window has passed the same code gets the token."""
    await user.enrolled()
    subject, prefix = f"user:{user.user_id}", user.identity.connections.redis_prefix
    async with redis_client(user.identity.connections) as client:
        elsewhere = GuessCeiling(client, prefix, TotpSettings())
        for n in range(10):
            await elsewhere.admit(subject, f"package-{n}", user.clock(), wrong=True)
    code, at = user.code(), user.clock()

    right = await user.send(
        AuthenticateUser(
            user_name=user.user_name,
            password=user.password,
            one_time_code=code,
            reply_to=user.reply_to,
        )
    )
    wrong_password = await user.send(
        AuthenticateUser(
            user_name=user.user_name,
            password="pw-wrong",
            one_time_code=code,
            reply_to=user.reply_to,
        )
    )
    failures = await user.failed_attempts()
    async with redis_client(user.identity.connections) as client:
        last_step = await client.get(UsedSteps(client, prefix).key(subject))
    user.clock.advance(timedelta(minutes=15))
    after = await user.login(code=user.code())

    for published in (right, wrong_password):
        [refused] = [p.document for p in published if p.type == "command.rejected"]
        assert (refused["status"], refused["code"]) == (429, "totp_guesses_exhausted")
        assert 0 < refused["retry_after_seconds"] <= 900
    assert failures == 0
    assert int(last_step.split(b":")[0]) < current_step(at)  # the refused code's step is unspent
    assert after["type"] == "identity.authentication_succeeded"
