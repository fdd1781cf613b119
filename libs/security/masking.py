"""Masking of phone numbers and email addresses: the only form they take in events and logs.

Only the OTP dispatch request carries a destination in clear (the dispatcher needs it to
deliver); every event, status reply and log line shows it masked, enough for a person to
recognise their own number or address and no more.
"""

from __future__ import annotations

from typing import Any

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
    """The masked form of an OTP destination for its channel (``sms``, ``voice`` or ``email``)."""
    if channel in ("sms", "voice"):
        return mask_phone(destination)
    if channel == "email":
        return mask_email(destination)
    raise ValueError(f"unknown channel {channel!r}")


_PHONE_FIELDS = frozenset(
    {"destination", "mobile_number", "mobilenumber", "phone", "phone_number", "number"}
)
_EMAIL_FIELDS = frozenset(
    {"email", "emailid", "email_id", "user_name", "username", "on_behalf_of", "onbehalfof"}
)


def mask_contacts(value: Any) -> Any:
    """A copy of a JSON document with phone numbers and email addresses masked, at any depth.

    For records kept after the fact (dead letters), where the dispatcher's need for the
    destination in clear is gone.
    """
    if isinstance(value, dict):
        return {key: _mask_field(key, item) for key, item in value.items()}
    if isinstance(value, list):
        return [mask_contacts(item) for item in value]
    return value


def _mask_field(key: Any, item: Any) -> Any:
    if not isinstance(item, str):
        return mask_contacts(item)
    name = str(key).lower()
    if "@" in item and (name in _EMAIL_FIELDS or name == "destination"):
        return mask_email(item)
    if name in _PHONE_FIELDS and any(character.isdigit() for character in item):
        return mask_phone(item)
    return item
