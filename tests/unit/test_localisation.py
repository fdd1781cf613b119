"""A recipient's locale and a sender's brand name, as every contract that carries them accepts them:
BCP 47 tags in canonical case, and brand names that cannot turn a code message into a lure."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from signgate_contracts.identity import AccountMembership, RegisterUser, UpdateUserProfile
from signgate_contracts.localisation import check_brand_name, normalise_locale
from signgate_contracts.otp import OtpDeliveryRequested
from signgate_contracts.workflow import AddAuthentication, UpdateRecipientAuthentication

HOSTILE_BRANDS = [
    "Acme. Pay at evil.com",  # a domain, which phones turn into a link
    "bit.ly/refund",
    "https x",
    "www acme",
    "help@acme",  # an address
    "Acme: call",
    "Call 0800 555 0199 now",  # three digits apart is fine, four in a row is not: "0199"
    "Your code is 000000",  # a second, false code
    "192.168.10.1",
    "Acme\nYour new code is",  # a line break that starts a message of its own
    "Acme\u202egnp.exe",  # a right-to-left override
    "Acme\u200b",  # a zero-width space
    "<b>Acme</b>",
    "Ａｃｍｅ．ｃｏｍ",  # full-width letters and dot
    "A" * 41,
    "   ",
]


@pytest.mark.parametrize(
    ("given", "canonical"),
    [("en", "en"), ("FR", "fr"), ("fr-ca", "fr-CA"), ("fr_CA", "fr-CA"), ("zh-hant-tw", "zh-Hant-TW"),
     ("es-419", "es-419"), ("de-CH-1996", "de-CH-1996")],
)
def test_a_locale_is_a_bcp47_tag_in_canonical_case(given: str, canonical: str) -> None:
    """Language lower-case, script title-case, region upper-case; an underscore is read as a hyphen."""
    assert normalise_locale(given) == canonical


@pytest.mark.parametrize("given", ["", "e", "english", "fr-", "fr--CA", "x-klingon", "en-US-u-ca-buddhist", "fr/CA",
                                   "../../etc/passwd", "fr CA", "a" * 36])
def test_anything_else_is_not_a_locale(given: str) -> None:
    """Not a language tag (or a private-use or extension tag, or a path) is refused."""
    with pytest.raises(ValueError, match="BCP 47"):
        normalise_locale(given)


@pytest.mark.parametrize("brand", ["Acme Leasing", "Müller & Söhne GmbH", "J.P. Morgan", "3M", "7-Eleven", "1&1",
                                   "O'Brien (Legal)", "Société Générale", "Acme Inc."])
def test_ordinary_brand_names_are_accepted(brand: str) -> None:
    """Names with accents, initials, ampersands, hyphens, apostrophes and short numbers pass as given."""
    assert check_brand_name(brand) == brand


@pytest.mark.parametrize("brand", HOSTILE_BRANDS)
def test_a_brand_that_could_lure_the_recipient_is_refused(brand: str) -> None:
    """A domain, web address, email address, phone number or code, a control or formatting character,
    markup, look-alike punctuation, or an overlong or empty name is not a brand name."""
    with pytest.raises(ValueError):
        check_brand_name(brand)


def test_spaces_in_a_brand_are_collapsed() -> None:
    """Runs of spaces become one, so a brand cannot push the code out of sight."""
    assert check_brand_name("  Acme     Leasing ") == "Acme Leasing"


def signinghub(authentication: dict[str, Any]) -> dict[str, Any]:
    return {"package_id": "pkg-1", "order": 1, "body": {"authentication": {
        "enabled": True, "sms_otp": {"enabled": True, "mobile_number": "+447700900123"}, **authentication}}}


def boldsign(extension: dict[str, Any]) -> dict[str, Any]:
    return {"package_id": "pkg-1", "body": {"emailId": "bob@example.com", "authenticationType": "SMSOTP",
                                            **extension}}


def test_each_contract_carries_the_locale_and_brand_in_canonical_form() -> None:
    """The SigningHub body, the BoldSign body and the OTP request keep a locale and brand, normalised;
    all three leave them out by default."""
    shub = UpdateRecipientAuthentication.model_validate(signinghub({"locale": "fr_ca", "brand_name": "Baux  Dupont"}))
    bold = AddAuthentication.model_validate(boldsign({"locale": "FR", "brandName": "Baux Dupont"}))
    otp = OtpDeliveryRequested(package_id="p", order=1, channel="sms", destination="+447700900123",
                               locale="fr-ca", brand_name="Baux Dupont")
    assert shub.body.authentication is not None
    assert (shub.body.authentication.locale, shub.body.authentication.brand_name) == ("fr-CA", "Baux Dupont")
    assert (bold.body.locale, bold.body.brand_name) == ("fr", "Baux Dupont")
    assert (otp.locale, otp.brand_name) == ("fr-CA", "Baux Dupont")
    plain = AddAuthentication.model_validate(boldsign({}))
    assert (plain.body.locale, plain.body.brand_name) == (None, None)


@pytest.mark.parametrize("brand", HOSTILE_BRANDS[:6])
def test_every_contract_refuses_a_hostile_brand_naming_the_field(brand: str) -> None:
    """A hostile brand in either body or in an OTP request is invalid, and the error names the field."""
    cases = [
        (lambda: UpdateRecipientAuthentication.model_validate(signinghub({"brand_name": brand})),
         ("body", "authentication", "brand_name")),
        (lambda: AddAuthentication.model_validate(boldsign({"brandName": brand})), ("body", "brandName")),
        (lambda: OtpDeliveryRequested(package_id="p", order=1, channel="sms", destination="+447700900123",
                                      brand_name=brand), ("brand_name",)),
    ]
    for build, location in cases:
        with pytest.raises(ValidationError) as refused:
            build()
        assert refused.value.errors()[0]["loc"] == location


@pytest.mark.parametrize("locale", ["../../etc/fr", "fr\nBcc", "x-klingon"])
def test_a_profile_locale_that_is_no_tag_is_refused_naming_the_field(locale: str) -> None:
    """Identity's registration and profile update refuse a locale that is not a language tag, naming it."""
    account = AccountMembership(name="Acme", context_identifier="6f1c5a39-3c2e-4a47-9a63-1f3f4f7a0b11", is_primary=True)
    for build in (lambda: RegisterUser(user_name="jdoe", accounts=[account], locale=locale),
                  lambda: UpdateUserProfile(user_name="jdoe", locale=locale)):
        with pytest.raises(ValidationError) as refused:
            build()
        assert refused.value.errors()[0]["loc"] == ("locale",)


def test_a_profile_keeps_its_locale_in_canonical_form() -> None:
    """A profile's locale is normalised like a policy's."""
    assert UpdateUserProfile(user_name="jdoe", locale="fr_ca").locale == "fr-CA"
