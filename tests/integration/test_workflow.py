"""The workflow service on a real broker and Postgres: seed bodies and errors, lifecycle, queries,
history, unlocking one recipient, and a burst of commands applied in order."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from libs.runtime.service import Service, build_service
from libs.runtime.settings import ConnectionSettings
from libs.security.tokens import TokenIssuer
from libs.tools.topics_admin import create_topics
from services.workflow import repository
from services.workflow.app import DEFINITION
from signgate_contracts import Topic, TopicKind, encode
from signgate_contracts.authentication import (
    RecipientAuthenticated,
    RecipientAuthenticationFailed,
    RecipientLockedOut,
)
from signgate_contracts.identity import UserDisabledV2
from signgate_contracts.topics import AUTHENTICATION_EVENTS, IDENTITY_EVENTS, WORKFLOW_REPLIES
from signgate_contracts.workflow import (
    AddAuthentication,
    GetRecipientAuthentication,
    GetWorkflowHistory,
    LockWorkflow,
    RecordRecipientReceived,
    RecordRecipientSigned,
    RegisterPackage,
    ResetRecipientAuthentication,
    ShareWorkflow,
    TerminateWorkflow,
    UnlockWorkflow,
    UpdateRecipientAuthentication,
    sealed_policy_context,
)
from tests.support.signing import authentication_opener, signed_headers
from tests.support.waiting import until
from tests.support.workflow_burst import comparable, generate, new_prefix, outcome_types, reference
from tests.support.workflow_driver import Keys, User, WorkflowClient, workflow_client
from tests.support.workflow_seeds import BOLDSIGN_SAMPLES, BOLDSIGN_SIGNER, SIGNINGHUB_SAMPLE

CALLER_REPLIES = Topic("signgate.replies.test-workflow", TopicKind.REPLIES, "package_id", 1,
                       timedelta(minutes=15), (), "A caller's own reply topic.")


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


@pytest.fixture(scope="module")
def issuer(keys: Keys) -> TokenIssuer:
    return keys.issuer()


@pytest.fixture(scope="module")
async def workflow(provisioned: ConnectionSettings, keys: Keys) -> AsyncIterator[Service]:
    await create_topics(provisioned, [CALLER_REPLIES])
    service = build_service(DEFINITION, keys.settings(provisioned))
    async with service.app:
        yield service


@pytest.fixture(scope="module")
async def client(provisioned: ConnectionSettings, workflow: Service) -> AsyncIterator[WorkflowClient]:
    async with workflow_client(provisioned, provisioned.topic(CALLER_REPLIES.name)) as client:
        yield client


@pytest.fixture
def owner(issuer: TokenIssuer) -> User:
    return User.new(issuer, "owner")


def package_id() -> str:
    return f"pkg-{uuid.uuid4().hex[:12]}"


def registration(owner: User, *, workflow_type: str = "sequential", recipients: list[dict] | None = None
                 ) -> RegisterPackage:
    return RegisterPackage(
        package_id=package_id(), name="Lease", workflow_type=workflow_type, access_token=owner.token,
        documents=[{"document_id": "d-1", "name": "lease.pdf"}],
        recipients=recipients or [
            {"order": 1, "email": "first@example.com", "name": "First", "mobile_number": "+447700900001"},
            {"order": 2, "email": BOLDSIGN_SIGNER, "name": "Alex Gayle"},
        ],
    )


def sealed_part(event: dict[str, Any]) -> dict[str, Any]:
    """What the event's policy seals to the authentication service, opened as that service opens it."""
    context = sealed_policy_context(event["package_id"], event["order"], event["authentication_version"])
    return authentication_opener().open(context, event["authentication"]["sealed"])


async def registered(client: WorkflowClient, owner: User, **kwargs: Any) -> str:
    command = registration(owner, **kwargs)
    assert (await client.send(command))["type"] == "workflow.package_registered"
    return command.package_id


async def accepted(client: WorkflowClient, command: Any, count: int = 1) -> list[dict[str, Any]]:
    """Send a command that must succeed; its ``count`` events."""
    events = await client.send_expecting(command, count)
    assert events[0]["type"] != "command.rejected", events[0]
    return events


def raw_command(type_: str, package: str, token: str | None, body_text: str, **fields: Any) -> tuple[str, str]:
    """A command as JSON text with ``body_text`` spliced in verbatim; returns (text, correlation id)."""
    correlation_id = str(uuid.uuid4())
    envelope = {"type": type_, "package_id": package, "correlation_id": correlation_id,
                "event_id": str(uuid.uuid4()), "access_token": token, **fields}
    return json.dumps(envelope)[:-1] + ', "body": ' + body_text + "}", correlation_id


def rejection(outcome: dict[str, Any]) -> tuple[int, str]:
    assert outcome["type"] == "command.rejected", outcome
    return outcome["status"], outcome["message"]


async def stored(service: Service, package: str):
    assert service.resources.pool is not None
    async with service.resources.pool.acquire() as connection:
        return await repository.select_package(connection, package)


async def history_of(service: Service, package: str):
    assert service.resources.pool is not None
    async with service.resources.pool.acquire() as connection:
        return await repository.select_history(connection, package)


# -- the seeds' bodies, verbatim --


async def test_signinghub_sample_body_is_applied_verbatim(workflow: Service, client: WorkflowClient, owner: User) -> None:
    """The seed's SigningHub body, sent as is, keeps both recipients' passwords and gives them the
    date window (its "12:10:000Z" read as 12:10:00Z), published with the password only as a hash."""
    package = await registered(client, owner)
    await accepted(client, UpdateRecipientAuthentication(
        package_id=package, order=1, access_token=owner.token,
        body={"apply_to_all": True, "authentication": {"enabled": True, "password": {
            "enabled": True, "user_password": "Sesame-1"}}}))

    text, correlation_id = raw_command("workflow.update_recipient_authentication", package, owner.token,
                                       SIGNINGHUB_SAMPLE, order=1)
    events = await client.send_raw(text, package, correlation_id, 2)

    assert [(e["type"], e["order"]) for e in events] == [
        ("workflow.recipient_authentication_updated_v2", 1), ("workflow.recipient_authentication_updated_v2", 2)]
    for event in events:
        assert event["authentication"]["methods"] == ["password"]
        assert "$argon2" not in json.dumps(event)  # the hash travels sealed, for authentication only
        assert sealed_part(event)["secret_hash"].startswith("$argon2id$")
        assert event["access_window"] == {"starts_at": "2015-02-13T12:10:00Z", "ends_at": "2015-02-28T12:10:00Z",
                                          "days_after_receipt": None}
    assert "Sesame-1" not in json.dumps([json.loads(r.value) for r in client.watcher.records])
    recipient = (await stored(workflow, package)).recipient(2)
    assert recipient.access_window.starts_at == datetime(2015, 2, 13, 12, 10, tzinfo=UTC)


async def test_signinghub_sample_on_recipients_without_passwords_names_the_password_field(
    client: WorkflowClient, owner: User
) -> None:
    """The sample's empty user_password means "keep the existing one": with none to keep, a 400
    names body.authentication.password.user_password."""
    package = await registered(client, owner)
    text, correlation_id = raw_command("workflow.update_recipient_authentication", package, owner.token,
                                       SIGNINGHUB_SAMPLE, order=1)

    [outcome] = await client.send_raw(text, package, correlation_id)

    assert (outcome["status"], outcome["field"]) == (400, "body.authentication.password.user_password")


@pytest.mark.parametrize("sample", sorted(BOLDSIGN_SAMPLES))
async def test_boldsign_sample_body_is_applied_verbatim(client: WorkflowClient, owner: User, sample: str) -> None:
    """Each BoldSign sample body, sent as is, sets that authentication on the signer at order 2,
    retry count 3, an access code only as a hash, an SMS number only inside the policy."""
    package = await registered(client, owner)
    text, correlation_id = raw_command("workflow.add_authentication", package, owner.token,
                                       BOLDSIGN_SAMPLES[sample])

    [event] = await client.send_raw(text, package, correlation_id)

    assert (event["type"], event["order"]) == ("workflow.recipient_authentication_updated_v2", 2)
    policy, sealed = event["authentication"], sealed_part(event)
    assert policy["methods"] == [{"access_code": "access_code", "sms_otp": "sms_otp"}.get(sample, "email_otp")]
    assert policy["retry_count"] == 3
    text = json.dumps(event)
    assert "$argon2" not in text and "123456" not in text and "2015666802" not in text and "@" not in text.replace(
        policy.get("destination_masked") or "", "")
    if sample == "access_code":
        assert sealed["secret_hash"].startswith("$argon2id$")
    if sample == "sms_otp":
        assert (policy["channel"], policy["destination_masked"], sealed["destination"]) == (
            "sms", "+12*****6802", "+12015666802")
    if sample.startswith("email_otp"):
        assert policy["channel"] == "email" and "@" in sealed["destination"]


# -- the seed's errors --


async def test_missing_token_is_401_user_authentication_required(client: WorkflowClient, owner: User) -> None:
    """A command without a token gets 401 "User authentication required"."""
    package = await registered(client, owner)
    outcome = await client.send(UpdateRecipientAuthentication(package_id=package, order=1, body={}))
    assert rejection(outcome) == (401, "User authentication required")


@pytest.mark.parametrize("token", ["not-a-token", "expired"])
async def test_bad_or_expired_token_is_401_request_authorization_denied(
    client: WorkflowClient, owner: User, keys: Keys, token: str
) -> None:
    """A malformed or expired token gets 401 "Request authorization denied"."""
    package = await registered(client, owner)
    if token == "expired":
        stale = TokenIssuer(keys.tokens.private_key, clock=lambda: datetime.now(UTC) - timedelta(hours=1))
        token = stale.issue(owner.user_id, "owner").token
    outcome = await client.send(UpdateRecipientAuthentication(package_id=package, order=1, body={}, access_token=token))
    assert rejection(outcome) == (401, "Request authorization denied")


async def test_disabled_account_is_403_account_is_disabled(
    workflow: Service, client: WorkflowClient, owner: User, provisioned: ConnectionSettings
) -> None:
    """Once identity says the owner is disabled, their token gets 403 "Account is disabled"."""
    package = await registered(client, owner)
    disabled = UserDisabledV2(user_id=uuid.UUID(owner.user_id))
    topic, value, key = provisioned.topic(IDENTITY_EVENTS.name), encode(disabled), owner.user_id.encode()
    await client.producer.send_and_wait(topic, value, key=key, headers=signed_headers("identity", topic, key, value))
    assert workflow.resources.pool is not None
    await until(lambda: workflow.resources.pool.fetchval(
        "SELECT disabled FROM account_states WHERE user_id = $1", disabled.user_id), what="owner disabled")

    outcome = await client.send(UpdateRecipientAuthentication(
        package_id=package, order=1, body={}, access_token=owner.token))

    assert rejection(outcome) == (403, "Account is disabled")


async def test_not_a_draft_is_403(client: WorkflowClient, owner: User) -> None:
    """Settings of a shared package get 403 "Document is no longer in draft state"."""
    package = await registered(client, owner)
    await accepted(client, ShareWorkflow(package_id=package, access_token=owner.token))
    outcome = await client.send(UpdateRecipientAuthentication(
        package_id=package, order=1, body={}, access_token=owner.token))
    assert rejection(outcome) == (403, "Document is no longer in draft state")


async def test_someone_elses_package_is_403(client: WorkflowClient, owner: User, issuer: TokenIssuer) -> None:
    """Another user's token gets 403 "Document does not belong to user"."""
    package = await registered(client, owner)
    outcome = await client.send(UpdateRecipientAuthentication(
        package_id=package, order=1, body={}, access_token=User.new(issuer, "other").token))
    assert rejection(outcome) == (403, "Document does not belong to user")


async def test_locked_workflow_is_403(client: WorkflowClient, owner: User) -> None:
    """Settings of a locked workflow get 403 "You are not allowed to perform this action on locked
    workflow"; after unlocking they are accepted."""
    package = await registered(client, owner)
    await accepted(client, LockWorkflow(package_id=package, access_token=owner.token))
    update = {"package_id": package, "order": 1, "body": {}, "access_token": owner.token}

    outcome = await client.send(UpdateRecipientAuthentication(**update))
    await accepted(client, UnlockWorkflow(package_id=package, access_token=owner.token))

    assert rejection(outcome) == (403, "You are not allowed to perform this action on locked workflow")
    assert (await client.send(UpdateRecipientAuthentication(**update)))["type"] == (
        "workflow.recipient_authentication_updated_v2")


async def test_unknown_package_is_404(client: WorkflowClient, owner: User) -> None:
    """A package nobody registered gets 404 "Document not found"."""
    outcome = await client.send(UpdateRecipientAuthentication(
        package_id=package_id(), order=1, body={}, access_token=owner.token))
    assert rejection(outcome) == (404, "Document not found")


async def test_no_recipient_at_order_is_404(client: WorkflowClient, owner: User) -> None:
    """An order with no recipient gets 404 "No user found at given order"."""
    package = await registered(client, owner)
    outcome = await client.send(UpdateRecipientAuthentication(
        package_id=package, order=9, body={}, access_token=owner.token))
    assert rejection(outcome) == (404, "No user found at given order")


async def test_invalid_body_is_400_naming_the_field(client: WorkflowClient, owner: User) -> None:
    """SMS OTP enabled without a mobile number gets 400 naming body.authentication.sms_otp.mobile_number."""
    package = await registered(client, owner)
    text, correlation_id = raw_command("workflow.update_recipient_authentication", package, owner.token,
                                       '{"authentication": {"enabled": true, "sms_otp": {"enabled": true}}}', order=1)

    [outcome] = await client.send_raw(text, package, correlation_id)

    assert (outcome["status"], outcome["code"], outcome["field"]) == (
        400, "invalid_command", "body.authentication.sms_otp.mobile_number")


# -- lifecycle, queries, history --


async def test_lifecycle_from_draft_to_completed(workflow: Service, client: WorkflowClient, owner: User) -> None:
    """Shared, received and signed in order, a sequential package ends completed, each step an event."""
    package = await registered(client, owner)
    steps = [ShareWorkflow(package_id=package, access_token=owner.token)]
    for order in (1, 2):
        steps += [RecordRecipientReceived(package_id=package, order=order, access_token=owner.token),
                  RecordRecipientSigned(package_id=package, order=order, access_token=owner.token)]

    shared = await accepted(client, steps[0], 2)  # the event, and the invitations to reply_to
    types = [event["type"] for step in steps[1:-1] for event in await accepted(client, step)]
    types += [event["type"] for event in await accepted(client, steps[-1], 2)]

    assert sorted(event["type"] for event in shared) == [
        "workflow.recipient_invitations_issued", "workflow.workflow_shared"]
    assert types == [ "workflow.recipient_received", "workflow.recipient_signed",
                     "workflow.recipient_received", "workflow.recipient_signed", "workflow.workflow_completed"]
    assert (await stored(workflow, package)).state == "completed"
    outcome = await client.send(TerminateWorkflow(package_id=package, access_token=owner.token))
    assert (outcome["status"], outcome["code"]) == (409, "workflow_not_in_progress")


async def test_recipient_settings_query_answers_the_callers_topic_without_secrets(
    client: WorkflowClient, owner: User, provisioned: ConnectionSettings
) -> None:
    """The settings query answers on the caller's reply_to: methods, masked number, "a secret is
    set", and neither the hash nor the number."""
    package = await registered(client, owner)
    await accepted(client, UpdateRecipientAuthentication(
        package_id=package, order=1, access_token=owner.token, body={"authentication": {
            "enabled": True, "password": {"enabled": True, "user_password": "pw-one"},
            "sms_otp": {"enabled": True, "mobile_number": "+445566778899"}}}))
    query = GetRecipientAuthentication(package_id=package, order=1, access_token=owner.token,
                                       reply_to=provisioned.topic(CALLER_REPLIES.name))

    described = await client.send(query)

    [record] = client.watcher.by_correlation[str(query.correlation_id)]
    assert record.topic == provisioned.topic(CALLER_REPLIES.name)
    assert described["type"] == "workflow.recipient_authentication_described"
    assert described["authentication"]["methods"] == ["password", "sms_otp"]
    assert described["authentication"]["secret_set"] is True
    assert described["authentication"]["destination_masked"] == "+44******8899"
    assert "argon2" not in record.value.decode() and "5566778899" not in record.value.decode()


async def test_history_query_lists_every_change_in_order_a_page_at_a_time(
    client: WorkflowClient, owner: User, provisioned: ConnectionSettings
) -> None:
    """The history answers on the replies topic with each change, actor and correlation id, in order."""
    register = registration(owner)
    package = register.package_id
    lock = LockWorkflow(package_id=package, access_token=owner.token)
    unlock = UnlockWorkflow(package_id=package, access_token=owner.token)
    for command in (register, lock, unlock):
        await accepted(client, command)

    first = await client.send(GetWorkflowHistory(package_id=package, access_token=owner.token, limit=2))
    rest = await client.send(GetWorkflowHistory(package_id=package, access_token=owner.token,
                                                after_sequence=first["next_after"]))

    entries = first["entries"] + rest["entries"]
    assert [(e["sequence"], e["action"]) for e in entries] == [
        (1, "package_registered"), (2, "workflow_locked"), (3, "workflow_unlocked")]
    assert {e["actor"] for e in entries} == {owner.user_id}
    assert [e["correlation_id"] for e in entries] == [str(c.correlation_id) for c in (register, lock, unlock)]
    assert rest["next_after"] is None
    [record] = client.watcher.by_correlation[first["correlation_id"]]
    assert record.topic == provisioned.topic(WORKFLOW_REPLIES.name)


async def test_reset_of_recipient_two_leaves_recipient_one_untouched(
    workflow: Service, client: WorkflowClient, owner: User, provisioned: ConnectionSettings
) -> None:
    """Resetting locked-out recipient 2 (with a new access code) clears only their lock and failures:
    recipient 1's settings, signature, failures and history, and the package state, are as before;
    a second reset changes nothing more."""
    package = await registered(client, owner, workflow_type="parallel")
    for email in ("first@example.com", BOLDSIGN_SIGNER):
        await accepted(client, AddAuthentication(package_id=package, access_token=owner.token, body={
            "authenticationType": "AccessCode", "emailId": email, "accessCode": "111111"}))
    await accepted(client, ShareWorkflow(package_id=package, access_token=owner.token))
    for command in (RecordRecipientReceived, RecordRecipientSigned):
        await accepted(client, command(package_id=package, order=1, access_token=owner.token))
    await accepted(client, RecordRecipientReceived(package_id=package, order=2, access_token=owner.token))
    facts = [
        RecipientAuthenticationFailed(package_id=package, order=1, method="access_code", reason="wrong_secret",
                                      attempts_used=1, attempts_remaining=2),
        RecipientAuthenticationFailed(package_id=package, order=2, method="access_code", reason="wrong_secret",
                                      attempts_used=3, attempts_remaining=0),
        RecipientLockedOut(package_id=package, order=2, method="access_code", failures=3,
                           locked_at=datetime.now(UTC)),
    ]
    topic = provisioned.topic(AUTHENTICATION_EVENTS.name)
    for fact in facts:
        value = encode(fact)
        await client.producer.send_and_wait(topic, value, key=package.encode(),
                                            headers=signed_headers("authentication", topic, package.encode(), value))
    await until(lambda: _locked(workflow, package, 2), what="recipient 2 locked out")
    before = await stored(workflow, package)
    history_before = await history_of(workflow, package)

    reset = ResetRecipientAuthentication(package_id=package, order=2, access_code="222222", access_token=owner.token)
    [event] = await accepted(client, reset)
    once = await stored(workflow, package)
    await accepted(client, ResetRecipientAuthentication(package_id=package, order=2, access_token=owner.token))
    twice = await stored(workflow, package)

    assert event["type"] == "workflow.recipient_authentication_reset_v2" and event["order"] == 2
    assert sealed_part(event)["secret_hash"] != before.recipient(2).authentication.secret_hash
    assert "222222" not in json.dumps(event)
    assert once.recipient(1) == before.recipient(1)
    assert (once.recipient(1).status, once.recipient(1).failed_attempts) == ("signed", 1)
    assert (once.state, once.locked, once.shared_at) == (before.state, before.locked, before.shared_at)
    assert (once.recipient(2).failed_attempts, once.recipient(2).locked_out_at) == (0, None)
    assert once.recipient(2).status == "received"
    assert twice.recipient(2).authentication_version == once.recipient(2).authentication_version + 1
    assert twice == replace(once, recipients=(once.recipient(1), replace(
        once.recipient(2), authentication_version=twice.recipient(2).authentication_version)))  # a reset: new version
    history_after = await history_of(workflow, package)
    assert history_after[: len(history_before)] == history_before
    assert [(h.action, h.order) for h in history_after[len(history_before):]] == [
        ("recipient_authentication_reset", 2), ("recipient_authentication_reset", 2)]
    assert [(h.action, h.order, h.actor) for h in history_before[-3:]] == [
        ("recipient_authentication_failed", 1, "authentication"),
        ("recipient_authentication_failed", 2, "authentication"),
        ("recipient_locked_out", 2, "authentication")]


async def test_facts_sent_together_each_apply_to_the_package_as_the_one_before_left_it(
    workflow: Service, client: WorkflowClient, owner: User, provisioned: ConnectionSettings
) -> None:
    """Two wrong attempts and then a success of one recipient, published at once (one batch, where
    the package was read ahead for all of them): the recipient ends with no failures counted, as
    the success cleared what the failures before it had counted."""
    package = await registered(client, owner, workflow_type="parallel")
    await accepted(client, AddAuthentication(package_id=package, access_token=owner.token, body={
        "authenticationType": "AccessCode", "emailId": BOLDSIGN_SIGNER, "accessCode": "111111"}))
    await accepted(client, ShareWorkflow(package_id=package, access_token=owner.token))
    facts = [
        RecipientAuthenticationFailed(package_id=package, order=1, method="access_code", reason="wrong_secret",
                                      attempts_used=1, attempts_remaining=2),
        RecipientAuthenticationFailed(package_id=package, order=1, method="access_code", reason="wrong_secret",
                                      attempts_used=2, attempts_remaining=1),
        RecipientAuthenticated(package_id=package, order=1, method="access_code"),
    ]
    topic = provisioned.topic(AUTHENTICATION_EVENTS.name)
    sent = [await client.producer.send(topic, encode(fact), key=package.encode(), headers=signed_headers(
        "authentication", topic, package.encode(), encode(fact))) for fact in facts]
    await asyncio.gather(*sent)
    await until(lambda: _history_has(workflow, package, "recipient_authenticated"), what="the success recorded")

    assert (await stored(workflow, package)).recipient(1).failed_attempts == 0
    assert [h.action for h in (await history_of(workflow, package))[-3:]] == [
        "recipient_authentication_failed", "recipient_authentication_failed", "recipient_authenticated"]


async def _history_has(service: Service, package: str, action: str) -> bool:
    return any(h.action == action for h in await history_of(service, package))


async def _locked(service: Service, package: str, order: int) -> bool:
    return (await stored(service, package)).recipient(order).locked_out_at is not None


# -- ordering --


async def test_burst_of_mixed_commands_ends_as_applying_them_one_by_one(
    workflow: Service, client: WorkflowClient, issuer: TokenIssuer
) -> None:
    """1,000 mixed commands over 50 packages published in one burst give each command the outcome,
    and each package the state and history, that applying them one at a time gives."""
    owner, stranger = User.new(issuer, "owner"), User.new(issuer, "stranger")
    prefix = new_prefix("burst")
    burst = generate(owner, stranger, packages=50, per_package=20, seed=4, prefix=prefix)
    expected = reference(burst)
    assert len(burst.commands) == 1000

    await client.publish(burst.commands)
    await client.watcher.wait_all(expected.outcomes, timeout=120)
    for correlation_id, types in expected.outcomes.items():
        if len(types) > 1:
            await client.watcher.wait_outcomes(correlation_id, len(types))

    outcomes = {cid: outcome_types(client.watcher.outcomes(cid)) for cid in expected.outcomes}
    assert outcomes == expected.outcomes
    assert workflow.resources.pool is not None
    async with workflow.resources.pool.acquire() as connection:
        for package_id, package in expected.packages.items():
            assert comparable(await repository.select_package(connection, package_id)) == comparable(package)
            actual_history = [(h.action, h.order, h.details)
                              for h in await repository.select_history(connection, package_id)]
            assert actual_history == expected.history.get(package_id, [])
    accepted_count = sum(1 for types in expected.outcomes.values() if not types[0].startswith("command.rejected"))
    assert accepted_count > 400, "the burst should change packages, not only be refused"
