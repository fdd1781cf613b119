"""The client's pure rules: where a command goes, under which key, and when its outcome is complete."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import ConsumerRecord

from signgate_client import Answer, Outcome, Rejected, parse_command, route
from signgate_client.client import SignGateClient, _Pending
from signgate_client.routing import Progress, answers_command, progress
from signgate_contracts import CommandRejected, encode, otp
from signgate_contracts import authentication as auth
from signgate_contracts import identity as idn
from signgate_contracts import workflow as wf

NOW = datetime(2026, 1, 1, tzinfo=UTC)
GRANT = auth.DocumentAccessGranted(package_id="p", order=1, grant="g", frequency="EveryAccess")
AUTHENTICATED = auth.RecipientAuthenticated(package_id="p", order=1, method="access_code")
REFUSED = CommandRejected(status=403, code="recipient_locked", message="locked")


def test_identity_commands_are_keyed_by_the_normalised_user_name() -> None:
    """An identity command goes to identity's command topic under its stripped, lower-cased user name."""
    path = route(idn.AuthenticateUser(user_name="  Ann@Example.COM ", password="x"))
    assert (path.topic.name, path.key, path.outcome.name, path.replies.name, path.answer) == (
        "signgate.identity.commands", "ann@example.com", "signgate.identity.events", "signgate.identity.replies",
        Answer.EVENT_AND_REPLY)


def test_the_authenticator_commands_that_answer_with_a_secret_wait_for_their_reply() -> None:
    """Enrolling, confirming and renewing recovery codes are complete only with their reply (the secret
    or the codes); disabling with its event."""
    assert [route(c).answer for c in (
        idn.EnrolAuthenticator(user_name="a"), idn.ConfirmAuthenticator(user_name="a", one_time_code="1"),
        idn.RegenerateRecoveryCodes(user_name="a", one_time_code="1"), idn.DisableAuthenticator(user_name="a"),
    )] == [Answer.EVENT_AND_REPLY] * 3 + [Answer.EVENT]


def test_package_commands_are_keyed_by_package_and_otp_requests_by_challenge() -> None:
    """Workflow and authentication commands are keyed by package id; an OTP request by its challenge id."""
    challenge = uuid.uuid4()
    assert route(wf.ShareWorkflow(package_id="pkg-1")).key == "pkg-1"
    assert route(auth.RequestDocumentOtp(package_id="pkg-2", order=1)).key == "pkg-2"
    request = otp.OtpDeliveryRequested(challenge_id=challenge, package_id="p", order=1, channel="sms",
                                       destination="+447700900123")
    assert (route(request).topic.name, route(request).key) == ("signgate.otp.requests", str(challenge))


def test_queries_are_answered_by_a_reply_and_opening_by_an_event_and_maybe_a_grant() -> None:
    """Queries complete with their reply; document opening with its event, then perhaps a grant."""
    assert route(wf.GetWorkflowHistory(package_id="p")).answer is Answer.REPLY
    assert route(auth.GetRecipientAuthenticationStatus(package_id="p", order=1)).answer is Answer.REPLY
    assert route(auth.VerifyDocumentOtp(package_id="p", order=1, code="1")).answer is Answer.EVENT_AND_GRANT
    assert route(wf.ResetRecipientAuthentication(package_id="p", order=1)).answer is Answer.EVENT


def test_an_event_is_not_a_command() -> None:
    """Routing an event is refused: only command topics take messages from a client."""
    with pytest.raises(ValueError, match="not a command"):
        route(AUTHENTICATED)  # type: ignore[arg-type]


@pytest.mark.parametrize(("answer", "event", "reply", "expected"), [
    (Answer.EVENT, None, None, Progress.WAITING),
    (Answer.EVENT, AUTHENTICATED, None, Progress.COMPLETE),
    (Answer.EVENT, REFUSED, None, Progress.COMPLETE),
    (Answer.REPLY, None, None, Progress.WAITING),
    (Answer.REPLY, None, GRANT, Progress.COMPLETE),
    (Answer.REPLY, REFUSED, None, Progress.COMPLETE),
    (Answer.EVENT_AND_REPLY, AUTHENTICATED, None, Progress.WAITING),
    (Answer.EVENT_AND_REPLY, None, GRANT, Progress.WAITING),
    (Answer.EVENT_AND_REPLY, AUTHENTICATED, GRANT, Progress.COMPLETE),
    (Answer.EVENT_AND_GRANT, AUTHENTICATED, None, Progress.GRANT_MAY_FOLLOW),
    (Answer.EVENT_AND_GRANT, AUTHENTICATED, GRANT, Progress.COMPLETE),
    (Answer.EVENT_AND_GRANT, REFUSED, None, Progress.COMPLETE),
    (Answer.EVENT_AND_GRANT, auth.RecipientLockedOut(package_id="p", order=1, method="sms_otp", failures=3,
                                                     locked_at=NOW), None, Progress.COMPLETE),
])
def test_progress_of_an_outcome(answer: Answer, event, reply, expected: Progress) -> None:
    """An outcome is complete once the rejection, or everything the command's kind owes, has arrived."""
    assert progress(answer, event, reply) is expected


def test_a_caller_whose_replies_go_elsewhere_waits_for_the_event_only() -> None:
    """Without a reply expected, the event completes even a command that would have a reply."""
    assert progress(Answer.EVENT_AND_REPLY, AUTHENTICATED, None, reply_expected=False) is Progress.COMPLETE


def test_awaited_effects_hold_the_outcome_open_until_they_arrive() -> None:
    """An outcome waits for every effect asked for, even after its event has arrived."""
    cleared = "authentication.recipient_authentication_cleared"
    assert progress(Answer.EVENT, AUTHENTICATED, None, effects={cleared}) is Progress.WAITING
    assert progress(Answer.EVENT, AUTHENTICATED, None, effects={cleared}, seen={cleared}) is Progress.COMPLETE


def test_a_refusal_completes_an_outcome_whose_effects_will_never_come() -> None:
    """A refused command causes nothing: its rejection completes the outcome without the effects asked for."""
    cleared = "authentication.recipient_authentication_cleared"
    assert progress(Answer.EVENT, REFUSED, None, effects={cleared}) is Progress.COMPLETE


def test_parse_command_picks_the_model_by_type_and_fills_the_envelope() -> None:
    """A command's JSON document becomes its model, with a fresh event and correlation id."""
    command = parse_command({"type": "workflow.share_workflow", "package_id": "p"})
    assert isinstance(command, wf.ShareWorkflow) and command.correlation_id is not None
    with pytest.raises(ValueError, match="no signgate command"):
        parse_command({"type": "workflow.workflow_shared", "package_id": "p"})


def test_an_accepted_outcome_passes_and_a_rejected_one_raises() -> None:
    """`accepted()` returns the outcome, or raises `Rejected` carrying the rejection."""
    command = wf.ShareWorkflow(package_id="p")
    assert Outcome(command, AUTHENTICATED).accepted().result is AUTHENTICATED
    with pytest.raises(Rejected) as raised:
        Outcome(command, REFUSED).accepted()
    assert raised.value.rejection is REFUSED
    assert Outcome(command, None, GRANT).result is GRANT


def test_a_fact_after_an_outcome_is_never_taken_as_the_answer() -> None:
    """A code rerouted or undelivered after the request was answered carries the request's correlation
    id on its outcome topic, yet the client takes neither as the command's outcome: the code sent is."""
    command = auth.RequestDocumentOtp(package_id="p", order=1, access_token="t")
    stamp = {"correlation_id": command.correlation_id, "package_id": "p", "order": 1, "channel": "email",
             "destination": "c***@example.com"}
    rerouted = auth.DocumentOtpRerouted(**stamp, reason="no_receipt", expires_at=NOW, resend_available_at=NOW)
    undelivered = auth.DocumentOtpUndelivered(**stamp)
    sent = auth.DocumentOtpSent(**stamp, expires_at=NOW, resend_available_at=NOW)
    client = SignGateClient("127.0.0.1:9")
    pending = _Pending(command, route(command), wants_reply=False, effects=frozenset())

    for message in (rerouted, undelivered, sent, rerouted):
        client._take(pending, ConsumerRecord(
            "signgate.authentication.events", 0, 0, 0, 0, b"p", encode(message), None, 1, 1, []))

    assert pending.event == sent and pending.progress() is Progress.COMPLETE
    assert [answers_command(m) for m in (rerouted, undelivered, sent, REFUSED)] == [False, False, True, True]
