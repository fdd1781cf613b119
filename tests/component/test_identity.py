"""The identity service's rules on real Postgres and Redis, without a broker: registration, login
answers, lockout and unlock, passwords, account states, profiles; and the authentication service
acting on identity's events as they were published (a disabled user's token, a changed password).

Each test uses users of its own; the module's clock is injected into both services and is set
back to the wall clock after each test.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from pydantic import SecretStr

from libs.security.accounts import PostgresAccountStates
from libs.security.tokens import (
    AccountDisabled,
    AuthorizationDenied,
    TokenIssuer,
    TokenVerifier,
    generate_key_pair,
)
from services.authentication.app import DEFINITION as AUTHENTICATION
from services.identity.app import DEFINITION as IDENTITY
from signgate_contracts import Command
from signgate_contracts.identity import (
    AccountMembership,
    AuthenticateUser,
    ChangePassword,
    DisableUser,
    EnableUser,
    ExchangeApiKey,
    ExpirePassword,
    IssueApiKey,
    ListApiKeys,
    RegisterUser,
    RevokeApiKey,
    SetPassword,
    UnlockUser,
    normalise_user_name,
)
from signgate_contracts.topics import IDENTITY_EVENTS, IDENTITY_REPLIES
from tests.support.clock import MovableClock
from tests.support.component import ComponentService, ComponentStack, Published, on
from tests.support.scanning import leaks
from tests.support.signing import session_digests

PORTAL = "https://portal.signgate.example"
ACCOUNT = AccountMembership(name="Example, Inc.", context_identifier=uuid.uuid4(), is_primary=True)
OTHER_ACCOUNT = AccountMembership(name="Other Co", context_identifier=uuid.uuid4())
CALLER_REPLIES = "signgate.replies.test-identity"
"""A caller's own reply topic (its registry-style name; deployed under the stack's prefix)."""


def new_password() -> str:
    return f"pw-{uuid.uuid4().hex}"


def new_user_name() -> str:
    return f"User-{uuid.uuid4().hex[:10]}@Example.com"


def expired_url(user_name: str) -> str:
    return f"{PORTAL}/password/expired?user_name={quote(user_name, safe='')}"


def change_url(user_name: str) -> str:
    return f"{PORTAL}/password/change?user_name={quote(user_name, safe='')}"


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


@pytest.fixture(scope="module")
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture(autouse=True)
def wall_clock(clock: MovableClock):
    yield
    clock.reset()


@pytest.fixture(scope="module")
async def identity(stack: ComponentStack, clock: MovableClock) -> AsyncIterator[ComponentService]:
    async with stack.service(IDENTITY, clock=clock, portal_url=PORTAL) as built:
        yield built


@pytest.fixture(scope="module")
async def authentication(stack: ComponentStack, clock: MovableClock) -> AsyncIterator[ComponentService]:
    async with stack.service(AUTHENTICATION, clock=clock) as built:
        yield built


class Caller:
    """Sends identity commands as an upstream system would and reads their outcomes."""

    def __init__(self, stack: ComponentStack, identity: ComponentService, clock: MovableClock) -> None:
        self.stack = stack
        self.identity = identity
        self.clock = clock
        self.reply_to = stack.connections.topic(CALLER_REPLIES)

    def admin_token(self) -> str:
        """An operator's token with the admin role, as ``libs.tools.operator_token`` mints."""
        return self.stack.token_issuer(self.clock).issue("operator:tests", "operator:tests", roles=["admin"]).token

    def verifier(self, states: PostgresAccountStates | None = None) -> TokenVerifier:
        return TokenVerifier(self.stack.token_keys.public_key, states=states, clock=self.clock)

    async def events_of(self, command: Command) -> list[Published]:
        return on(await self.identity.handle(command), IDENTITY_EVENTS)

    async def outcome(self, command: Command) -> dict[str, Any]:
        """The one record on the events topic caused by ``command``."""
        [event] = await self.events_of(command)
        return event.document

    async def admin(self, command: Command) -> dict[str, Any]:
        """Send an administrative command with an admin token; its outcome."""
        return await self.outcome(command.model_copy(update={"access_token": SecretStr(self.admin_token())}))

    async def register(self, password: str | None = None, **fields: Any) -> dict[str, Any]:
        """The registration's event, with the (normalised) user name registered."""
        command = RegisterUser(
            user_name=fields.pop("user_name", new_user_name()), first_name="Jane", last_name="Doe",
            accounts=fields.pop("accounts", [ACCOUNT]), password=password, **fields,
        )
        registered = await self.admin(command)
        assert registered["type"] == "identity.user_registered_v2", registered
        return {**registered, "user_name": normalise_user_name(command.user_name)}

    async def attempt(self, user_name: str, password: str, *, reply_to: str | None = None) -> list[Published]:
        """Authenticate: everything identity published for it."""
        return await self.identity.handle(AuthenticateUser(user_name=user_name, password=password,
                                                           reply_to=reply_to or self.reply_to))

    async def authenticate(self, user_name: str, password: str) -> dict[str, Any]:
        """Authenticate; the reply on the caller's own topic."""
        [reply] = on(await self.attempt(user_name, password), self.reply_to)
        return reply.document

    async def token(self, user_name: str, password: str) -> str:
        reply = await self.authenticate(user_name, password)
        assert reply["type"] == "identity.authentication_succeeded", reply
        return reply["access_token"]

    async def fail(self, user_name: str, times: int) -> list[Published]:
        """``times`` wrong passwords in one batch (as a burst sent at once is fetched); what identity published."""
        return await self.identity.handle_together(*(
            AuthenticateUser(user_name=user_name, password=new_password(), reply_to=self.reply_to)
            for _ in range(times)))


@pytest.fixture
def caller(stack: ComponentStack, identity: ComponentService, clock: MovableClock) -> Caller:
    return Caller(stack, identity, clock)


def of_type(published: list[Published], type_: str) -> list[dict[str, Any]]:
    return [p.document for p in on(published, IDENTITY_EVENTS) if p.type == type_]


LOCKED_OUT = "identity.user_locked_out_v2"
FAILED = "identity.user_authentication_failed_v2"


# -- registering and authenticating --


async def test_a_registered_user_authenticates_and_gets_a_30_minute_token_with_their_accounts(caller: Caller) -> None:
    """The right password is answered on the caller's reply topic with a token valid for 30 minutes,
    the user's names and accounts (with the primary flag), and the event carries no token."""
    password = new_password()
    registered = await caller.register(password, accounts=[OTHER_ACCOUNT, ACCOUNT])

    published = await caller.attempt(registered["user_name"].upper(), password)

    [record] = on(published, caller.reply_to)
    [event] = on(published, IDENTITY_EVENTS)
    reply = record.document
    claims = await caller.verifier().verify(reply["access_token"])
    assert reply["type"] == "identity.authentication_succeeded" and reply["success"] is True
    assert (reply["user_name"], reply["first_name"], reply["last_name"]) == (registered["user_name"], "Jane", "Doe")
    assert reply["accounts"] == [
        {"name": "Example, Inc.", "context_identifier": str(ACCOUNT.context_identifier), "is_primary": True},
        {"name": "Other Co", "context_identifier": str(OTHER_ACCOUNT.context_identifier), "is_primary": False},
    ]
    assert at(reply["expires_at"]) - at(reply["occurred_at"]) == timedelta(minutes=30)
    assert reply["change_password_url"] == change_url(registered["user_name"])
    assert claims.subject == registered["user_id"]
    assert claims.accounts == (str(ACCOUNT.context_identifier), str(OTHER_ACCOUNT.context_identifier))
    assert claims.primary_account == str(ACCOUNT.context_identifier)
    assert event["type"] == "identity.user_authenticated_v2"
    assert (event["user_id"], event["token_id"]) == (registered["user_id"], str(claims.token_id))
    assert reply["access_token"].encode() not in event.value
    assert record.key is not None and record.key.decode() == registered["user_name"]


async def test_without_reply_to_the_answer_goes_to_the_identity_replies_topic(caller: Caller) -> None:
    """A caller that names no reply topic gets its token on signgate.identity.replies, keyed by user."""
    password = new_password()
    registered = await caller.register(password)

    published = await caller.identity.handle(AuthenticateUser(user_name=registered["user_name"], password=password))

    [record] = on(published, IDENTITY_REPLIES)
    assert record.type == "identity.authentication_succeeded"
    assert record.key is not None and record.key.decode() == registered["user_name"]


async def test_a_reply_topic_that_is_a_signgate_events_topic_is_refused(caller: Caller) -> None:
    """Asking for the token on the events topic is a 400, and no token is issued."""
    password = new_password()
    registered = await caller.register(password)

    published = await caller.attempt(registered["user_name"], password,
                                     reply_to=caller.stack.connections.topic(IDENTITY_EVENTS.name))

    [record] = published
    assert (record["type"], record["status"], record["code"], record["field"]) == (
        "command.rejected", 400, "invalid_reply_to", "reply_to")
    assert record.key is not None and record.key.decode() == session_digests().user_name(registered["user_name"])


async def test_unknown_user_and_wrong_password_get_byte_identical_answers(caller: Caller) -> None:
    """An unknown user name and a wrong password are answered with the same bytes and headers, apart
    from the message's ids and timestamp: invalid credentials, no expired-password URL."""
    registered = await caller.register(new_password())

    [unknown] = on(await caller.attempt(new_user_name(), new_password()), caller.reply_to)
    [wrong] = on(await caller.attempt(registered["user_name"], new_password()), caller.reply_to)

    assert without_ids(unknown) == without_ids(wrong)
    assert wrong["reasons"] == [{"code": "invalid_credentials", "message": "Invalid credentials"}]
    assert wrong["success"] is False and wrong["expired_password_url"] is None


async def test_failed_logins_of_a_real_and_an_unknown_name_look_alike_on_the_events_topic(caller: Caller) -> None:
    """A wrong password for a real user and one for a name nobody has publish events that are the
    same bytes apart from ids, timestamp and the name's keyed digest, which names the name typed (no user
    id, no name) and keys the record."""
    registered = await caller.register(new_password())
    unknown_name, wrong_name = new_user_name(), registered["user_name"].upper()

    [unknown] = on(await caller.attempt(unknown_name, new_password()), IDENTITY_EVENTS)
    [wrong] = on(await caller.attempt(wrong_name, new_password()), IDENTITY_EVENTS)

    for record, typed in ((unknown, unknown_name), (wrong, wrong_name)):
        assert record.type == FAILED
        assert record["user_name_digest"] == session_digests().user_name(typed) == (record.key or b"").decode()
        assert "user_id" not in record.document and "user_name" not in record.document
    assert without_ids(unknown, "user_name_digest") == without_ids(wrong, "user_name_digest")


def without_ids(record: Published, *others: str) -> tuple[bytes, list[tuple[str, str]]]:
    """The record's value and headers with its ids and timestamp (and the ``others`` fields)
    blanked out, and its signature, which covers them, kept only as its length."""
    value, headers = record.value, sorted(record.headers.items())
    for field in ("event_id", "correlation_id", "causation_id", "occurred_at", *others):
        found = str(record.document[field])
        value = value.replace(found.encode(), field.encode())
        headers = [(k, v.replace(found, field)) for k, v in headers]
    return value, [(k, f"{len(v)} bytes" if k == "signgate-signature" else v) for k, v in headers]


async def test_a_user_name_is_registered_once_whatever_its_case(caller: Caller) -> None:
    """Registering " JDOE@..." after "jdoe@..." is a 409."""
    name = (await caller.register())["user_name"]
    outcome = await caller.admin(RegisterUser(user_name=f"  {name.upper()} ", accounts=[ACCOUNT]))

    assert (outcome["status"], outcome["code"]) == (409, "user_exists")


async def test_registering_needs_exactly_one_primary_account(caller: Caller) -> None:
    """Two primary accounts are a 400 naming `accounts`."""
    second = AccountMembership(name="Second", context_identifier=uuid.uuid4(), is_primary=True)
    outcome = await caller.admin(RegisterUser(user_name=new_user_name(), accounts=[ACCOUNT, second]))

    assert (outcome["status"], outcome["code"], outcome["field"]) == (400, "invalid_accounts", "accounts")


async def test_a_too_short_password_is_refused_naming_the_field(caller: Caller) -> None:
    """Registering with a seven-character password is a 400 naming `password`."""
    outcome = await caller.admin(RegisterUser(user_name=new_user_name(), accounts=[ACCOUNT], password="seven77"))

    assert (outcome["status"], outcome["code"], outcome["field"]) == (400, "password_rejected", "password")


# -- lockout --


async def test_five_wrong_passwords_lock_and_the_right_one_then_answers_locked(caller: Caller) -> None:
    """Four wrong passwords do not lock; the fifth does (temporarily, for 5 minutes); then the right
    password answers "locked" and a wrong one still only "invalid credentials"."""
    password = new_password()
    name = (await caller.register(password))["user_name"]

    four = await caller.fail(name, 4)
    fifth = await caller.fail(name, 1)
    right = await caller.authenticate(name, password)
    wrong = await caller.authenticate(name, new_password())

    assert of_type(four, LOCKED_OUT) == [] and len(of_type(four, FAILED)) == 4
    [failed], [locked_out] = of_type(fifth, FAILED), of_type(fifth, LOCKED_OUT)
    assert failed["reasons"] == ["invalid_credentials"]
    assert (locked_out["mode"], locked_out["consecutive_failures"]) == ("temporary", 5)
    assert at(locked_out["locked_until"]) - at(locked_out["occurred_at"]) == timedelta(minutes=5)
    assert [r["code"] for r in right["reasons"]] == ["account_locked"]
    assert [r["code"] for r in wrong["reasons"]] == ["invalid_credentials"]


async def test_a_temporary_lock_ends_after_its_wait_and_a_success_resets_the_count(caller: Caller) -> None:
    """After the lock's wait the right password gets a token, and four new failures do not lock again."""
    password = new_password()
    name = (await caller.register(password))["user_name"]
    [locked_out] = of_type(await caller.fail(name, 5), LOCKED_OUT)
    caller.clock.advance(at(locked_out["locked_until"]) - at(locked_out["occurred_at"]) + timedelta(seconds=1))

    await caller.token(name, password)
    again = await caller.fail(name, 4)
    await caller.token(name, password)

    assert of_type(again, LOCKED_OUT) == []


async def test_a_redis_flush_unlocks_nobody(caller: Caller) -> None:
    """With every Redis key of the deployment gone, a locked user is still locked."""
    password = new_password()
    name = (await caller.register(password))["user_name"]
    assert of_type(await caller.fail(name, 5), LOCKED_OUT)

    await caller.stack.forget_redis()
    reply = await caller.authenticate(name, password)

    assert [r["code"] for r in reply["reasons"]] == ["account_locked"]


async def test_temporary_lockouts_turn_hard_before_100_failures_in_a_row(caller: Caller) -> None:
    """Failing again after each temporary lockout is waited out, the waits double (up to a day)
    and the lock turns hard at the 100th failure in a row; only an administrator's unlock lets
    the user in again."""
    password = new_password()
    name = (await caller.register(password))["user_name"]
    caller.clock.tick = timedelta(days=1, seconds=1)  # every attempt comes after any lock's end
    try:
        published = await caller.fail(name, 100)
        while_hard = await caller.authenticate(name, password)
    finally:
        caller.clock.tick = timedelta(0)
    unlocked = await caller.admin(UnlockUser(user_name=name))
    token = await caller.token(name, password)

    lockouts = of_type(published, LOCKED_OUT)
    waits = [at(e["locked_until"]) - at(e["occurred_at"]) for e in lockouts[:-1]]
    assert [e["consecutive_failures"] for e in lockouts] == list(range(5, 101, 5))
    assert [e["mode"] for e in lockouts] == ["temporary"] * 19 + ["hard"]
    assert waits[:4] == [timedelta(minutes=m) for m in (5, 10, 20, 40)]
    assert waits[-1] == timedelta(hours=24)
    assert lockouts[-1]["locked_until"] is None
    assert [r["code"] for r in while_hard["reasons"]] == ["account_locked"]
    assert unlocked["type"] == "identity.user_unlocked_v2"
    assert token


# -- account states, seen by another service --


async def test_a_disabled_users_token_is_refused_by_another_services_verifier(
    caller: Caller, authentication: ComponentService
) -> None:
    """Once identity disables a user, the authentication service (fed identity's events) refuses
    their token with 403 "Account is disabled"; enabled again, the old token stays revoked and a new
    one works."""
    password = new_password()
    registered = await caller.register(password)
    name, user_id = registered["user_name"], registered["user_id"]
    token = await caller.token(name, password)
    verifier = caller.verifier(PostgresAccountStates(authentication.pool))
    await verifier.verify(token)

    disabling = await caller.events_of(DisableUser(user_name=name, access_token=SecretStr(caller.admin_token())))
    await authentication.handle_published(disabling)
    with pytest.raises(AccountDisabled) as refused:
        await verifier.verify(token)
    disabled_login = await caller.authenticate(name, password)
    wrong_while_disabled = await caller.authenticate(name, new_password())

    enabling = await caller.events_of(EnableUser(user_name=name, access_token=SecretStr(caller.admin_token())))
    await authentication.handle_published(enabling)
    with pytest.raises(AuthorizationDenied):
        await verifier.verify(token)
    fresh = await caller.token(name, password)

    assert ([e.type for e in disabling], [e.type for e in enabling]) == (
        ["identity.user_disabled_v2"], ["identity.user_enabled_v2"])
    assert (refused.value.status, refused.value.message) == (403, "Account is disabled")
    assert [r["code"] for r in disabled_login["reasons"]] == ["account_disabled"]
    assert [r["code"] for r in wrong_while_disabled["reasons"]] == ["invalid_credentials"]
    assert (await verifier.verify(fresh)).subject == user_id


async def test_a_password_change_revokes_earlier_tokens_everywhere(
    caller: Caller, authentication: ComponentService
) -> None:
    """After a user changes their password, the authentication service (fed identity's events)
    denies tokens issued before, and the old password no longer logs in."""
    password, new = new_password(), new_password()
    registered = await caller.register(password)
    name = registered["user_name"]
    old_token = await caller.token(name, password)

    changing = await caller.events_of(ChangePassword(user_name=name, current_password=password, new_password=new))
    await authentication.handle_published(changing)
    old_login = await caller.authenticate(name, password)
    await caller.token(name, new)

    [changed] = changing
    assert (changed["type"], changed["changed_by"]) == ("identity.password_changed_v2", "user")
    with pytest.raises(AuthorizationDenied):
        await caller.verifier(PostgresAccountStates(authentication.pool)).verify(old_token)
    assert [r["code"] for r in old_login["reasons"]] == ["invalid_credentials"]


# -- passwords --


async def test_an_expired_password_is_told_only_with_the_right_password_and_a_change_cures_it(caller: Caller) -> None:
    """After "expire now" the right password answers `password_expired` with the expired-password
    URL, a wrong one only `invalid_credentials`; changing the password lets the user in."""
    password, new = new_password(), new_password()
    name = (await caller.register(password))["user_name"]
    expired = await caller.admin(ExpirePassword(user_name=name))

    right = await caller.authenticate(name, password)
    wrong = await caller.authenticate(name, new_password())
    changed = await caller.outcome(ChangePassword(user_name=name, current_password=password, new_password=new))

    assert expired["type"] == "identity.password_expired_v2"
    assert [r["code"] for r in right["reasons"]] == ["password_expired"]
    assert right["expired_password_url"] == expired_url(name)
    assert [r["code"] for r in wrong["reasons"]] == ["invalid_credentials"]
    assert wrong["expired_password_url"] is None
    assert changed["type"] == "identity.password_changed_v2"
    assert await caller.token(name, new)


async def test_a_password_set_by_an_administrator_must_be_changed(caller: Caller) -> None:
    """A password an administrator set answers `change_required` with the change-password URL."""
    name = (await caller.register())["user_name"]
    password = new_password()
    changed = await caller.admin(SetPassword(user_name=name, password=password))

    reply = await caller.authenticate(name, password)

    assert (changed["changed_by"], changed["must_change_password"]) == ("administrator", True)
    assert [r["code"] for r in reply["reasons"]] == ["change_required"]
    assert reply["change_password_url"] == change_url(name)


async def test_a_wrong_current_password_refuses_the_change_and_counts_as_a_failure(caller: Caller) -> None:
    """Changing a password with a wrong current one is a 401 and a counted authentication failure."""
    name = (await caller.register(new_password()))["user_name"]

    rejected, failed = await caller.events_of(ChangePassword(user_name=name, current_password=new_password(),
                                                             new_password=new_password()))

    assert (rejected["type"], rejected["status"], rejected["code"]) == ("command.rejected", 401, "invalid_credentials")
    assert (failed["type"], failed["reasons"]) == (FAILED, ["invalid_credentials"])


# -- administration --


async def test_administrative_commands_need_an_administrators_token(caller: Caller) -> None:
    """No token is 401 "User authentication required", a forged one 401 "Request authorization
    denied", and a plain user's 403."""
    password = new_password()
    name = (await caller.register(password))["user_name"]
    user_token = await caller.token(name, password)
    forged = TokenIssuer(generate_key_pair().private_key).issue("operator:x", "x", roles=["admin"]).token

    outcomes = [await caller.outcome(DisableUser(user_name=name, access_token=token))
                for token in (None, forged, user_token)]

    assert [(o["status"], o["message"]) for o in outcomes] == [
        (401, "User authentication required"),
        (401, "Request authorization denied"),
        (403, "User is not allowed to perform this action"),
    ]


async def test_a_disabled_administrators_token_is_refused(caller: Caller) -> None:
    """An administrator who has been disabled can no longer use their token: 403 "Account is disabled"."""
    password = new_password()
    name = (await caller.register(password, roles=["admin"]))["user_name"]
    token = await caller.token(name, password)
    await caller.admin(DisableUser(user_name=name))

    outcome = await caller.outcome(RegisterUser(user_name=new_user_name(), accounts=[ACCOUNT], access_token=token))

    assert (outcome["status"], outcome["code"], outcome["message"]) == (403, "account_disabled", "Account is disabled")


# -- API keys --


ISSUED_KEY, KEY_TOKEN = "identity.issued_api_key", "identity.api_key_token"


async def issue_key(caller: Caller, name: str, token: str, **fields: Any) -> tuple[dict[str, Any], list[Published]]:
    """Issue a key of ``name`` with ``token``; the reply on the caller's topic and all identity published."""
    published = await caller.identity.handle(IssueApiKey(user_name=name, name=fields.pop("label", "CI"),
                                                         access_token=token, reply_to=caller.reply_to, **fields))
    [reply] = on(published, caller.reply_to)
    return reply.document, published


async def exchange(caller: Caller, api_key: str) -> tuple[dict[str, Any], list[Published]]:
    """Exchange ``api_key``: the reply (or the rejection) and all identity published."""
    published = await caller.identity.handle(ExchangeApiKey(api_key=api_key, reply_to=caller.reply_to))
    replies = on(published, caller.reply_to)
    if replies:
        return replies[0].document, published
    [rejected] = on(published, IDENTITY_EVENTS)
    return rejected.document, published


async def test_an_api_key_is_told_once_stored_as_a_digest_and_exchanged_for_a_token_of_its_account(
    caller: Caller, identity: ComponentService
) -> None:
    """A user's own token issues a key for one of their accounts: the key reaches only the caller's
    reply topic and is stored as a keyed digest; its exchange gives a 15-minute token of that user
    and account only, with no roles; the list shows ids, names and times, never the key or digest."""
    password = new_password()
    registered = await caller.register(password, accounts=[ACCOUNT, OTHER_ACCOUNT], roles=["admin"])
    name, user_id = registered["user_name"], registered["user_id"]
    own_token = await caller.token(name, password)

    issued, issuing = await issue_key(caller, name, own_token, label="Nightly sync", account=OTHER_ACCOUNT.context_identifier)
    api_key = issued["api_key"]
    async with identity.pool.acquire() as connection:
        stored = await connection.fetchrow("SELECT * FROM api_keys WHERE id = $1", uuid.UUID(issued["key_id"]))
    token_reply, exchanging = await exchange(caller, api_key)
    claims = await caller.verifier().verify(token_reply["access_token"])
    listing = await caller.identity.handle(ListApiKeys(user_name=name, access_token=own_token, reply_to=caller.reply_to))
    [listed] = on(listing, caller.reply_to)

    assert issued["type"] == ISSUED_KEY and api_key.startswith("sgk_") and len(api_key) == 79
    assert issued["key_id"] == str(uuid.UUID(hex=api_key[4:36]))
    assert (issued["name"], issued["account"]) == ("Nightly sync", str(OTHER_ACCOUNT.context_identifier))
    [issued_event] = on(issuing, IDENTITY_EVENTS)
    assert (issued_event.type, issued_event["user_id"], issued_event["key_id"], issued_event["issued_by"]) == (
        "identity.api_key_issued", user_id, issued["key_id"], "user")
    assert stored is not None and api_key not in dict(stored).values()
    assert stored["digest"] == hmac.new(caller.stack.pepper.encode(), b"signgate-api-key\x00" + api_key.encode(),
                                        hashlib.sha256).hexdigest()
    assert token_reply["type"] == KEY_TOKEN
    assert (claims.subject, claims.accounts, claims.primary_account, claims.roles) == (
        user_id, (str(OTHER_ACCOUNT.context_identifier),), str(OTHER_ACCOUNT.context_identifier), ())
    assert claims.expires_at - claims.issued_at == timedelta(minutes=15)
    [exchanged] = on(exchanging, IDENTITY_EVENTS)
    assert (exchanged.type, exchanged["key_id"], exchanged["token_id"]) == (
        "identity.api_key_exchanged", issued["key_id"], str(claims.token_id))
    [summary] = listed["keys"]
    assert listed["type"] == "identity.api_keys_listed"
    assert set(summary) == {"key_id", "name", "account", "created_at", "last_used_at", "revoked_at"}
    assert summary["last_used_at"] is not None and summary["revoked_at"] is None
    secrets_ = [api_key, stored["digest"], token_reply["access_token"]]
    not_to_caller = [p for p in [*issuing, *exchanging, *listing] if p.deployed != caller.reply_to]
    assert not_to_caller and leaks((p.value.decode() for p in not_to_caller), secrets_) == []
    assert leaks((p.value.decode() for p in listing), secrets_) == []
    assert all(api_key not in (p.key or b"").decode() for p in [*issuing, *exchanging])


async def test_a_revoked_an_unknown_and_a_wrong_key_are_refused_alike_and_a_second_revoke_conflicts(caller: Caller) -> None:
    """After its revocation a key's exchange is a 401 "Invalid API key", as for a key nobody was
    issued and for a real key id with a wrong secret; revoking it again is a 409; the list hides it
    unless asked for revoked keys."""
    password = new_password()
    name = (await caller.register(password))["user_name"]
    token = await caller.token(name, password)
    issued, _ = await issue_key(caller, name, token)
    before, _ = await exchange(caller, issued["api_key"])

    revoked = await caller.outcome(RevokeApiKey(user_name=name, key_id=issued["key_id"], access_token=token))
    after, _ = await exchange(caller, issued["api_key"])
    unknown, _ = await exchange(caller, f"sgk_{uuid.uuid4().hex}{'x' * 43}")
    wrong, _ = await exchange(caller, issued["api_key"][:36] + "y" * 43)
    not_a_key, _ = await exchange(caller, "hello")
    again = await caller.outcome(RevokeApiKey(user_name=name, key_id=issued["key_id"], access_token=token))
    [active] = on(await caller.identity.handle(ListApiKeys(user_name=name, access_token=token, reply_to=caller.reply_to)),
                  caller.reply_to)
    [every] = on(await caller.identity.handle(ListApiKeys(user_name=name, include_revoked=True, access_token=token,
                                                          reply_to=caller.reply_to)), caller.reply_to)

    assert before["type"] == KEY_TOKEN
    assert (revoked["type"], revoked["key_id"], revoked["revoked_by"]) == ("identity.api_key_revoked", issued["key_id"], "user")
    for refused in (after, unknown, wrong, not_a_key):
        assert (refused["type"], refused["status"], refused["code"], refused["message"]) == (
            "command.rejected", 401, "invalid_api_key", "Invalid API key")
    assert (again["status"], again["code"]) == (409, "api_key_revoked")
    assert active["keys"] == [] and [k["key_id"] for k in every["keys"]] == [issued["key_id"]]
    assert every["keys"][0]["revoked_at"] is not None


async def test_a_disabled_users_key_is_refused_and_works_again_once_enabled(caller: Caller) -> None:
    """An administrator issues a key for a user; while the user is disabled its exchange is a 403
    "Account is disabled", and once enabled it gives a token again."""
    name = (await caller.register(new_password()))["user_name"]
    issued, _ = await issue_key(caller, name, caller.admin_token())
    await caller.admin(DisableUser(user_name=name))

    disabled, _ = await exchange(caller, issued["api_key"])
    await caller.admin(EnableUser(user_name=name))
    enabled, _ = await exchange(caller, issued["api_key"])

    assert (disabled["status"], disabled["code"], disabled["message"]) == (403, "account_disabled", "Account is disabled")
    assert enabled["type"] == KEY_TOKEN


async def test_only_the_user_or_an_administrator_manages_a_users_keys_and_only_for_their_accounts(caller: Caller) -> None:
    """Another user's token may not issue, list or revoke someone's keys (403); the user's own token
    cannot issue a key for an account they are not a member of, nor a key's token (bound to one
    account) for another of the user's accounts (400 naming `account`); an administrator's issue is
    recorded as such."""
    password, other_password = new_password(), new_password()
    name = (await caller.register(password, accounts=[ACCOUNT, OTHER_ACCOUNT]))["user_name"]
    other = (await caller.register(other_password))["user_name"]
    other_token = await caller.token(other, other_password)
    issued, published = await issue_key(caller, name, caller.admin_token())

    foreign = [await caller.outcome(command) for command in (
        IssueApiKey(user_name=name, name="x", access_token=other_token, reply_to=caller.reply_to),
        ListApiKeys(user_name=name, access_token=other_token, reply_to=caller.reply_to),
        RevokeApiKey(user_name=name, key_id=issued["key_id"], access_token=other_token),
    )]
    own = await caller.token(name, password)
    elsewhere = await caller.outcome(IssueApiKey(user_name=name, name="x", account=uuid.uuid4(),
                                                 access_token=own, reply_to=caller.reply_to))
    not_theirs = await caller.outcome(RevokeApiKey(user_name=other, key_id=issued["key_id"],
                                                   access_token=caller.admin_token()))
    key_token = (await exchange(caller, issued["api_key"]))[0]["access_token"]
    other_account = await caller.outcome(IssueApiKey(user_name=name, name="x", account=OTHER_ACCOUNT.context_identifier,
                                                     access_token=key_token, reply_to=caller.reply_to))
    same_account, _ = await issue_key(caller, name, key_token)

    assert [(o["status"], o["code"]) for o in foreign] == [(403, "not_an_administrator")] * 3
    assert (elsewhere["status"], elsewhere["code"], elsewhere["field"]) == (400, "invalid_accounts", "account")
    assert (not_theirs["status"], not_theirs["code"]) == (404, "api_key_not_found")
    assert (other_account["status"], other_account["field"]) == (400, "account")
    assert (same_account["type"], same_account["account"]) == (ISSUED_KEY, str(ACCOUNT.context_identifier))
    assert on(published, IDENTITY_EVENTS)[0]["issued_by"] == "administrator"
