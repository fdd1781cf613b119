"""How a one-time password message reads to its recipient: their language and the sender's brand.

The sender sets both on a recipient's authentication policy (``locale``, ``brand_name``); they
travel with the policy to the authentication service and on each ``otp.delivery_requested`` to
OTP dispatch, which picks the message template of the locale and writes the brand into it.

A brand name lands inside a message that arrives from the deployment's own SMS sender id or mail
address, next to a genuine code: whoever may set it can make the message say something. So a brand
is a name and nothing else — letters, digits, spaces and a little punctuation, at most
`BRAND_NAME_MAX_LENGTH` characters, no control or formatting characters, no URL or domain-like
text (``example.com``, ``http:``, ``www``), no address, and no run of four or more digits (a phone
number to call, or a second "code"). A sender cannot turn a code message into a phishing link.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator, Field

BRAND_NAME_MAX_LENGTH = 40
"""Long enough for "Müller & Söhne Rechtsanwälte GmbH", short enough to keep an SMS one segment."""
LOCALE_MAX_LENGTH = 35
"""RFC 5646's advice for the longest tag an implementation need keep."""

_LOCALE = re.compile(
    r"(?P<language>[A-Za-z]{2,3})"
    r"(?:-(?P<script>[A-Za-z]{4}))?"
    r"(?:-(?P<region>[A-Za-z]{2}|[0-9]{3}))?"
    r"(?P<variants>(?:-(?:[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*)"
)
_BRAND_CHARACTERS = re.compile(r"[\w &'.,()+!-]+")
_DOMAIN_LIKE = re.compile(
    r"\w\.[^\W\d_]{2,}|\d+\.\d+\.\d+|\bwww\b|\bhttps?\b|[:/@]|\bxn--", re.IGNORECASE
)
_DIGIT_RUN = re.compile(r"\d{4,}")


def normalise_locale(value: str) -> str:
    """A BCP 47 language tag (``fr``, ``fr-CA``, ``zh-Hant-TW``; ``fr_CA`` read as ``fr-CA``) in its
    canonical case: language lower, script title, region upper. Private-use and extension
    subtags are not taken: no template is chosen by them."""
    tag = value.strip().replace("_", "-")
    match = _LOCALE.fullmatch(tag)
    if len(tag) > LOCALE_MAX_LENGTH or match is None:
        raise ValueError("must be a BCP 47 language tag such as en, fr or fr-CA")
    parts = [match["language"].lower()]
    if match["script"]:
        parts.append(match["script"].title())
    if match["region"]:
        parts.append(match["region"].upper())
    parts.extend(variant.lower() for variant in match["variants"].split("-") if variant)
    return "-".join(parts)


def check_brand_name(value: str) -> str:
    """A brand name as a message may show it (the module says why each rule exists), with its
    spaces collapsed."""
    name = " ".join(unicodedata.normalize("NFC", value).split())
    if not name:
        raise ValueError("must not be empty")
    if len(name) > BRAND_NAME_MAX_LENGTH:
        raise ValueError(f"must be at most {BRAND_NAME_MAX_LENGTH} characters")
    if any(unicodedata.category(character).startswith("C") for character in value):
        raise ValueError("must not contain control or formatting characters")
    if _DOMAIN_LIKE.search(name):
        raise ValueError("must not look like a web address, a domain name or an email address")
    if not _BRAND_CHARACTERS.fullmatch(name) or "_" in name:
        raise ValueError("may hold only letters, digits, spaces and & ' . , ( ) + ! -")
    if _DIGIT_RUN.search(name):
        raise ValueError("must not hold four or more digits in a row")
    return name


Locale = Annotated[
    str,
    AfterValidator(normalise_locale),
    Field(
        max_length=LOCALE_MAX_LENGTH,
        description="The recipient's language, a BCP 47 tag (`en`, `fr`, `fr-CA`); the "
        "deployment's default when left out.",
        examples=["fr-CA"],
    ),
]
BrandName = Annotated[
    str,
    AfterValidator(check_brand_name),
    Field(
        max_length=BRAND_NAME_MAX_LENGTH,
        description=f"The sender's brand, shown in the code's message: at most "
        f"{BRAND_NAME_MAX_LENGTH} characters of letters, digits, spaces and & ' . , ( ) + ! -; no "
        "web address, domain or run of four digits. The deployment's when left out.",
        examples=["Acme Leasing"],
    ),
]
