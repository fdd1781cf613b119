"""The workflow's rules, without a broker: lifecycle, both authentication shapes, reset, history."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from libs.runtime.errors import Refusal
from libs.security.sealing import SealedValueError
from services.workflow import domain, views
from services.workflow.app import WorkflowSettings, publishing_keys
from services.workflow.domain import AuthenticationFact, Package
from signgate_contracts.workflow import (
    AccessWindow,
    AddAuthenticationBody,
    ChangeAccessCodeBody,
    RegisterPackage,
    SignerReference,
    SigningHubAuthenticationBody,
    sealed_policy_context,
)
from tests.support.signing import authentication_opener
from tests.support.workflow_seeds import BOLDSIGN_SAMPLES, BOLDSIGN_SIGNER, SIGNINGHUB_SAMPLE, body

OWNER = "owner-1"
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
HASH = "$argon2id$hash-of-the-secret"
KEYS = publishing_keys(WorkflowSettings())
AUTHENTICATION_OPENER = authentication_opener()


def registered(*, workflow_type: str = "sequential", recipients: list[dict[str, Any]] | None = None,
               on_behalf_of: str | None = None) -> Package:
    command = RegisterPackage(
        package_id="p-1", name="Lease", workflow_type=workflow_type, on_behalf_of=on_behalf_of,
        documents=[{"document_id": "d-1", "name": "lease.pdf"}],
        recipients=recipients or [
            {"order": 1, "email": "first@example.com", "name": "First", "mobile_number": "+447700900001"},
            {"order": 2, "email": BOLDSIGN_SIGNER, "name": "Alex"},
        ],
    )
    return domain.register_package(None, OWNER, command, T0).package


def shared(package: Package) -> Package:
    return domain.share_workflow(package, OWNER, T0).package


def signinghub(**fields: Any) -> SigningHubAuthenticationBody:
    return SigningHubAuthenticationBody.model_validate(fields)


PASSWORD_ON = {"enabled": True, "password": {"enabled": True, "user_password": "s3cret"}}


def refusal(call, *args: Any, **kwargs: Any) -> tuple[int, str, str]:
    with pytest.raises(Refusal) as caught:
        call(*args, **kwargs)
    return caught.value.status, caught.value.code, caught.value.message


# -- lifecycle --


def test_registered_package_is_a_draft_owned_by_the_caller_with_pending_recipients() -> None:
    """Registering makes a draft owned by the caller, recipients pending in order."""
    package = registered()

    assert (package.state, package.owner_id, package.locked) == ("draft", OWNER, False)
    assert [(r.order, r.status) for r in package.recipients] == [(1, "pending"), (2, "pending")]


def test_registering_an_existing_package_is_a_conflict() -> None:
    """A second registration of one package id is refused with 409."""
    command = RegisterPackage(package_id="p-1", name="x", documents=[{"document_id": "d", "name": "d"}],
                              recipients=[{"order": 1, "email": "a@example.com", "name": "A"}])

    assert refusal(domain.register_package, registered(), OWNER, command, T0)[:2] == (409, "package_exists")


def test_sequential_workflow_lets_a_recipient_receive_only_after_earlier_ones_signed() -> None:
    """In a sequential workflow recipient 2 cannot receive before recipient 1 signed; then can."""
    package = shared(registered())

    assert refusal(domain.record_received, package, OWNER, 2, T0)[1] == "earlier_recipients_pending"
    package = domain.record_received(package, OWNER, 1, T0).package
    package = domain.record_signed(package, OWNER, 1, T0).package
    package = domain.record_received(package, OWNER, 2, T0 + timedelta(hours=1)).package
    assert package.recipient(2).received_at == T0 + timedelta(hours=1)


def test_parallel_workflow_lets_recipients_receive_in_any_order() -> None:
    """In a parallel workflow recipient 2 may receive first."""
    package = shared(registered(workflow_type="parallel"))

    assert domain.record_received(package, OWNER, 2, T0).package.recipient(2).status == "received"


def test_last_signature_completes_the_workflow() -> None:
    """When every recipient has signed the workflow is completed, with both facts as changes."""
    package = shared(registered(workflow_type="parallel"))
    for order in (1, 2):
        package = domain.record_received(package, OWNER, order, T0).package
    package = domain.record_signed(package, OWNER, 1, T0).package

    decision = domain.record_signed(package, OWNER, 2, T0)

    assert decision.package.state == "completed"
    assert [c.action for c in decision.changes] == ["recipient_signed", "workflow_completed"]


def test_a_decline_declines_the_workflow() -> None:
    """A recipient who declines ends the workflow as declined."""
    package = domain.record_received(shared(registered()), OWNER, 1, T0).package

    decision = domain.record_declined(package, OWNER, 1, T0, "wrong address")

    assert (decision.package.state, decision.package.recipient(1).status) == ("declined", "declined")
    assert [c.action for c in decision.changes] == ["recipient_declined", "workflow_declined"]


def test_signing_needs_receiving_first_and_only_once() -> None:
    """A recipient signs only after receiving, and only once."""
    package = shared(registered(workflow_type="parallel"))

    assert refusal(domain.record_signed, package, OWNER, 1, T0)[1] == "recipient_not_received"
    package = domain.record_received(package, OWNER, 1, T0).package
    package = domain.record_signed(package, OWNER, 1, T0).package
    assert refusal(domain.record_signed, package, OWNER, 1, T0)[1] == "recipient_already_signed"


def test_recipient_actions_need_a_workflow_in_progress() -> None:
    """A draft's recipients cannot receive it."""
    assert refusal(domain.record_received, registered(), OWNER, 1, T0)[:2] == (409, "workflow_not_in_progress")


def test_terminate_only_in_progress() -> None:
    """Terminating works in progress, not on a draft."""
    assert refusal(domain.terminate_workflow, registered(), OWNER, T0, None)[1] == "workflow_not_in_progress"
    decision = domain.terminate_workflow(shared(registered()), OWNER, T0, "superseded")
    assert decision.package.state == "terminated"
    assert decision.changes[0].details == {"reason": "superseded"}


def test_sharing_twice_says_the_document_is_no_longer_a_draft() -> None:
    """A second share is refused with the seed's 403 text."""
    assert refusal(domain.share_workflow, shared(registered()), OWNER, T0) == (
        403, "document_not_draft", "Document is no longer in draft state")


def test_lock_stops_owner_changes_but_not_recipient_actions() -> None:
    """A locked workflow refuses sharing and terminating with the seed's text; recipients still act."""
    package = shared(registered())
    locked = domain.lock_workflow(package, OWNER).package
    text = "You are not allowed to perform this action on locked workflow"

    assert refusal(domain.terminate_workflow, locked, OWNER, T0, None) == (403, "workflow_locked", text)
    assert domain.record_received(locked, OWNER, 1, T0).package.recipient(1).status == "received"
    assert refusal(domain.lock_workflow, locked, OWNER)[1] == "workflow_already_locked"
    assert domain.unlock_workflow(locked, OWNER).package.locked is False
    assert refusal(domain.unlock_workflow, package, OWNER)[1] == "workflow_not_locked"


# -- SigningHub shape --


def test_seed_errors_of_update_recipient_authentication() -> None:
    """Not found, not the owner, locked, not a draft and no such order give the seed's texts."""
    body_ = signinghub(authentication=PASSWORD_ON)
    package = registered()
    update = domain.update_recipient_authentication

    assert refusal(update, None, OWNER, 1, body_, HASH) == (404, "document_not_found", "Document not found")
    assert refusal(update, package, "someone-else", 1, body_, HASH) == (
        403, "document_not_owned", "Document does not belong to user")
    assert refusal(update, domain.lock_workflow(package, OWNER).package, OWNER, 1, body_, HASH)[2] == (
        "You are not allowed to perform this action on locked workflow")
    assert refusal(update, shared(package), OWNER, 1, body_, HASH)[2] == "Document is no longer in draft state"
    assert refusal(update, package, OWNER, 7, body_, HASH) == (
        404, "recipient_not_found", "No user found at given order")


def test_update_sets_only_the_recipient_at_the_order() -> None:
    """Without apply_to_all only the recipient at the order changes."""
    decision = domain.update_recipient_authentication(
        registered(), OWNER, 2, signinghub(authentication=PASSWORD_ON), HASH)

    assert decision.package.recipient(2).authentication.methods == ("password",)
    assert decision.package.recipient(2).authentication.secret_hash == HASH
    assert decision.package.recipient(1).authentication is None
    assert [(c.action, c.order) for c in decision.changes] == [("recipient_authentication_updated", 2)]


def test_password_left_out_null_or_empty_keeps_the_existing_one() -> None:
    """Once set, a password stays when the body leaves it out, sends null or sends ""."""
    package = domain.update_recipient_authentication(
        registered(), OWNER, 1, signinghub(authentication=PASSWORD_ON), HASH).package
    for password in ({}, {"user_password": None}, {"user_password": ""}):
        setting = {"enabled": True, "password": {"enabled": True, **password}}
        kept = domain.update_recipient_authentication(package, OWNER, 1, signinghub(authentication=setting), None)
        assert kept.package.recipient(1).authentication.secret_hash == HASH


def test_enabling_password_without_any_password_names_the_field() -> None:
    """Password authentication for a recipient with no password and none given is a 400 naming it."""
    setting = {"enabled": True, "password": {"enabled": True, "user_password": ""}}

    with pytest.raises(domain.InvalidSettings) as caught:
        domain.update_recipient_authentication(registered(), OWNER, 1, signinghub(authentication=setting), None)

    assert caught.value.field == "body.authentication.password.user_password"


def test_seed_sample_applies_to_all_keeping_passwords_and_setting_the_dates() -> None:
    """The SigningHub sample, after passwords were set, applies the date window to every
    recipient and keeps their passwords."""
    package = domain.update_recipient_authentication(
        registered(), OWNER, 1, signinghub(apply_to_all=True, authentication=PASSWORD_ON), HASH).package

    decision = domain.update_recipient_authentication(
        package, OWNER, 1, SigningHubAuthenticationBody.model_validate_json(SIGNINGHUB_SAMPLE), None)

    window = AccessWindow(starts_at=datetime(2015, 2, 13, 12, 10, tzinfo=UTC),
                          ends_at=datetime(2015, 2, 28, 12, 10, tzinfo=UTC))
    for recipient in decision.package.recipients:
        assert recipient.authentication.methods == ("password",)
        assert recipient.authentication.secret_hash == HASH
        assert recipient.access_window == window
    assert [c.order for c in decision.changes] == [1, 2]


def test_sms_otp_with_password_and_access_by_days() -> None:
    """Password and SMS OTP together, with access for some days after receipt."""
    setting = {"enabled": True, "password": {"enabled": True, "user_password": "pw-4821"},
               "sms_otp": {"enabled": True, "mobile_number": "00445566778899"}}
    duration = {"enabled": True, "duration_by_days": {"enabled": True, "duration": {"total_days": 4}}}

    recipient = domain.update_recipient_authentication(
        registered(), OWNER, 1, signinghub(authentication=setting, access_duration=duration), HASH,
    ).package.recipient(1)

    assert recipient.authentication.methods == ("password", "sms_otp")
    assert recipient.authentication.mobile_number == "+445566778899"
    assert recipient.access_window == AccessWindow(days_after_receipt=4)


def test_disabling_authentication_and_access_duration_clears_them() -> None:
    """enabled: false removes the authentication (and its hash) and the window."""
    package = domain.update_recipient_authentication(
        registered(), OWNER, 1, signinghub(authentication=PASSWORD_ON, access_duration={
            "enabled": True, "duration_by_days": {"enabled": True, "duration": {"total_days": 2}}}), HASH).package

    recipient = domain.update_recipient_authentication(
        package, OWNER, 1, signinghub(authentication={"enabled": False}, access_duration={"enabled": False}), None,
    ).package.recipient(1)

    assert (recipient.authentication, recipient.access_window) == (None, None)


# -- BoldSign shape --


def boldsign(text_or_fields: str | dict[str, Any]) -> AddAuthenticationBody:
    if isinstance(text_or_fields, str):
        return AddAuthenticationBody.model_validate(body(text_or_fields))
    return AddAuthenticationBody.model_validate(text_or_fields)


@pytest.mark.parametrize(("sample", "method"), [
    ("email_otp", "email_otp"), ("access_code", "access_code"), ("sms_otp", "sms_otp"),
    ("email_otp_with_order", "email_otp"),
])
def test_boldsign_samples_set_the_signers_method_with_three_retries(sample: str, method: str) -> None:
    """Each BoldSign sample sets that method on the signer, retry count 3, in draft or in progress."""
    for package in (registered(), shared(registered())):
        decision = domain.add_authentication(package, OWNER, boldsign(BOLDSIGN_SAMPLES[sample]), HASH)
        authentication = decision.package.recipient(2).authentication
        assert authentication.methods == (method,)
        assert authentication.retry_count == 3
        assert authentication.frequency == "UntilSignCompleted"
    assert authentication.secret_hash == (HASH if method == "access_code" else None)
    assert authentication.mobile_number == ("+12015666802" if method == "sms_otp" else None)


def test_repeated_signer_needs_an_order_and_the_order_picks_the_signer() -> None:
    """With the email at orders 1 and 2, no order is a 400 on body.order; order 2 picks recipient 2."""
    package = registered(recipients=[
        {"order": 1, "email": BOLDSIGN_SIGNER, "name": "Alex"},
        {"order": 2, "email": "ALEXGAYLE@cubeflakes.com", "name": "Alex again"},
    ])

    with pytest.raises(domain.InvalidSettings) as caught:
        domain.add_authentication(package, OWNER, boldsign(BOLDSIGN_SAMPLES["email_otp"]), None)
    assert caught.value.field == "body.order"
    decision = domain.add_authentication(package, OWNER, boldsign(BOLDSIGN_SAMPLES["email_otp_with_order"]), None)
    assert decision.package.recipient(2).authentication is not None
    assert decision.package.recipient(1).authentication is None


def test_email_that_is_not_a_signer_is_refused_naming_email_id() -> None:
    """An emailId not among the signers (a reviewer, or nobody) is a 400 on body.emailId."""
    package = registered(recipients=[{"order": 1, "email": "r@example.com", "name": "R", "role": "reviewer"}])

    for email in ("r@example.com", "nobody@example.com"):
        with pytest.raises(domain.InvalidSettings) as caught:
            domain.add_authentication(package, OWNER, boldsign({"authenticationType": "EmailOTP", "emailId": email}),
                                      None)
        assert caught.value.field == "body.emailId"


def test_sms_otp_falls_back_to_the_mobile_on_record_or_names_phone_number() -> None:
    """SMSOTP without phoneNumber uses the signer's mobile; with none on record it is a 400."""
    package = registered()
    first = boldsign({"authenticationType": "SMSOTP", "emailId": "first@example.com"})

    assert domain.add_authentication(package, OWNER, first, None).package.recipient(1).authentication.mobile_number == (
        "+447700900001")
    with pytest.raises(domain.InvalidSettings) as caught:
        domain.add_authentication(package, OWNER, boldsign({"authenticationType": "SMSOTP", "emailId": BOLDSIGN_SIGNER}),
                                  None)
    assert caught.value.field == "body.phoneNumber"


def test_identity_verification_settings_are_stored_and_set_the_frequency() -> None:
    """identityVerificationSettings are kept; their type is how often the signer re-authenticates."""
    add = boldsign({"authenticationType": "EmailOTP", "emailId": BOLDSIGN_SIGNER, "authenticationRetryCount": 5,
                    "identityVerificationSettings": {"type": "EveryAccess", "maximumRetryCount": 10,
                                                     "requireLiveCapture": True, "nameMatcher": "Lenient"}})

    authentication = domain.add_authentication(registered(), OWNER, add, None).package.recipient(2).authentication

    assert (authentication.retry_count, authentication.frequency) == (5, "EveryAccess")
    assert authentication.identity_verification.maximum_retry_count == 10
    assert authentication.identity_verification.require_live_capture is True
    assert authentication.identity_verification.name_matcher == "Lenient"


def test_on_behalf_of_must_be_the_documents_sender_identity() -> None:
    """onBehalfOf naming another sender than the package's is a 400; the right one is accepted."""
    package = registered(on_behalf_of="sender@example.com")
    fields = {"authenticationType": "EmailOTP", "emailId": BOLDSIGN_SIGNER}

    with pytest.raises(domain.InvalidSettings) as caught:
        domain.add_authentication(package, OWNER, boldsign({**fields, "onBehalfOf": "other@example.com"}), None)
    assert caught.value.field == "body.onBehalfOf"
    accepted = domain.add_authentication(package, OWNER, boldsign({**fields, "onBehalfOf": "Sender@example.com"}), None)
    assert accepted.package.recipient(2).authentication.on_behalf_of == "Sender@example.com"


def test_boldsign_changes_are_refused_once_finished_or_after_the_signer_signed() -> None:
    """A terminated document, or a signer who signed, cannot have authentication changed (409)."""
    add = boldsign(BOLDSIGN_SAMPLES["email_otp"])
    package = shared(registered(workflow_type="parallel"))
    terminated = domain.terminate_workflow(package, OWNER, T0, None).package
    signed = domain.record_signed(domain.record_received(package, OWNER, 2, T0).package, OWNER, 2, T0).package

    assert refusal(domain.add_authentication, terminated, OWNER, add, None)[:2] == (409, "workflow_finished")
    assert refusal(domain.add_authentication, signed, OWNER, add, None)[:2] == (409, "recipient_already_signed")


def test_remove_and_change_access_code() -> None:
    """An access code can be changed (new hash) and the authentication removed."""
    package = domain.add_authentication(registered(), OWNER, boldsign(BOLDSIGN_SAMPLES["access_code"]), HASH).package
    reference = SignerReference.model_validate({"emailId": BOLDSIGN_SIGNER})

    changed = domain.change_access_code(
        package, OWNER, ChangeAccessCodeBody.model_validate({"emailId": BOLDSIGN_SIGNER, "accessCode": "654321"}),
        "$argon2id$new").package
    removed = domain.remove_authentication(changed, OWNER, reference).package

    assert changed.recipient(2).authentication.secret_hash == "$argon2id$new"
    assert removed.recipient(2).authentication is None
    assert refusal(domain.change_access_code, removed, OWNER,
                   ChangeAccessCodeBody.model_validate({"emailId": BOLDSIGN_SIGNER, "accessCode": "193746"}),
                   "$h")[1] == "not_access_code"


# -- reset --


def locked_out(package: Package, order: int) -> Package:
    return domain.record_authentication_fact(package, AuthenticationFact(
        "recipient_locked_out", order, T0, failed_attempts=3, locked=True)).package


def test_reset_clears_one_recipients_lockout_and_nothing_else() -> None:
    """Resetting recipient 2 clears their failures and lock; recipient 1, signatures and the
    package state are as they were."""
    package = domain.add_authentication(
        shared(registered(workflow_type="parallel")), OWNER, boldsign(BOLDSIGN_SAMPLES["access_code"]), HASH).package
    package = domain.record_signed(domain.record_received(package, OWNER, 1, T0).package, OWNER, 1, T0).package
    package = locked_out(locked_out(package, 1), 2)

    decision = domain.reset_recipient_authentication(package, OWNER, 2)

    assert decision.package.recipient(1) == package.recipient(1)
    assert (decision.package.state, decision.package.locked) == (package.state, package.locked)
    after = decision.package.recipient(2)
    assert (after.failed_attempts, after.locked_out_at) == (0, None)
    assert after.authentication == package.recipient(2).authentication
    assert decision.changes[0].details == {
        "was_locked": True, "failures_cleared": 3, "method_changed": False, "secret_changed": False}


def test_reset_is_idempotent() -> None:
    """Resetting twice leaves the recipient as resetting once, but for the authentication version:
    each reset invalidates the invitations issued before it."""
    package = locked_out(shared(registered()), 2)

    once = domain.reset_recipient_authentication(package, OWNER, 2).package
    twice = domain.reset_recipient_authentication(once, OWNER, 2).package

    assert replace(twice.recipient(2), authentication_version=0) == replace(once.recipient(2), authentication_version=0)
    assert twice.recipient(2).authentication_version == once.recipient(2).authentication_version + 1
    assert twice.recipient(1) == once.recipient(1)


def test_reset_can_set_a_new_access_code_or_switch_method() -> None:
    """A reset may carry a new access code, or switch to SMS OTP with the mobile on record."""
    package = domain.add_authentication(
        shared(registered()), OWNER,
        boldsign({"authenticationType": "AccessCode", "emailId": "first@example.com", "accessCode": "193746"}),
        HASH).package

    recoded = domain.reset_recipient_authentication(package, OWNER, 1, secret_hash="$new").package
    switched = domain.reset_recipient_authentication(package, OWNER, 1, method="sms_otp").package

    assert recoded.recipient(1).authentication.secret_hash == "$new"
    assert switched.recipient(1).authentication.methods == ("sms_otp",)
    assert switched.recipient(1).authentication.mobile_number == "+447700900001"
    assert switched.recipient(1).authentication.secret_hash is None
    with pytest.raises(domain.InvalidSettings) as caught:
        domain.reset_recipient_authentication(package, OWNER, 2, method="sms_otp")
    assert caught.value.field == "mobile_number"


def test_reset_is_refused_on_a_finished_workflow_and_for_strangers() -> None:
    """A completed workflow has nothing to reset (409); another user gets the seed's 403."""
    package = shared(registered())
    terminated = domain.terminate_workflow(package, OWNER, T0, None).package

    assert refusal(domain.reset_recipient_authentication, terminated, OWNER, 1)[:2] == (409, "workflow_finished")
    assert refusal(domain.reset_recipient_authentication, package, "stranger", 1)[2] == (
        "Document does not belong to user")


# -- facts from the authentication service and views --


def test_authentication_facts_keep_failures_and_lock_and_clearing_undoes_them() -> None:
    """A failure sets the count, a lockout locks, a clearing unlocks; each is a history change."""
    package = shared(registered())
    failed = domain.record_authentication_fact(package, AuthenticationFact(
        "recipient_authentication_failed", 1, T0, failed_attempts=2)).package
    locked = locked_out(failed, 1)
    cleared = domain.record_authentication_fact(locked, AuthenticationFact(
        "recipient_authentication_cleared", 1, T0, failed_attempts=0, locked=False))

    assert failed.recipient(1).failed_attempts == 2
    assert locked.recipient(1).locked_out_at == T0
    assert (cleared.package.recipient(1).failed_attempts, cleared.package.recipient(1).locked_out_at) == (0, None)
    assert cleared.changes[0].action == "recipient_authentication_cleared"
    assert views.events(cleared, KEYS) == []


def test_events_seal_the_hash_and_destination_and_the_query_carries_neither() -> None:
    """The policy event carries the hash and the OTP destination only sealed to the authentication
    service, bound to the recipient and version; the owner's view masks both away."""
    setting = {"enabled": True, "password": {"enabled": True, "user_password": "pw-4821"},
               "sms_otp": {"enabled": True, "mobile_number": "+445566778899"}}
    decision = domain.update_recipient_authentication(registered(), OWNER, 1, signinghub(authentication=setting), HASH)

    [event] = views.events(decision, KEYS)
    described = views.describe(decision.package, decision.package.recipient(1), KEYS)

    published = event.model_dump_json()
    assert HASH not in published and "5566778899" not in published and "first@example.com" not in published
    assert event.authentication.destination_masked == "+44******8899"
    assert event.authentication_version == 1
    opened = AUTHENTICATION_OPENER.open(sealed_policy_context("p-1", 1, 1), event.authentication.sealed)
    assert opened == {"secret_hash": HASH, "destination": "+445566778899"}
    with pytest.raises(SealedValueError):
        AUTHENTICATION_OPENER.open(sealed_policy_context("p-1", 2, 1), event.authentication.sealed)
    public = described.model_dump_json()
    assert HASH not in public and "5566778899" not in public and "first@example.com" not in public
    assert described.authentication.secret_set is True


def test_every_workflow_change_has_an_event() -> None:
    """Each change the workflow makes itself is published; only other services' facts are not."""
    package = shared(registered(workflow_type="parallel"))
    package = domain.record_received(package, OWNER, 1, T0).package
    decision = domain.record_declined(package, OWNER, 1, T0, None)

    assert [e.type for e in views.events(decision, KEYS)] == ["workflow.recipient_declined", "workflow.workflow_declined"]
    assert {e.package_id for e in views.events(decision, KEYS)} == {"p-1"}
    assert decision.package.state == "declined"
