"""The workflow's command contracts accept the seeds' bodies verbatim and name what is wrong."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from libs.runtime.messaging.pipeline import describe_validation_error
from signgate_contracts import decode, encode
from signgate_contracts.topics import WORKFLOW_COMMANDS
from signgate_contracts.workflow import AddAuthentication, UpdateRecipientAuthentication
from tests.support.workflow_seeds import BOLDSIGN_SAMPLES, SIGNINGHUB_SAMPLE, body


def command(type_: str, **fields: Any) -> bytes:
    return json.dumps({"type": type_, "package_id": "p-1", **fields}).encode()


def rejected_field(raw: bytes) -> str | None:
    with pytest.raises(ValidationError) as caught:
        decode(WORKFLOW_COMMANDS, raw)
    return describe_validation_error(caught.value, json.loads(raw)["type"])[0]


def test_signinghub_sample_is_accepted_verbatim_with_its_three_digit_seconds() -> None:
    """The seed's SigningHub body decodes as is; "12:10:000Z" is read as 12:10:00.000 UTC."""
    raw = command("workflow.update_recipient_authentication", order=1, body=body(SIGNINGHUB_SAMPLE))

    update = decode(WORKFLOW_COMMANDS, raw)

    assert isinstance(update, UpdateRecipientAuthentication)
    duration = update.body.access_duration.duration_by_date.duration
    assert duration.start_date_time == datetime(2015, 2, 13, 12, 10, tzinfo=UTC)
    assert duration.end_date_time == datetime(2015, 2, 28, 12, 10, tzinfo=UTC)
    assert update.body.apply_to_all is True
    assert update.body.authentication.password.user_password.get_secret_value() == ""
    assert update.body.authentication.sms_otp.mobile_number == "+445566778899"


@pytest.mark.parametrize("sample", sorted(BOLDSIGN_SAMPLES))
def test_boldsign_samples_are_accepted_verbatim(sample: str) -> None:
    """Each BoldSign sample body decodes as is, camelCase and all, and survives a round trip."""
    add = decode(WORKFLOW_COMMANDS, command("workflow.add_authentication", body=body(BOLDSIGN_SAMPLES[sample])))

    assert isinstance(add, AddAuthentication)
    assert add.body.email_id == "alexgayle@cubeflakes.com"
    assert decode(WORKFLOW_COMMANDS, encode(add)) == add
    assert '"authenticationType"' in encode(add).decode()


def test_boldsign_retry_count_defaults_to_none_meaning_three_and_sms_phone_is_e164() -> None:
    """Left out, authenticationRetryCount is None (the rules apply 3); a phone number joins its
    country code."""
    add = decode(WORKFLOW_COMMANDS, command("workflow.add_authentication", body=body(BOLDSIGN_SAMPLES["sms_otp"])))

    assert add.body.authentication_retry_count is None
    assert add.body.phone_number.e164 == "+12015666802"


def signinghub(**body_fields: Any) -> bytes:
    return command("workflow.update_recipient_authentication", order=1, body=body_fields)


def boldsign(**body_fields: Any) -> bytes:
    return command("workflow.add_authentication", body={"emailId": "a@example.com", **body_fields})


BY_DATE = {"enabled": True, "duration": {"start_date_time": "2015-02-13T12:10:000Z",
                                          "end_date_time": "2015-02-28T12:10:000Z"}}


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (signinghub(authentication={"enabled": True, "sms_otp": {"enabled": True}}),
         "body.authentication.sms_otp.mobile_number"),
        (signinghub(authentication={"enabled": True, "sms_otp": {"enabled": True, "mobile_number": "12345"}}),
         "body.authentication.sms_otp.mobile_number"),
        (signinghub(authentication={"enabled": True}), "body.authentication"),
        (signinghub(authentication={"enabled": "maybe"}), "body.authentication.enabled"),
        (signinghub(access_duration={"enabled": True, "duration_by_date": BY_DATE,
                                     "duration_by_days": {"enabled": True, "duration": {"total_days": 3}}}),
         "body.access_duration.duration_by_days"),
        (signinghub(access_duration={"enabled": True}), "body.access_duration.duration_by_days"),
        (signinghub(access_duration={"enabled": True, "duration_by_days": {"enabled": True,
                                                                           "duration": {"total_days": 0}}}),
         "body.access_duration.duration_by_days.duration.total_days"),
        (signinghub(access_duration={"enabled": True, "duration_by_date": {
            "enabled": True, "duration": {"start_date_time": "2015-02-28T12:10:000Z",
                                          "end_date_time": "2015-02-13T12:10:000Z"}}}),
         "body.access_duration.duration_by_date.duration.end_date_time"),
        (signinghub(access_duration={"enabled": True, "duration_by_date": {
            "enabled": True, "duration": {"start_date_time": "soon", "end_date_time": "2015-02-13T12:10:000Z"}}}),
         "body.access_duration.duration_by_date.duration.start_date_time"),
        (command("workflow.update_recipient_authentication", order=51, body={}), "order"),
        (boldsign(authenticationType="AccessCode"), "body.accessCode"),
        (boldsign(authenticationType="EmailOTP", accessCode="123456"), "body.accessCode"),
        (boldsign(authenticationType="Fingerprint"), "body.authenticationType"),
        (boldsign(authenticationType="EmailOTP", order=0), "body.order"),
        (boldsign(authenticationType="EmailOTP", order=51), "body.order"),
        (boldsign(authenticationType="EmailOTP", authenticationRetryCount=0), "body.authenticationRetryCount"),
        (boldsign(authenticationType="EmailOTP", authenticationRetryCount=11), "body.authenticationRetryCount"),
        (boldsign(authenticationType="SMSOTP", phoneNumber={"countryCode": "+1", "number": "12-34"}),
         "body.phoneNumber.number"),
        (boldsign(authenticationType="EmailOTP", identityVerificationSettings={"type": "Sometimes"}),
         "body.identityVerificationSettings.type"),
        (boldsign(authenticationType="EmailOTP", identityVerificationSettings={"maximumRetryCount": 11}),
         "body.identityVerificationSettings.maximumRetryCount"),
        (boldsign(authenticationType="EmailOTP", identityVerificationSettings={"nameMatcher": "Loose"}),
         "body.identityVerificationSettings.nameMatcher"),
        (boldsign(authenticationType="EmailOTP", onBehalfOf="not an email"), "body.onBehalfOf"),
        (command("workflow.add_authentication", body={"authenticationType": "EmailOTP", "emailId": "nobody"}),
         "body.emailId"),
        (command("workflow.change_access_code", body={"emailId": "a@example.com", "accessCode": ""}),
         "body.accessCode"),
        (command("workflow.register_package", name="n", documents=[{"document_id": "d", "name": "d"}],
                 recipients=[{"order": 1, "email": "a@example.com", "name": "A"},
                             {"order": 1, "email": "b@example.com", "name": "B"}]), "recipients"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_invalid_body_names_the_offending_field(raw: bytes, field: str) -> None:
    """Each invalid body is refused by the contract naming the field the pipeline reports."""
    assert rejected_field(raw) == field


def test_lenient_datetime_reads_offsets_and_assumes_utc_without_one() -> None:
    """A three-digit-seconds time with an offset keeps it; one without an offset is UTC."""
    raw = signinghub(access_duration={"enabled": True, "duration_by_date": {"enabled": True, "duration": {
        "start_date_time": "2015-02-13T12:10:005+01:00", "end_date_time": "2015-02-28T12:10:00"}}})

    duration = decode(WORKFLOW_COMMANDS, raw).body.access_duration.duration_by_date.duration

    assert duration.start_date_time == datetime(2015, 2, 13, 11, 10, 0, 500_000, tzinfo=UTC)
    assert duration.end_date_time == datetime(2015, 2, 28, 12, 10, tzinfo=UTC)


def test_access_codes_are_hidden_in_repr() -> None:
    """A command's access code does not show in its repr (logs, tracebacks)."""
    add = decode(WORKFLOW_COMMANDS, command("workflow.add_authentication", body=body(BOLDSIGN_SAMPLES["access_code"])))

    assert "123456" not in repr(add)
