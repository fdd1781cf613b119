"""The workflow service's rules on real Postgres and Redis, without a broker: seed bodies and errors,
lifecycle, queries, history, unlocking one recipient, and authentication's facts applied in order
within one batch. Commands go in as the broker would deliver them (raw JSON text for the seeds'
bodies verbatim), facts signed by the service that writes them; outcomes are read from what the
service publishes."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from libs.security.tokens import TokenIssuer
from services.workflow import repository
from services.workflow.app import DEFINITION
from signgate_contracts import Command
from signgate_contracts.authentication import (
    RecipientAuthenticated,
    RecipientAuthenticationFailed,
    RecipientLockedOut,
)
from signgate_contracts.identity import UserDisabledV2
from signgate_contracts.topics import WORKFLOW_COMMANDS, WORKFLOW_REPLIES
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
from tests.support.component import ComponentService, ComponentStack, Published
from tests.support.signing import authentication_opener
from tests.support.workflow_driver import User
from tests.support.workflow_seeds import BOLDSIGN_SAMPLES, BOLDSIGN_SIGNER, SIGNINGHUB_SAMPLE

CALLER_REPLIES = "signgate.replies.test-workflow"
"""A caller's own reply topic (its registry-style name; deployed under the stack's prefix)."""


@pytest.fixture(scope="module")
async def workflow(stack: ComponentStack) -> AsyncIterator[ComponentService]:
    async with stack.service(DEFINITION) as built:
        yield built


@pytest.fixture(scope="module")
def issuer(stack: ComponentStack) -> TokenIssuer:
    return stack.token_issuer()


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


def outcomes(published: list[Published], correlation_id: object) -> list[dict[str, Any]]:
    """The distinct messages (by event id) a command caused, in publication order."""
    seen: dict[str, dict[str, Any]] = {}
    for record in published:
        if record.get("correlation_id") == str(correlation_id):
            seen.setdefault(record["event_id"], record.document)
    return list(seen.values())


async def send(workflow: ComponentService, command: Command) -> dict[str, Any]:
    """Deliver one command; its first outcome."""
    return outcomes(await workflow.handle(command), command.correlation_id)[0]


async def accepted(workflow: ComponentService, command: Command, count: int = 1) -> list[dict[str, Any]]:
    """Deliver a command that must succeed; its ``count`` outcomes."""
    events = outcomes(await workflow.handle(command), command.correlation_id)
    assert len(events) == count, events
    assert events[0]["type"] != "command.rejected", events[0]
    return events


async def registered(workflow: ComponentService, owner: User, **kwargs: Any) -> str:
    command = registration(owner, **kwargs)
    assert (await send(workflow, command))["type"] == "workflow.package_registered"
    return command.package_id


def raw_command(type_: str, package: str, token: str | None, body_text: str, **fields: Any) -> tuple[str, str]:
    """A command as JSON text with ``body_text`` spliced in verbatim; returns (text, correlation id)."""
    correlation_id = str(uuid.uuid4())
    envelope = {"type": type_, "package_id": package, "correlation_id": correlation_id,
                "event_id": str(uuid.uuid4()), "access_token": token, **fields}
    return json.dumps(envelope)[:-1] + ', "body": ' + body_text + "}", correlation_id


async def send_raw(workflow: ComponentService, text: str, package: str, correlation_id: str
                   ) -> list[dict[str, Any]]:
    """Deliver a command given as JSON text on the commands topic; its outcomes."""
    published = await workflow.handle(text.encode(), WORKFLOW_COMMANDS, key=package)
    return outcomes(published, correlation_id)


def rejection(outcome: dict[str, Any]) -> tuple[int, str]:
    assert outcome["type"] == "command.rejected", outcome
    return outcome["status"], outcome["message"]


async def stored(workflow: ComponentService, package: str):
    async with workflow.pool.acquire() as connection:
        return await repository.select_package(connection, package)


async def history_of(workflow: ComponentService, package: str):
    async with workflow.pool.acquire() as connection:
        return await repository.select_history(connection, package)


# -- the seeds' bodies, verbatim --


async def test_signinghub_sample_body_is_applied_verbatim(workflow: ComponentService, owner: User) -> None:
    """The seed's SigningHub body, sent as is, keeps both recipients' passwords and gives them the
    date window (its "12:10:000Z" read as 12:10:00Z), published with the password only as a hash."""
    start = len(workflow.recorder.records)
    package = await registered(workflow, owner)
    await accepted(workflow, UpdateRecipientAuthentication(
        package_id=package, order=1, access_token=owner.token,
        body={"apply_to_all": True, "authentication": {"enabled": True, "password": {
            "enabled": True, "user_password": "Sesame-1"}}}), 2)

    text, correlation_id = raw_command("workflow.update_recipient_authentication", package, owner.token,
                                       SIGNINGHUB_SAMPLE, order=1)
    events = await send_raw(workflow, text, package, correlation_id)

    assert [(e["type"], e["order"]) for e in events] == [
        ("workflow.recipient_authentication_updated_v2", 1), ("workflow.recipient_authentication_updated_v2", 2)]
    for event in events:
        assert event["authentication"]["methods"] == ["password"]
        assert "$argon2" not in json.dumps(event)  # the hash travels sealed, for authentication only
        assert sealed_part(event)["secret_hash"].startswith("$argon2id$")
        assert event["access_window"] == {"starts_at": "2015-02-13T12:10:00Z", "ends_at": "2015-02-28T12:10:00Z",
                                          "days_after_receipt": None}
    assert "Sesame-1" not in json.dumps([r.document for r in workflow.recorder.records[start:]])
    recipient = (await stored(workflow, package)).recipient(2)
    assert recipient.access_window.starts_at == datetime(2015, 2, 13, 12, 10, tzinfo=UTC)


async def test_signinghub_sample_on_recipients_without_passwords_names_the_password_field(
    workflow: ComponentService, owner: User
) -> None:
    """The sample's empty user_password means "keep the existing one": with none to keep, a 400
    names body.authentication.password.user_password."""
    package = await registered(workflow, owner)
    text, correlation_id = raw_command("workflow.update_recipient_authentication", package, owner.token,
                                       SIGNINGHUB_SAMPLE, order=1)

    [outcome] = await send_raw(workflow, text, package, correlation_id)

    assert (outcome["status"], outcome["field"]) == (400, "body.authentication.password.user_password")


@pytest.mark.parametrize("sample", sorted(BOLDSIGN_SAMPLES))
async def test_boldsign_sample_body_is_applied_verbatim(workflow: ComponentService, owner: User, sample: str) -> None:
    """Each BoldSign sample body, sent as is, sets that authentication on the signer at order 2,
    retry count 3, an access code only as a hash, an SMS number only inside the policy."""
    package = await registered(workflow, owner)
    text, correlation_id = raw_command("workflow.add_authentication", package, owner.token,
                                       BOLDSIGN_SAMPLES[sample])

    [event] = await send_raw(workflow, text, package, correlation_id)

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


async def test_missing_token_is_401_user_authentication_required(workflow: ComponentService, owner: User) -> None:
    """A command without a token gets 401 "User authentication required"."""
    package = await registered(workflow, owner)
    outcome = await send(workflow, UpdateRecipientAuthentication(package_id=package, order=1, body={}))
    assert rejection(outcome) == (401, "User authentication required")


@pytest.mark.parametrize("token", ["not-a-token", "expired"])
async def test_bad_or_expired_token_is_401_request_authorization_denied(
    workflow: ComponentService, stack: ComponentStack, owner: User, token: str
) -> None:
    """A malformed or expired token gets 401 "Request authorization denied"."""
    package = await registered(workflow, owner)
    if token == "expired":
        stale = TokenIssuer(stack.token_keys.private_key, clock=lambda: datetime.now(UTC) - timedelta(hours=1))
        token = stale.issue(owner.user_id, "owner").token
    outcome = await send(workflow, UpdateRecipientAuthentication(
        package_id=package, order=1, body={}, access_token=token))
    assert rejection(outcome) == (401, "Request authorization denied")


async def test_disabled_account_is_403_account_is_disabled(workflow: ComponentService, owner: User) -> None:
    """Once identity says the owner is disabled, their token gets 403 "Account is disabled"."""
    package = await registered(workflow, owner)
    disabled = UserDisabledV2(user_id=uuid.UUID(owner.user_id))
    await workflow.handle(disabled)  # on identity's events, signed by identity
    assert await workflow.pool.fetchval("SELECT disabled FROM account_states WHERE user_id = $1", disabled.user_id)

    outcome = await send(workflow, UpdateRecipientAuthentication(
        package_id=package, order=1, body={}, access_token=owner.token))

    assert rejection(outcome) == (403, "Account is disabled")


async def test_not_a_draft_is_403(workflow: ComponentService, owner: User) -> None:
    """Settings of a shared package get 403 "Document is no longer in draft state"."""
    package = await registered(workflow, owner)
    await accepted(workflow, ShareWorkflow(package_id=package, access_token=owner.token), 2)
    outcome = await send(workflow, UpdateRecipientAuthentication(
        package_id=package, order=1, body={}, access_token=owner.token))
    assert rejection(outcome) == (403, "Document is no longer in draft state")


async def test_someone_elses_package_is_403(workflow: ComponentService, owner: User, issuer: TokenIssuer) -> None:
    """Another user's token gets 403 "Document does not belong to user"."""
    package = await registered(workflow, owner)
    outcome = await send(workflow, UpdateRecipientAuthentication(
        package_id=package, order=1, body={}, access_token=User.new(issuer, "other").token))
    assert rejection(outcome) == (403, "Document does not belong to user")


async def test_locked_workflow_is_403(workflow: ComponentService, owner: User) -> None:
    """Settings of a locked workflow get 403 "You are not allowed to perform this action on locked
    workflow"; after unlocking they are accepted."""
    package = await registered(workflow, owner)
    await accepted(workflow, LockWorkflow(package_id=package, access_token=owner.token))
    update = {"package_id": package, "order": 1, "body": {}, "access_token": owner.token}

    outcome = await send(workflow, UpdateRecipientAuthentication(**update))
    await accepted(workflow, UnlockWorkflow(package_id=package, access_token=owner.token))

    assert rejection(outcome) == (403, "You are not allowed to perform this action on locked workflow")
    assert (await send(workflow, UpdateRecipientAuthentication(**update)))["type"] == (
        "workflow.recipient_authentication_updated_v2")


async def test_unknown_package_is_404(workflow: ComponentService, owner: User) -> None:
    """A package nobody registered gets 404 "Document not found"."""
    outcome = await send(workflow, UpdateRecipientAuthentication(
        package_id=package_id(), order=1, body={}, access_token=owner.token))
    assert rejection(outcome) == (404, "Document not found")


async def test_no_recipient_at_order_is_404(workflow: ComponentService, owner: User) -> None:
    """An order with no recipient gets 404 "No user found at given order"."""
    package = await registered(workflow, owner)
    outcome = await send(workflow, UpdateRecipientAuthentication(
        package_id=package, order=9, body={}, access_token=owner.token))
    assert rejection(outcome) == (404, "No user found at given order")


async def test_invalid_body_is_400_naming_the_field(workflow: ComponentService, owner: User) -> None:
    """SMS OTP enabled without a mobile number gets 400 naming body.authentication.sms_otp.mobile_number."""
    package = await registered(workflow, owner)
    text, correlation_id = raw_command("workflow.update_recipient_authentication", package, owner.token,
                                       '{"authentication": {"enabled": true, "sms_otp": {"enabled": true}}}', order=1)

    [outcome] = await send_raw(workflow, text, package, correlation_id)

    assert (outcome["status"], outcome["code"], outcome["field"]) == (
        400, "invalid_command", "body.authentication.sms_otp.mobile_number")


# -- lifecycle, queries, history --


async def test_lifecycle_from_draft_to_completed(workflow: ComponentService, owner: User) -> None:
    """Shared, received and signed in order, a sequential package ends completed, each step an event."""
    package = await registered(workflow, owner)
    steps = [ShareWorkflow(package_id=package, access_token=owner.token)]
    for order in (1, 2):
        steps += [RecordRecipientReceived(package_id=package, order=order, access_token=owner.token),
                  RecordRecipientSigned(package_id=package, order=order, access_token=owner.token)]

    shared = await accepted(workflow, steps[0], 2)  # the event, and the invitations to reply_to
    types = [event["type"] for step in steps[1:-1] for event in await accepted(workflow, step)]
    types += [event["type"] for event in await accepted(workflow, steps[-1], 2)]

    assert sorted(event["type"] for event in shared) == [
        "workflow.recipient_invitations_issued", "workflow.workflow_shared"]
    assert types == ["workflow.recipient_received", "workflow.recipient_signed",
                     "workflow.recipient_received", "workflow.recipient_signed", "workflow.workflow_completed"]
    assert (await stored(workflow, package)).state == "completed"
    outcome = await send(workflow, TerminateWorkflow(package_id=package, access_token=owner.token))
    assert (outcome["status"], outcome["code"]) == (409, "workflow_not_in_progress")


async def test_recipient_settings_query_answers_the_callers_topic_without_secrets(
    workflow: ComponentService, stack: ComponentStack, owner: User
) -> None:
    """The settings query answers on the caller's reply_to: methods, masked number, "a secret is
    set", and neither the hash nor the number."""
    package = await registered(workflow, owner)
    await accepted(workflow, UpdateRecipientAuthentication(
        package_id=package, order=1, access_token=owner.token, body={"authentication": {
            "enabled": True, "password": {"enabled": True, "user_password": "pw-one"},
            "sms_otp": {"enabled": True, "mobile_number": "+445566778899"}}}))
    reply_to = stack.connections.topic(CALLER_REPLIES)
    query = GetRecipientAuthentication(package_id=package, order=1, access_token=owner.token, reply_to=reply_to)

    published = await workflow.handle(query)

    [record] = [p for p in published if p.caused_by(query)]
    described = record.document
    assert record.deployed == reply_to
    assert described["type"] == "workflow.recipient_authentication_described"
    assert described["authentication"]["methods"] == ["password", "sms_otp"]
    assert described["authentication"]["secret_set"] is True
    assert described["authentication"]["destination_masked"] == "+44******8899"
    assert "argon2" not in record.value.decode() and "5566778899" not in record.value.decode()


async def test_history_query_lists_every_change_in_order_a_page_at_a_time(
    workflow: ComponentService, owner: User
) -> None:
    """The history answers on the replies topic with each change, actor and correlation id, in order."""
    register = registration(owner)
    package = register.package_id
    lock = LockWorkflow(package_id=package, access_token=owner.token)
    unlock = UnlockWorkflow(package_id=package, access_token=owner.token)
    for command in (register, lock, unlock):
        await accepted(workflow, command)

    query = GetWorkflowHistory(package_id=package, access_token=owner.token, limit=2)
    [record] = [p for p in await workflow.handle(query) if p.caused_by(query)]
    first = record.document
    rest = await send(workflow, GetWorkflowHistory(package_id=package, access_token=owner.token,
                                                   after_sequence=first["next_after"]))

    entries = first["entries"] + rest["entries"]
    assert [(e["sequence"], e["action"]) for e in entries] == [
        (1, "package_registered"), (2, "workflow_locked"), (3, "workflow_unlocked")]
    assert {e["actor"] for e in entries} == {owner.user_id}
    assert [e["correlation_id"] for e in entries] == [str(c.correlation_id) for c in (register, lock, unlock)]
    assert rest["next_after"] is None
    assert record.topic == WORKFLOW_REPLIES.name


async def test_reset_of_recipient_two_leaves_recipient_one_untouched(workflow: ComponentService, owner: User) -> None:
    """Resetting locked-out recipient 2 (with a new access code) clears only their lock and failures:
    recipient 1's settings, signature, failures and history, and the package state, are as before;
    a second reset changes nothing more."""
    package = await registered(workflow, owner, workflow_type="parallel")
    for email in ("first@example.com", BOLDSIGN_SIGNER):
        await accepted(workflow, AddAuthentication(package_id=package, access_token=owner.token, body={
            "authenticationType": "AccessCode", "emailId": email, "accessCode": "111111"}))
    await accepted(workflow, ShareWorkflow(package_id=package, access_token=owner.token), 2)
    for command in (RecordRecipientReceived, RecordRecipientSigned):
        await accepted(workflow, command(package_id=package, order=1, access_token=owner.token))
    await accepted(workflow, RecordRecipientReceived(package_id=package, order=2, access_token=owner.token))
    facts = [
        RecipientAuthenticationFailed(package_id=package, order=1, method="access_code", reason="wrong_secret",
                                      attempts_used=1, attempts_remaining=2),
        RecipientAuthenticationFailed(package_id=package, order=2, method="access_code", reason="wrong_secret",
                                      attempts_used=3, attempts_remaining=0),
        RecipientLockedOut(package_id=package, order=2, method="access_code", failures=3,
                           locked_at=datetime.now(UTC)),
    ]
    for fact in facts:  # on authentication's events, signed by authentication
        await workflow.handle(fact)
    before = await stored(workflow, package)
    assert before.recipient(2).locked_out_at is not None
    history_before = await history_of(workflow, package)

    reset = ResetRecipientAuthentication(package_id=package, order=2, access_code="222222", access_token=owner.token)
    [event] = await accepted(workflow, reset)
    once = await stored(workflow, package)
    await accepted(workflow, ResetRecipientAuthentication(package_id=package, order=2, access_token=owner.token))
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
    workflow: ComponentService, owner: User
) -> None:
    """Two wrong attempts and then a success of one recipient, delivered in one batch (where the
    package is read ahead for all of them): the recipient ends with no failures counted, as the
    success cleared what the failures before it had counted."""
    package = await registered(workflow, owner, workflow_type="parallel")
    await accepted(workflow, AddAuthentication(package_id=package, access_token=owner.token, body={
        "authenticationType": "AccessCode", "emailId": BOLDSIGN_SIGNER, "accessCode": "111111"}))
    await accepted(workflow, ShareWorkflow(package_id=package, access_token=owner.token), 2)

    await workflow.handle_together(
        RecipientAuthenticationFailed(package_id=package, order=1, method="access_code", reason="wrong_secret",
                                      attempts_used=1, attempts_remaining=2),
        RecipientAuthenticationFailed(package_id=package, order=1, method="access_code", reason="wrong_secret",
                                      attempts_used=2, attempts_remaining=1),
        RecipientAuthenticated(package_id=package, order=1, method="access_code"),
    )

    assert (await stored(workflow, package)).recipient(1).failed_attempts == 0
    assert [h.action for h in (await history_of(workflow, package))[-3:]] == [
        "recipient_authentication_failed", "recipient_authentication_failed", "recipient_authenticated"]
