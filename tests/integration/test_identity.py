"""The identity service on a real broker, Postgres and Redis: users, authentication, lockout,
tokens every service trusts, and no secret anywhere it should not be.

One identity service and one authentication service (whose account-state projection shows
another service refusing a disabled user's token, and whose profile projection sends a signer's
code to their mobile number) run for the whole module; every test uses users of its own. The
module's clock is injected into identity and only moves forward.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord
from pydantic import SecretStr

from libs.runtime.service import Service, build_service
from libs.runtime.settings import ConnectionSettings
from libs.security.accounts import PostgresAccountStates
from libs.security.otp_store import OtpStoreSettings
from libs.security.secrets import SecretSettings, generate_pepper
from libs.security.tokens import (
    AuthorizationDenied,
    KeyPair,
    TokenIssuer,
    TokenSettings,
    TokenVerifier,
    generate_key_pair,
)
from libs.tools.topics_admin import create_topics
from services.authentication.app import DEFINITION as AUTHENTICATION
from services.authentication.app import AuthenticationSettings
from services.identity import repository as identity_repository
from services.identity.app import DEFINITION as IDENTITY
from services.identity.app import IdentitySettings
from signgate_contracts import Command, Message, Topic, TopicKind, encode
from signgate_contracts import authentication as auth
from signgate_contracts import workflow as wf
from signgate_contracts.identity import (
    PUBLISHED_EVENTS,
    AccountMembership,
    AuthenticateUser,
    RegisterUser,
    UpdateUser,
    UpdateUserProfile,
    UserProfileUpdated,
    normalise_user_name,
    user_mobile_context,
)
from signgate_contracts.topics import (
    AUTHENTICATION_COMMANDS,
    IDENTITY_COMMANDS,
    IDENTITY_EVENTS,
    IDENTITY_REPLIES,
    OTP_REQUESTS,
    WORKFLOW_EVENTS,
)
from tests.support.clock import MovableClock
from tests.support.kafka import TopicWatcher, correlated, document
from tests.support.signing import authentication_opener, session_digests, signed_headers
from tests.support.waiting import until

CALLER_REPLIES = Topic("signgate.replies.test-identity", TopicKind.REPLIES, "user name", 1,
                       timedelta(hours=1), (), "A caller's own reply topic.")
PORTAL = "https://portal.signgate.example"
"""The portal the module's identity service names in AuthenticateUser's password URLs."""
ACCOUNT = AccountMembership(name="Example, Inc.", context_identifier=uuid.uuid4(), is_primary=True)
OTHER_ACCOUNT = AccountMembership(name="Other Co", context_identifier=uuid.uuid4())

PASSWORDS: set[str] = set()
"""Every password used in this module: none may appear in an event, a dead letter or a log line."""
TOKENS: set[str] = set()
"""Every token issued in this module: only a reply may carry one."""
CONTACTS: set[str] = set()
"""Every email and mobile number given to identity in this module, as given and as stored: none
may appear in clear on the events topic."""
USER_NAMES: set[str] = set()
"""Every user name sent to identity in this module (registered or not): none may appear on the
events topic, in a record or in its key."""
STAND_INS: set[str] = set()
"""The event ids of records a test published on identity's events topic in identity's stead (the
first shapes): not what identity published."""


def new_password() -> str:
    password = f"pw-{uuid.uuid4().hex}"
    PASSWORDS.add(password)
    return password


def new_user_name() -> str:
    name = f"User-{uuid.uuid4().hex[:10]}@Example.com"
    USER_NAMES.update((name, normalise_user_name(name)))
    return name


def contact(*forms: str) -> str:
    """An email or mobile number given to identity, remembered in each form it may take."""
    CONTACTS.update(forms)
    return forms[0]


def expired_url(user_name: str) -> str:
    return f"{PORTAL}/password/expired?user_name={quote(user_name, safe='')}"


def change_url(user_name: str) -> str:
    return f"{PORTAL}/password/change?user_name={quote(user_name, safe='')}"


# -- the services, and a caller of them --


@pytest.fixture(scope="module")
def keys() -> KeyPair:
    return generate_key_pair()


@pytest.fixture(scope="module")
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture(scope="module")
async def identity_connections(provisioned: ConnectionSettings) -> ConnectionSettings:
    await create_topics(provisioned, [CALLER_REPLIES])
    return provisioned


class Caller:
    """Sends commands as an upstream system would and reads their outcomes, replies and effects."""

    def __init__(self, connections: ConnectionSettings, producer: AIOKafkaProducer,
                 watcher: TopicWatcher, keys: KeyPair, clock: MovableClock) -> None:
        self.connections = connections
        self.producer = producer
        self.watcher = watcher
        self.keys = keys
        self.clock = clock
        self.events = connections.topic(IDENTITY_EVENTS.name)
        self.replies = connections.topic(IDENTITY_REPLIES.name)
        self.reply_to = connections.topic(CALLER_REPLIES.name)

    def admin_token(self) -> str:
        """An operator's token with the admin role, as ``libs.tools.operator_token`` mints."""
        return TokenIssuer(self.keys.private_key, clock=self.clock).issue(
            "operator:tests", "operator:tests", roles=["admin"]).token

    def verifier(self, states=None) -> TokenVerifier:
        return TokenVerifier(self.keys.public_key, states=states, clock=self.clock)

    async def send(self, *commands: Command) -> None:
        for command in commands:
            key = normalise_user_name(command.user_name).encode()  # type: ignore[attr-defined]
            await self.producer.send_and_wait(self.connections.topic(IDENTITY_COMMANDS.name),
                                              encode(command), key=key)

    async def on(self, topic: str, command: Command, *, count: int = 1) -> list[ConsumerRecord]:
        return await self.watcher.wait_for(
            lambda r: r.topic == topic and correlated(r, command.correlation_id), count=count)

    async def outcome(self, command: Command) -> dict[str, Any]:
        """The first message on the events topic caused by ``command``."""
        return document((await self.on(self.events, command))[0])

    async def events_of(self, command: Command, count: int) -> list[dict[str, Any]]:
        return [document(r) for r in await self.on(self.events, command, count=count)]

    async def events_by_type(self, command: Command, count: int) -> dict[str, dict[str, Any]]:
        """The events ``command`` caused, by type: a failure (keyed by the name's digest) and the
        lockout it caused (keyed by the user id) are in two partitions, in no given order."""
        return {event["type"]: event for event in await self.events_of(command, count)}

    async def admin(self, command: Command) -> dict[str, Any]:
        """Send an administrative command with an admin token; its outcome."""
        command = command.model_copy(update={"access_token": SecretStr(self.admin_token())})
        await self.send(command)
        return await self.outcome(command)

    async def register(self, password: str | None = None, **fields: Any) -> dict[str, Any]:
        """The registration's event, with the (normalised) user name registered, which the event
        does not carry."""
        command = RegisterUser(
            user_name=fields.pop("user_name", new_user_name()), first_name="Jane", last_name="Doe",
            accounts=fields.pop("accounts", [ACCOUNT]), password=password, **fields,
        )
        registered = await self.admin(command)
        assert registered["type"] == "identity.user_registered_v2", registered
        return {**registered, "user_name": normalise_user_name(command.user_name)}

    async def authenticate(self, user_name: str, password: str, *, reply_to: str | None = None,
                           wait: bool = True) -> dict[str, Any]:
        """Authenticate and return the reply (on the caller's own topic by default)."""
        command = AuthenticateUser(user_name=user_name, password=password,
                                   reply_to=reply_to or self.reply_to)
        await self.send(command)
        if not wait:
            return {}
        [record] = await self.on(command.reply_to, command)  # type: ignore[arg-type]
        reply = document(record)
        if reply.get("access_token"):
            TOKENS.add(reply["access_token"])
        return reply

    async def token(self, user_name: str, password: str) -> str:
        reply = await self.authenticate(user_name, password)
        assert reply["type"] == "identity.authentication_succeeded", reply
        return reply["access_token"]

    async def owned_package(self, owner_id: str) -> str:
        """A package of ``owner_id``'s, with one document, as the workflow service announces it."""
        package_id = f"pkg-{uuid.uuid4().hex[:8]}"
        recipient = wf.RecipientSummary(order=1, name="Sam", role="signer", email_masked="s***@example.com",
                                        email_digest=session_digests().email("sam@example.com"))
        facts = [
            wf.PackageRegistered(package_id=package_id, owner_id=owner_id, name="Lease", workflow_type="sequential",
                                 documents=[wf.DocumentSummary(document_id="doc-1", name="lease.pdf")],
                                 recipients=[recipient]),
            wf.WorkflowShared(package_id=package_id, workflow_type="sequential", shared_at=datetime.now(UTC)),
        ]
        topic = self.connections.topic(WORKFLOW_EVENTS.name)
        for fact in facts:
            value = encode(fact)
            await self.producer.send_and_wait(topic, value, key=package_id.encode(),
                                              headers=signed_headers("workflow", topic, package_id.encode(), value))
        return package_id

    async def publish_as_identity(self, key: str, event: Message) -> None:
        """Publish ``event`` on identity's events topic, signed as identity signs."""
        topic, value = self.events, encode(event)
        STAND_INS.add(str(event.event_id))
        await self.producer.send_and_wait(topic, value, key=key.encode(),
                                          headers=signed_headers("identity", topic, key.encode(), value))

    async def request_signing_otp(self, package_id: str, token: str) -> dict[str, Any]:
        """Ask for a signer's code for a field of doc-1; the delivery the authentication service requests."""
        command = auth.RequestSigningOtp(package_id=package_id, document_id="doc-1", field_name="signature-1",
                                         access_token=token)
        await self.producer.send_and_wait(self.connections.topic(AUTHENTICATION_COMMANDS.name), encode(command),
                                          key=package_id.encode())
        [record] = await self.on(self.connections.topic(OTP_REQUESTS.name), command)
        return document(record)


class LogCapture(logging.Handler):
    """Every log line the services write, rendered by their own (redacting) formatter."""

    def __init__(self, formatter: logging.Formatter | None) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(formatter)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(scope="module")
async def running(identity_connections: ConnectionSettings, keys: KeyPair,
                  clock: MovableClock) -> AsyncIterator[tuple[Service, Service, LogCapture]]:
    connections = identity_connections
    identity = build_service(IDENTITY, IdentitySettings(
        connections=connections, retry_first_delay=0.01, outbox_poll_interval=0.2,
        secrets=SecretSettings(pepper=generate_pepper()),
        tokens=TokenSettings(private_key=keys.private_key, public_key=keys.public_key),
        portal_url=PORTAL, clock=clock,
    ))
    authentication = build_service(AUTHENTICATION, AuthenticationSettings(
        connections=connections, retry_first_delay=0.01, outbox_poll_interval=0.2,
        tokens=TokenSettings(public_key=keys.public_key), secrets=SecretSettings(pepper=generate_pepper()),
        otp_store=OtpStoreSettings(pepper=generate_pepper()), clock=clock,  # it verifies identity's tokens
    ))
    root = logging.getLogger()
    capture = LogCapture(root.handlers[0].formatter if root.handlers else None)
    root.addHandler(capture)
    try:
        async with contextlib.AsyncExitStack() as stack:
            # Started together: each joins its consumer group, which takes the broker seconds.
            await asyncio.gather(*(stack.enter_async_context(s.app) for s in (identity, authentication)))
            yield identity, authentication, capture
    finally:
        root.removeHandler(capture)


@pytest.fixture(scope="module")
async def caller(running, identity_connections: ConnectionSettings, keys: KeyPair,
                 clock: MovableClock) -> AsyncIterator[Caller]:
    connections = identity_connections
    topics = [connections.topic(t) for t in (
        IDENTITY_EVENTS.name, IDENTITY_REPLIES.name, CALLER_REPLIES.name, IDENTITY_COMMANDS.dlq,
        OTP_REQUESTS.name)]
    producer = AIOKafkaProducer(bootstrap_servers=connections.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        async with TopicWatcher(connections.kafka_bootstrap, *topics) as watcher:
            yield Caller(connections, producer, watcher, keys, clock)
    finally:
        await producer.stop()


@pytest.fixture(scope="module")
def authentication_states(running) -> PostgresAccountStates:
    """The authentication service's projection of account states (its own schema)."""
    _identity, authentication, _logs = running
    return PostgresAccountStates(authentication.resources.pool)


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


# -- registering and authenticating --


async def test_the_token_expires_after_30_minutes(caller: Caller) -> None:
    """A token identity issued is accepted until 30 minutes after issue, and denied from then on."""
    password = new_password()
    registered = await caller.register(password)
    reply = await caller.authenticate(registered["user_name"], password)
    issued_at = at(reply["occurred_at"])

    just_before = TokenVerifier(caller.keys.public_key, clock=lambda: issued_at + timedelta(minutes=30, microseconds=-1))
    at_expiry = TokenVerifier(caller.keys.public_key, clock=lambda: issued_at + timedelta(minutes=30))

    await just_before.verify(reply["access_token"])
    with pytest.raises(AuthorizationDenied):
        await at_expiry.verify(reply["access_token"])


def without_ids(record: ConsumerRecord, *others: str) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The record's value and headers with its ids and timestamp (and the ``others`` fields)
    blanked out, and its signature, which covers them, kept only as its length."""
    body = document(record)
    value, headers = record.value, list(record.headers)
    for field in ("event_id", "correlation_id", "causation_id", "occurred_at", *others):
        value = value.replace(str(body[field]).encode(), field.encode())
        headers = [(k, v.replace(str(body[field]).encode(), field.encode())) for k, v in headers]
    headers = [(k, b"%d bytes" % len(v) if k == "signgate-signature" else v) for k, v in headers]
    return value, headers


# -- lockout --


async def _disabled(states: PostgresAccountStates, user_id: str, disabled: bool) -> bool:
    state = await states.get(user_id)
    return state is not None and state.disabled is disabled


async def test_a_user_updates_their_own_profile_with_a_validated_mobile_number(caller: Caller) -> None:
    """With their own token a user sets their profile; the event shows the email and the mobile
    number masked and the email as a keyed digest, and carries the number (E.164) sealed to the
    authentication service, which opens it as this user's number."""
    password = new_password()
    registered = await caller.register(password)
    name = registered["user_name"]
    token = await caller.token(name, password)
    email = contact("Janet@Example.COM", "Janet@example.com")
    mobile = contact("+1 415-555-0123", "+14155550123", "4155550123")
    command = UpdateUserProfile(user_name=name, first_name="Janet", last_name="Dough",
                                email=email, mobile_number=mobile, access_token=token)
    await caller.send(command)

    updated, changed = await caller.events_of(command, 2)
    reply = await caller.authenticate(name, password)

    assert (updated["type"], updated["user_id"], updated["changed_by"]) == (
        "identity.user_profile_updated_v2", registered["user_id"], "user")
    assert (updated["email_masked"], updated["mobile_masked"]) == ("J***@example.com", "+14*****0123")
    assert updated["email_digest"] == session_digests().email("janet@example.com")
    assert authentication_opener().open(user_mobile_context(registered["user_id"]),
                                        updated["mobile_sealed"]) == "+14155550123"
    assert (changed["type"], changed["old_mobile_masked"], changed["new_mobile_masked"]) == (
        "identity.user_mobile_number_changed", None, "+14*****0123")
    assert (reply["first_name"], reply["last_name"]) == ("Janet", "Dough")


async def test_a_change_of_the_mobile_number_is_recorded_and_announced_masked(caller: Caller, running) -> None:
    """Replacing the profile mobile number (by the user) and removing it (by an administrator) are
    each recorded by identity, from what to what and by whom, and announced with both numbers
    masked; giving the same number again is no change."""
    identity, _authentication, _logs = running
    password = new_password()
    first, second = contact("+447911123411"), contact("+447911123422")
    registered = await caller.register(password, mobile_number=first)
    name, user_id = registered["user_name"], registered["user_id"]
    token = await caller.token(name, password)
    replaced = UpdateUserProfile(user_name=name, mobile_number=second, access_token=token)
    same = UpdateUserProfile(user_name=name, mobile_number=second, access_token=token)
    removed = UpdateUserProfile(user_name=name, access_token=SecretStr(caller.admin_token()))
    await caller.send(replaced, same, removed)

    _updated, by_user = await caller.events_of(replaced, 2)
    _updated, by_administrator = await caller.events_of(removed, 2)  # after `same`: one partition, in order
    same_events = [document(r)["type"] for r in caller.watcher.matching(lambda r: correlated(r, same.correlation_id))]
    assert identity.resources.pool is not None
    async with identity.resources.pool.acquire() as connection:
        recorded = await identity_repository.select_mobile_number_changes(connection, uuid.UUID(user_id))

    assert registered["mobile_masked"] == "+44******3411"
    assert (by_user["type"], by_user["user_id"], by_user["changed_by"]) == (
        "identity.user_mobile_number_changed", user_id, "user")
    assert (by_user["old_mobile_masked"], by_user["new_mobile_masked"]) == ("+44******3411", "+44******3422")
    assert (by_administrator["changed_by"], by_administrator["old_mobile_masked"],
            by_administrator["new_mobile_masked"]) == ("administrator", "+44******3422", None)
    assert same_events == ["identity.user_profile_updated_v2"]
    assert [(c.old_number, c.new_number, c.changed_by, c.actor, c.correlation_id) for c in recorded] == [
        (first, second, "user", user_id, replaced.correlation_id),
        (second, None, "administrator", "operator:tests", removed.correlation_id),
    ]


async def test_the_authentication_service_sends_a_signers_code_to_their_profile_number(
    caller: Caller, running,
) -> None:
    """The authentication service opens the sealed number of identity's events: a signer's code for a
    signature field (seed 002) is requested for the mobile number in their profile, and, once they
    change it, for the new one."""
    _identity, authentication, _logs = running
    password = new_password()
    first, second = contact("+447911123433"), contact("+447911123444")
    registered = await caller.register(password, mobile_number=first)
    name, user_id = registered["user_name"], registered["user_id"]
    token = await caller.token(name, password)
    package_id = await caller.owned_package(user_id)

    await package_projected(authentication, package_id)
    await profile_number_projected(authentication, user_id, first)
    asked_first = await caller.request_signing_otp(package_id, token)
    change = UpdateUserProfile(user_name=name, mobile_number=second, access_token=token)
    await caller.send(change)
    await caller.events_of(change, 2)
    await profile_number_projected(authentication, user_id, second)
    asked_second = await caller.request_signing_otp(package_id, token)

    assert (asked_first["purpose"], asked_first["user_id"], asked_first["channel"]) == ("signing", user_id, "sms")
    assert (asked_first["destination"], asked_second["destination"]) == (first, second)


async def test_a_profile_in_the_first_shape_is_still_read_but_never_over_a_newer_one(caller: Caller, running) -> None:
    """While records of the first shapes are on the topic (keyed by user name, so on another partition
    than the user's new ones), the authentication service still applies a `user_profile_updated`, but
    not one older than the profile it holds."""
    _identity, authentication, _logs = running
    registered = await caller.register(new_password(), mobile_number=contact("+447911123455"))
    user_id, name = registered["user_id"], registered["user_name"]
    await profile_number_projected(authentication, user_id, "+447911123455")
    occurred = at(registered["occurred_at"])
    older = UserProfileUpdated(user_id=uuid.UUID(user_id), user_name=name, first_name="", last_name="",
                               mobile_number="+447911123466", occurred_at=occurred - timedelta(hours=1))
    newer = older.model_copy(update={"event_id": uuid.uuid4(), "mobile_number": "+447911123477",
                                     "occurred_at": occurred + timedelta(hours=1)})

    await caller.publish_as_identity(name, older)
    await processed_by(authentication, older.event_id)
    kept = await profile_number(authentication, user_id)
    await caller.publish_as_identity(name, newer)
    await profile_number_projected(authentication, user_id, "+447911123477")

    assert kept == "+447911123455"


async def processed_by(service: Service, event_id: uuid.UUID) -> None:
    pool = service.resources.pool
    assert pool is not None
    await until(lambda: pool.fetchval("SELECT count(*) = 1 FROM processed_messages WHERE event_id = $1", event_id),
                what=f"{event_id} handled by {service.definition.name}")


async def profile_number(service: Service, user_id: str) -> str | None:
    assert service.resources.pool is not None
    return await service.resources.pool.fetchval("SELECT mobile_number FROM user_profiles WHERE user_id = $1",
                                                 uuid.UUID(user_id))


async def package_projected(authentication: Service, package_id: str) -> None:
    pool = authentication.resources.pool
    assert pool is not None
    await until(lambda: pool.fetchval("SELECT count(*) = 1 FROM packages WHERE package_id = $1", package_id),
                what="the package in the authentication service")


async def profile_number_projected(authentication: Service, user_id: str, number: str) -> None:
    pool = authentication.resources.pool
    assert pool is not None
    await until(lambda: pool.fetchval("SELECT mobile_number = $2 FROM user_profiles WHERE user_id = $1",
                                      uuid.UUID(user_id), number),
                what="the profile's number in the authentication service")


async def test_an_invalid_mobile_number_or_anothers_profile_is_refused(caller: Caller) -> None:
    """A number that is no mobile number is a 400 naming the field; another user's profile a 403."""
    password = new_password()
    name = (await caller.register(password))["user_name"]
    other = (await caller.register(new_password()))["user_name"]
    token = await caller.token(name, password)
    invalid = UpdateUserProfile(user_name=name, mobile_number="12345", access_token=token)
    foreign = UpdateUserProfile(user_name=other, first_name="Mallory", access_token=token)
    await caller.send(invalid, foreign)

    refused_invalid, refused_foreign = await caller.outcome(invalid), await caller.outcome(foreign)

    assert (refused_invalid["status"], refused_invalid["field"]) == (400, "mobile_number")
    assert (refused_foreign["status"], refused_foreign["code"]) == (403, "not_an_administrator")


async def test_an_administrator_changes_a_users_accounts_and_the_next_token_carries_them(
    caller: Caller,
) -> None:
    """After UpdateUser moves the primary to another account, the next authentication lists the
    new accounts and the token names the new primary."""
    password = new_password()
    name = (await caller.register(password))["user_name"]
    moved = [ACCOUNT.model_copy(update={"is_primary": False}), OTHER_ACCOUNT.model_copy(update={"is_primary": True})]
    updated = await caller.admin(UpdateUser(user_name=name, accounts=moved, roles=["admin"]))

    reply = await caller.authenticate(name, password)
    claims = await caller.verifier().verify(reply["access_token"])

    assert (updated["type"], updated["roles"]) == ("identity.user_updated_v2", ["admin"])
    assert [(a["name"], a["is_primary"]) for a in reply["accounts"]] == [("Other Co", True), ("Example, Inc.", False)]
    assert claims.primary_account == str(OTHER_ACCOUNT.context_identifier)
    assert claims.roles == ("admin",)


async def test_a_command_of_an_unknown_type_is_dead_lettered_without_its_password(caller: Caller) -> None:
    """A misspelt command carrying a password lands in the DLQ with the password redacted."""
    password = new_password()
    correlation_id = str(uuid.uuid4())
    USER_NAMES.add("someone")
    body = {"type": "identity.authenticate_usr", "correlation_id": correlation_id,
            "user_name": "someone", "password": password}
    await caller.producer.send_and_wait(caller.connections.topic(IDENTITY_COMMANDS.name),
                                        json.dumps(body).encode(), key=b"someone")

    [dead] = await caller.watcher.wait_for(
        lambda r: r.topic.endswith(".dlq") and (document(r).get("payload") or {}).get("correlation_id") == correlation_id)

    assert document(dead)["payload"]["password"] == "[redacted]"


# -- last: nothing leaked during the whole module --


EMAIL_IN_CLEAR = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+\.[A-Za-z0-9.-]+")
"""An address with its local part: a masked one (``j***@example.com``) has none left."""
NUMBER_IN_CLEAR = re.compile(r"\+\d{7,}")
"""A phone number: a masked one (``+44******0123``) shows two digits after the ``+``."""
RECORD_KEY = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{64}")
"""A user id, or the keyed digest of a name given."""


async def test_the_events_topic_carries_no_contact_and_no_user_name(caller: Caller) -> None:
    """Across every test above, no email address or phone number (of those given, or of any), and no
    user name sent to identity, registered or not, appears on its events topic, in a record or in
    its key; every record is keyed by a user id or a keyed digest, and of a type identity publishes."""
    events = [r for r in caller.watcher.records
              if r.topic == caller.events and document(r)["event_id"] not in STAND_INS]
    assert events and CONTACTS and USER_NAMES and STAND_INS
    published = {message.model_fields["type"].default for message in PUBLISHED_EVENTS}
    found = []
    for record in events:
        key, value = (record.key or b"").decode(), record.value.decode()
        text = (key + " " + value).lower()
        found += [(key, given) for given in CONTACTS | USER_NAMES if given.lower() in text]
        found += [(key, match) for match in EMAIL_IN_CLEAR.findall(value) + NUMBER_IN_CLEAR.findall(value)]
        if not RECORD_KEY.fullmatch(key):
            found.append((key, "key"))
        if document(record)["type"] not in published:
            found.append((key, document(record)["type"]))
    assert not found


async def test_no_password_or_token_in_any_event_dead_letter_or_log_line(caller: Caller, running) -> None:
    """Across every test above, no password used appears on any identity topic or in any log line,
    and no token appears anywhere but in a reply."""
    _identity, _authentication, logs = running
    assert PASSWORDS and TOKENS and logs.lines
    leaks = []
    for record in caller.watcher.records:
        text = record.value.decode(errors="replace") + repr(record.headers)
        is_reply = record.topic in (caller.reply_to, caller.replies)
        for secret in PASSWORDS | (set() if is_reply else TOKENS):
            if secret in text:
                leaks.append((record.topic, secret[:12]))
    for line in logs.lines:
        leaks += [("log", secret[:12]) for secret in PASSWORDS | TOKENS if secret in line]
    assert not leaks
    assert any(re.search(r"identity\.user_registered_v2", r.value.decode()) for r in caller.watcher.records)
