"""Masking of phone numbers and email addresses: the only form they take in events and logs.

Only the OTP dispatch request carries a destination in clear (the dispatcher needs it to
deliver); every event, status reply and log line shows it masked, enough for a person to
recognise their own number or address and no more.
"""

from __future__ import annotations

MASK = "*"


def mask_phone(number: str) -> str:
    """``+447700908899`` → ``+44******8899``: the first two digits and the last four stay visible."""
    digits = "".join(character for character in number if character.isdigit())
    if len(digits) <= 6:
        return "+" + MASK * len(digits)  # too short to show any part without revealing most of it
    return f"+{digits[:2]}{MASK * (len(digits) - 6)}{digits[-4:]}"


def mask_email(address: str) -> str:
    """``alice@example.com`` → ``a***@example.com``: one letter of the local part and the domain.

    The mask has a fixed width, so it does not tell how long the local part is.
    """
    local, at, domain = address.strip().rpartition("@")
    if not at or not local:
        return MASK * 3
    return f"{local[0]}{MASK * 3}@{domain.lower()}"


def mask_destination(channel: str, destination: str) -> str:
    """The masked form of an OTP destination for its channel (``sms`` or ``email``)."""
    if channel == "sms":
        return mask_phone(destination)
    if channel == "email":
        return mask_email(destination)
    raise ValueError(f"unknown channel {channel!r}")
