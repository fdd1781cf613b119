"""The pure rules of voice codes and delivery fallback: contracts, the fallback's request, and the plan
authentication makes from a recipient's policy."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from libs.runtime.errors import BadRequest
from services.authentication.domain import RecipientPolicy, otp_delivery_plan
from services.otp_dispatch.domain import FallbackOf, fallback_after, fallback_request
from signgate_contracts import authentication as auth
from signgate_contracts import workflow as wf
from signgate_contracts.otp import FallbackStep, OtpDeliveryRequested

NUMBER = "+447700900501"


def request(**fields: object) -> OtpDeliveryRequested:
    values: dict[str, object] = {"package_id": "pkg-1", "order": 1, "channel": "sms", "destination": NUMBER}
    return OtpDeliveryRequested(**(values | fields))


def test_a_voice_request_needs_an_e164_number() -> None:
    """A voice code goes to an E.164 number: an email or a national number is refused at the contract."""
    assert request(channel="voice").channel == "voice"
    for destination in ("bob@example.com", "07700 900501"):
        with pytest.raises(ValidationError, match="E.164"):
            request(channel="voice", destination=destination)


def test_a_fallback_step_is_checked_like_a_destination() -> None:
    """A fallback step's destination must suit its channel, and a request names at most two steps."""
    with pytest.raises(ValidationError):
        FallbackStep(channel="email", destination=NUMBER)
    with pytest.raises(ValidationError):
        request(fallback=[FallbackStep(channel="voice", destination=NUMBER)] * 3)


def test_the_fallback_request_is_the_same_each_time_it_is_derived() -> None:
    """The next channel's request takes the first step, keeps the rest, the correlation and the recipient,
    and its ids are derived from the failed request's, so two replicas derive one request."""
    failed = request(fallback=[FallbackStep(channel="voice", destination=NUMBER),
                               FallbackStep(channel="email", destination="bob@example.com")])

    first, again = fallback_request(failed), fallback_request(failed)

    assert first is not None and first == again
    assert (first.channel, first.destination, first.correlation_id) == ("voice", NUMBER, failed.correlation_id)
    assert [step.channel for step in first.fallback] == ["email"]
    assert first.event_id != failed.event_id and first.challenge_id != failed.challenge_id
    assert fallback_request(request()) is None


def test_a_fallback_is_answered_before_once_a_code_of_its_chain_was_sent() -> None:
    """A fallback of a text refused at once is the request's answer; one after a sent text (no receipt) is
    answered before, and so is every fallback down that chain, even one of a call refused at once."""
    text, call = uuid.uuid4(), uuid.uuid4()

    refused_at_once = fallback_after(text, "provider_refused", None, answered=False)
    after_no_receipt = fallback_after(text, "no_receipt", None, answered=True)
    down_the_chain = fallback_after(call, "provider_refused", after_no_receipt, answered=False)

    assert refused_at_once == FallbackOf(text, "provider_refused", answered_before=False)
    assert after_no_receipt.answered_before and down_the_chain == FallbackOf(call, "provider_refused", True)
    assert not fallback_after(call, "provider_refused", refused_at_once, answered=False).answered_before


def test_an_old_policy_without_the_fallback_field_decodes_with_none() -> None:
    """A policy published before fallback existed reads as one without fallback."""
    policy = wf.SealedAuthenticationPolicy.model_validate(
        {"methods": ["sms_otp"], "secret_set": False, "channel": "sms", "retry_count": 3, "frequency": "EveryAccess"})

    assert policy.otp_fallback == []


def test_the_senders_fallback_channels_are_checked() -> None:
    """SigningHub's sms_otp takes voice and email once each; BoldSign's otpFallback only with SMSOTP."""
    assert wf.SmsOtpSetting(enabled=True, mobile_number=NUMBER, fallback=["voice", "email"]).fallback == ["voice", "email"]
    with pytest.raises(ValidationError, match="at most once"):
        wf.SmsOtpSetting(enabled=True, mobile_number=NUMBER, fallback=["voice", "voice"])
    with pytest.raises(ValidationError, match="only to SMSOTP"):
        wf.AddAuthenticationBody.model_validate(
            {"emailId": "bob@example.com", "authenticationType": "EmailOTP", "otpFallback": ["voice"]})


def policy(**fields: object) -> RecipientPolicy:
    values: dict[str, object] = {"package_id": "pkg-1", "order": 1, "email": "digest", "methods": ("sms_otp",),
                                 "destination": NUMBER}
    return RecipientPolicy(**(values | fields))  # type: ignore[arg-type]


def test_the_plan_follows_the_pick_and_the_senders_order() -> None:
    """A phone number allows sms and voice; the fallback is the sender's channels after the pick, voice to the
    number and email to the sealed address; a policy without fallback gives none."""
    both = policy(otp_fallback=("voice", "email"), fallback_email="bob@example.com")

    by_sms = otp_delivery_plan(both, "sms", None)
    by_voice = otp_delivery_plan(both, "sms", "voice")
    none = otp_delivery_plan(policy(), "sms", None)

    assert (by_sms.channel, [(s.channel, s.destination) for s in by_sms.fallback]) == (
        "sms", [("voice", NUMBER), ("email", "bob@example.com")])
    assert (by_voice.channel, [s.channel for s in by_voice.fallback]) == ("voice", ["email"])
    assert (none.channel, none.fallback) == ("sms", [])


def test_a_channel_the_policy_does_not_allow_is_a_400() -> None:
    """An email recipient cannot ask for a call or a text, nor a phone recipient for an email."""
    email_policy = policy(methods=("email_otp",), destination="bob@example.com")
    for chosen, channel_on_record, subject in (("voice", "email", email_policy), ("email", "sms", policy())):
        with pytest.raises(BadRequest) as refused:
            otp_delivery_plan(subject, channel_on_record, chosen)  # type: ignore[arg-type]
        assert refused.value.code == "otp_channel_not_allowed"


def test_a_phone_recipient_may_fall_back_to_voice_only_with_a_number() -> None:
    """An email fallback without the sealed address is left out rather than sent nowhere."""
    plan = otp_delivery_plan(policy(otp_fallback=("email", "voice")), "sms", None)

    assert [s.channel for s in plan.fallback] == ["voice"]


def test_a_signer_may_ask_for_a_call_but_not_an_email() -> None:
    """A signer's code goes to their profile's mobile number: by text unless they ask for a call; email
    is no channel for it."""
    named = {"package_id": "pkg-1", "document_id": "doc-1", "field_name": "signature-1"}
    assert auth.RequestSigningOtp(**named).channel == "sms"
    assert auth.RequestSigningOtp(**named, channel="voice").channel == "voice"
    with pytest.raises(ValidationError):
        auth.RequestSigningOtp(**named, channel="email")
