"""The gateway's pure rules: SigningHub's requests as commands, outcomes as answers, the limits."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import Headers

from services.gateway.boldsign import BoldSignTotpProvisioning
from services.gateway.errors import MALFORMED_JSON, GatewayError, shape_for, signinghub_error
from services.gateway.middleware import client_address, credential_of
from services.gateway.outcomes import provisioned_totp, rejection_error
from services.gateway.rate_limit import limit_key, retry_after
from services.gateway.signinghub import (
    ACCESS_GRANTED,
    METHOD_PASSED,
    SEED_000_BODY,
    ResetAuthenticationBody,
    SigningOtpBody,
    authentication_view,
    history_view,
    opened_view,
    reset_command,
    signing_otp_command,
    update_authentication_command,
)
from services.gateway.validation import BODY_REQUIRED, validation_message
from signgate_client import Outcome
from signgate_contracts import CommandRejected
from signgate_contracts import authentication as auth
from signgate_contracts import workflow as wf
from signgate_contracts.envelope import Secret

WHEN = datetime(2015, 2, 13, 12, 10, tzinfo=UTC)


def described(methods: list[str], window: wf.AccessWindow | None, masked: str | None = "+44******8899",
              totp_source: wf.TotpSource | None = None):
    policy = wf.PublicAuthenticationPolicy(methods=methods, secret_set="password" in methods,
                                           destination_masked=masked, retry_count=3,
                                           frequency="OncePerDocument", totp_source=totp_source,
                                           totp_authenticator_id="auth-1" if totp_source else None,
                                           ) if methods else None
    return wf.RecipientAuthenticationDescribed(
        package_id="p", order=1, package_state="draft", locked_workflow=False, authentication=policy,
        access_window=window, recipient=wf.RecipientSummary(
            order=1, name="Ann", role="signer", email_masked="a***@example.com", email_digest="d",
            mobile_masked="+44******0001"))


def test_seed_000_body_becomes_the_update_command_with_the_token() -> None:
    """Seed 000's body, its "12:10:000Z" times included, validates into UpdateRecipientAuthentication
    for the path's package and order, the bearer token as the command's."""
    body = wf.SigningHubAuthenticationBody.model_validate(SEED_000_BODY)
    command = update_authentication_command("pkg-1", 2, body, Secret("t0k"))
    assert (command.package_id, command.order, command.access_token.get_secret_value()) == ("pkg-1", 2, "t0k")
    window = command.body.access_duration.duration_by_date.duration
    assert window.start_date_time == WHEN and command.body.apply_to_all is True


def test_an_unlock_is_the_reset_of_that_recipient_with_what_the_body_changes() -> None:
    """Seed 003's empty body resets the recipient as they are; a body's method, code and number (in
    SigningHub's 00 form) travel on the command; a field the reset does not have is refused."""
    as_is = reset_command("pkg-1", 2, ResetAuthenticationBody.model_validate({}), Secret("t0k"))
    no_body = reset_command("pkg-1", 2, None, None)
    switched = reset_command("pkg-1", 2, ResetAuthenticationBody.model_validate(
        {"method": "sms_otp", "mobile_number": "00447700900123"}), Secret("t0k"))
    new_code = reset_command("pkg-1", 1, ResetAuthenticationBody.model_validate({"access_code": "Sesame-2"}), None)

    assert (as_is.type, as_is.package_id, as_is.order, as_is.access_token.get_secret_value()) == (
        "workflow.reset_recipient_authentication", "pkg-1", 2, "t0k")
    assert (as_is.method, as_is.access_code, as_is.mobile_number) == (None, None, None)
    assert (no_body.method, no_body.access_code, no_body.access_token) == (None, None, None)
    assert (switched.method, switched.mobile_number) == ("sms_otp", "+447700900123")
    assert new_code.access_code.get_secret_value() == "Sesame-2"
    with pytest.raises(ValueError, match="signers"):
        ResetAuthenticationBody.model_validate({"signers": [{"recipientId": "1"}]})


def test_settings_read_back_in_signinghubs_shape_without_the_password() -> None:
    """A password-and-window recipient reads back as SigningHub's GET body: password enabled (no
    password), SMS off with the profile's masked number, the window's dates with a Z."""
    view = authentication_view(described(["password"], wf.AccessWindow(starts_at=WHEN, ends_at=WHEN.replace(day=28))))
    assert view.model_dump() == {
        "authentication": {"enabled": True, "password": {"enabled": True},
                           "sms_otp": {"enabled": False, "mobile_number": "+44******0001"},
                           "totp": {"enabled": False, "source": None}},
        "access_duration": {"enabled": True,
                            "duration_by_date": {"enabled": True, "duration": {
                                "start_date_time": "2015-02-13T12:10:00Z", "end_date_time": "2015-02-28T12:10:00Z"}},
                            "duration_by_days": {"enabled": False, "duration": {"total_days": 0}}},
    }


def test_sms_otp_by_days_and_no_authentication_read_back() -> None:
    """SMS OTP shows the policy's masked destination; access by days shows its count; a recipient
    without authentication or window reads back all disabled."""
    by_days = authentication_view(described(["sms_otp"], wf.AccessWindow(days_after_receipt=4)))
    nothing = authentication_view(described([], None))
    assert by_days.authentication.sms_otp.model_dump() == {"enabled": True, "mobile_number": "+44******8899"}
    assert by_days.access_duration.duration_by_days.model_dump() == {"enabled": True, "duration": {"total_days": 4}}
    assert by_days.access_duration.duration_by_date.enabled is False
    assert (nothing.authentication.enabled, nothing.access_duration.enabled) == (False, False)


def test_totp_reads_back_enabled_with_its_source_and_nothing_of_the_secret() -> None:
    """A recipient opening with an authenticator app reads back with authentication enabled, totp
    enabled and where its secret comes from (no id, no secret); password and SMS off."""
    provisioned = authentication_view(described(["totp"], None, None, "provisioned"))
    signer_app = authentication_view(described(["totp"], None, None, "user_authenticator"))

    assert provisioned.authentication.enabled is True
    assert provisioned.authentication.totp.model_dump() == {
        "enabled": True,
        "source": "provisioned",
    }
    assert signer_app.authentication.totp.source == "user_authenticator"
    assert (
        provisioned.authentication.password.enabled,
        provisioned.authentication.sms_otp.enabled,
    ) == (
        False,
        False,
    )
    assert "auth-1" not in provisioned.model_dump_json()


ADD_TOTP = {
    "package_id": "p",
    "access_token": "t",
    "body": {"emailId": "ann@example.com", "authenticationType": "TOTP"},
}


def test_a_provisioned_secret_is_answered_in_each_vendors_casing() -> None:
    """The RecipientTotpProvisioned reply becomes SigningHub's snake_case body and BoldSign's
    camelCase one, the URI and secret in clear for the caller; a reset body carries totp_source."""
    provisioned = wf.RecipientTotpProvisioned(
        package_id="p",
        order=1,
        authenticator_id="auth-1",
        otpauth_uri="otpauth://totp/signgate:ann?secret=JBSWY3DPEHPK3PXP&issuer=signgate",
        secret="JBSWY3DPEHPK3PXP",
    )
    reset = reset_command(
        "p", 1, ResetAuthenticationBody(method="totp", totp_source="provisioned"), None
    )

    answered = provisioned_totp(
        Outcome(wf.AddAuthentication.model_validate(ADD_TOTP), None, provisioned)
    )
    assert answered is not None
    assert answered.model_dump() == {
        "authenticator_id": "auth-1",
        "otpauth_uri": "otpauth://totp/signgate:ann?secret=JBSWY3DPEHPK3PXP&issuer=signgate",
        "secret": "JBSWY3DPEHPK3PXP",
        "digits": 6,
        "algorithm": "SHA1",
        "period_seconds": 30,
    }
    camel = BoldSignTotpProvisioning.model_validate(answered.model_dump())
    assert camel.model_dump(by_alias=True) == {
        "authenticatorId": "auth-1",
        "otpauthUri": "otpauth://totp/signgate:ann?secret=JBSWY3DPEHPK3PXP&issuer=signgate",
        "secret": "JBSWY3DPEHPK3PXP",
        "digits": 6,
        "algorithm": "SHA1",
        "periodSeconds": 30,
    }
    assert provisioned_totp(Outcome(reset, None, None)) is None
    assert (reset.method, reset.totp_source) == ("totp", "provisioned")
    assert wf.provisions_totp(reset)


def test_seed_002_body_generates_and_with_a_code_verifies() -> None:
    """Seed 002's {"field_name"} is RequestSigningOtp; with "otp" the same route is VerifySigningOtp."""
    generate = signing_otp_command("p", "doc-1", SigningOtpBody(field_name="12345678"), Secret("t"))
    verify = signing_otp_command("p", "doc-1", SigningOtpBody(field_name="12345678", otp="123456"), Secret("t"))
    assert isinstance(generate, auth.RequestSigningOtp) and generate.field_name == "12345678"
    assert isinstance(verify, auth.VerifySigningOtp) and verify.code.get_secret_value() == "123456"


def outcome(event, reply=None) -> Outcome:
    return Outcome(auth.OpenDocumentWithPassword(package_id="p", order=1, password="x"), event, reply)


def test_an_opening_answers_granted_passed_failed_or_locked() -> None:
    """A grant is SigningHub's 200 text with the grant; a success without one says another method is
    owed; a wrong password is 403 naming it; a lockout 403 with the lock's text."""
    ok = auth.RecipientAuthenticated(package_id="p", order=1, method="password")
    grant = auth.DocumentAccessGranted(package_id="p", order=1, grant="a.b.c", frequency="EveryAccess",
                                       expires_at=WHEN)
    failed = auth.RecipientAuthenticationFailed(package_id="p", order=1, method="password", reason="wrong_secret",
                                                attempts_used=1, attempts_remaining=2)
    locked = auth.RecipientLockedOut(package_id="p", order=1, method="password", failures=3, locked_at=WHEN)

    granted = opened_view(outcome(ok, grant), "password")
    assert (granted.Message, granted.access_grant, granted.expires_at) == (ACCESS_GRANTED, "a.b.c", "2015-02-13T12:10:00Z")
    assert opened_view(outcome(ok), "password").Message == METHOD_PASSED
    with pytest.raises(GatewayError) as wrong:
        opened_view(outcome(failed), "password")
    with pytest.raises(GatewayError) as lock:
        opened_view(outcome(locked), "OTP")
    assert (wrong.value.status, wrong.value.message) == (403, "The password is incorrect")
    assert lock.value.status == 403 and "locked" in lock.value.message


def test_a_rejection_is_its_status_and_seed_text_with_retry_after_on_429() -> None:
    """command.rejected answers with its own status and text; a 429 carries Retry-After."""
    refused = rejection_error(CommandRejected(status=403, code="x", message="Document does not belong to user"))
    throttled = rejection_error(CommandRejected(status=429, code="y", message="slow", retry_after_seconds=7))
    assert (refused.status, refused.message, refused.headers) == (403, "Document does not belong to user", {})
    assert throttled.headers == {"Retry-After": "7"}


def test_history_entries_become_signinghub_actions_in_order() -> None:
    """Each history entry is an action: its sequence the log id, its action upper-case, a Z time."""
    entries = [wf.HistoryEntry(sequence=n, occurred_at=WHEN, recorded_at=WHEN, actor="u1", action=a, order=o)
               for n, (a, o) in enumerate([("package_registered", None), ("recipient_authenticated", 2)], 1)]
    view = history_view("p", entries)
    assert [(a.log_id, a.action_type, a.order, a.date_time) for a in view.actions] == [
        (1, "PACKAGE_REGISTERED", None, "2015-02-13T12:10:00Z"), (2, "RECIPIENT_AUTHENTICATED", 2, "2015-02-13T12:10:00Z")]


@pytest.mark.parametrize(("errors", "expected"), [
    ([{"type": "json_invalid", "loc": ("body", 0), "msg": "JSON decode error"}], MALFORMED_JSON),
    ([{"type": "missing", "loc": ("body",), "msg": "Field required"}], BODY_REQUIRED),
    ([{"type": "less_than_equal", "loc": ("path", "order"), "msg": "Input should be <= 50"}],
     "order: Input should be <= 50"),
    ([{"type": "value_error", "loc": ("body", "authentication", "sms_otp", "mobile_number"), "msg": "bad"}],
     "body.authentication.sms_otp.mobile_number: bad"),
])
def test_validation_messages_name_the_field_as_the_services_do(errors, expected) -> None:
    """The first problem is named like the services name a field (path parameters by name alone),
    malformed JSON and a missing body by their own texts."""
    assert validation_message(RequestValidationError(errors)) == expected


def test_the_error_shape_is_signinghubs_message() -> None:
    """SigningHub's paths (and paths of no vendor) answer errors as {"Message": ...} with the headers."""
    response = shape_for("/v3/packages/x/log")(429, "slow down", {"Retry-After": "3"})
    assert (response.status_code, json.loads(response.body), response.headers["retry-after"]) == (
        429, {"Message": "slow down"}, "3")
    assert shape_for("/nowhere") is signinghub_error


def test_the_client_address_is_the_peer_unless_a_trusted_proxy_names_it() -> None:
    """The peer address counts; behind a trusted proxy, the X-Forwarded-For entry the proxy added
    (the last), never one the client wrote."""
    scope = {"client": ("10.0.0.9", 5555)}
    forwarded = Headers({"x-forwarded-for": "6.6.6.6, 203.0.113.7"})
    assert client_address(scope, forwarded, trust_forwarded_for=False) == "10.0.0.9"
    assert client_address(scope, forwarded, trust_forwarded_for=True) == "203.0.113.7"
    assert credential_of(Headers({"x-api-key": "k"})) == "k"
    assert credential_of(Headers({})) is None


def test_rate_limit_keys_hold_no_credential_and_retry_after_rounds_up() -> None:
    """A counter's key names its credential only by digest, in one hash tag; Retry-After is whole
    seconds, at least one."""
    token = f"secret-{uuid.uuid4()}"
    key = limit_key("signgate:", "credential", token)
    assert token not in key and key.startswith("signgate:gateway:rate:credential:{") and key.endswith("}")
    assert [retry_after(ms) for ms in (1, 999, 1000, 1001, 0)] == [1, 1, 1, 2, 1]
