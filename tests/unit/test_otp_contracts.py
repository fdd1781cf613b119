"""The OTP request and its outcomes: what the contract accepts and what it keeps out of sight."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from signgate_contracts import CommandRejected
from signgate_contracts.otp import OtpDeliveryRequested


def request(**fields: object) -> OtpDeliveryRequested:
    values = {"package_id": "pkg-1", "order": 2, "channel": "sms", "destination": "+447700908899"} | fields
    return OtpDeliveryRequested(**values)


def test_defaults_are_a_six_digit_code_for_five_minutes_to_open_a_document() -> None:
    """A minimal request asks for six digits, valid 300 s, for opening a document."""
    minimal = request()
    assert (minimal.code_length, minimal.ttl_seconds, minimal.purpose) == (6, 300, "document_opening")


@pytest.mark.parametrize("fields", [{"code_length": 5}, {"code_length": 10}, {"ttl_seconds": 601}, {"order": 51}])
def test_out_of_range_values_are_refused(fields: dict) -> None:
    """Code length outside 6-9, a TTL over ten minutes, or an order over 50 is invalid."""
    with pytest.raises(ValidationError):
        request(**fields)


@pytest.mark.parametrize(
    "fields",
    [{"destination": "07700 900123"}, {"channel": "email", "destination": "+447700908899"},
     {"channel": "email", "destination": "bob at example.com"}],
)
def test_the_destination_must_suit_the_channel(fields: dict) -> None:
    """SMS goes to an E.164 number, email to an address."""
    with pytest.raises(ValidationError, match="destination"):
        request(**fields)


def test_document_opening_needs_an_order_and_signing_a_user_and_field() -> None:
    """The recipient must be named the way its purpose requires."""
    with pytest.raises(ValidationError, match="order"):
        request(order=None)
    with pytest.raises(ValidationError, match="user_id"):
        request(purpose="signing", user_id="u-1")
    signing = request(purpose="signing", order=None, user_id="u-1", document_id="d-1", field_name="sig")
    assert signing.purpose == "signing"


def test_the_destination_stays_out_of_repr() -> None:
    """Printing a request does not print the phone number."""
    assert "7700908899" not in repr(request())


def test_a_rejection_may_say_when_to_retry() -> None:
    """`retry_after_seconds` is optional on every rejection and carried by a 429."""
    assert CommandRejected(status=404, code="x", message="m").retry_after_seconds is None
    assert CommandRejected(status=429, code="x", message="m", retry_after_seconds=27).retry_after_seconds == 27
