"""Masking of phone numbers and email addresses for events and logs."""

from __future__ import annotations

import pytest

from libs.security.masking import mask_destination, mask_email, mask_phone


def test_a_phone_number_keeps_its_first_two_and_last_four_digits() -> None:
    """An E.164 number shows its first two and last four digits, the rest as stars."""
    assert mask_phone("+447700908899") == "+44******8899"


def test_a_short_number_shows_no_digit() -> None:
    """A number too short to hide its middle is masked whole."""
    assert mask_phone("+123456") == "+******"


def test_an_email_keeps_one_letter_and_the_domain() -> None:
    """An address shows the first letter of its local part and its domain."""
    assert mask_email("alice.smith@Example.com") == "a***@example.com"


def test_the_email_mask_does_not_tell_the_local_part_length() -> None:
    """Short and long local parts are masked to the same width."""
    assert mask_email("a@example.com") == mask_email("abcdefghijk@example.com")


def test_a_string_without_an_at_sign_is_masked_whole() -> None:
    """Something that is not an address reveals nothing."""
    assert mask_email("not-an-address") == "***"


@pytest.mark.parametrize(
    ("channel", "destination", "masked"),
    [("sms", "+15555550100", "+15*****0100"), ("email", "bob@example.org", "b***@example.org")],
)
def test_destinations_are_masked_by_channel(channel: str, destination: str, masked: str) -> None:
    """The channel decides which mask a destination gets."""
    assert mask_destination(channel, destination) == masked


def test_an_unknown_channel_is_an_error() -> None:
    """A channel other than sms or email is refused rather than shown in clear."""
    with pytest.raises(ValueError, match="unknown channel"):
        mask_destination("fax", "+15555550100")
