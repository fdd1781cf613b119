"""The messages that carry a code: every shipped locale, purpose and channel rendered, the locale
fallback, an operator's templates over the shipped ones, and broken templates refused at start-up."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from libs.security.otp_store import OtpStoreSettings
from services.otp_dispatch.app import create_app
from services.otp_dispatch.message_templates import (
    PURPOSES,
    MessageTemplates,
    TemplateError,
    load_message_templates,
    spoken_code,
)
from services.otp_dispatch.settings import OtpDispatchSettings
from signgate_contracts.localisation import BRAND_NAME_MAX_LENGTH

SHIPPED_LOCALES = ("en", "fr")
CHANNELS = ("sms", "email", "voice")
CODE = "482913"
FIVE_MINUTES = timedelta(minutes=5)

# GSM 03.38's basic character set (a space included); its extension table costs two characters.
GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)


@pytest.fixture(scope="module")
def templates() -> MessageTemplates:
    return load_message_templates("en", "signgate")


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(text, encoding="utf-8")
    return directory


@pytest.mark.parametrize("locale", SHIPPED_LOCALES)
@pytest.mark.parametrize("purpose", PURPOSES)
@pytest.mark.parametrize("channel", CHANNELS)
def test_every_shipped_message_names_the_brand_the_code_and_its_lifetime(
    templates: MessageTemplates, locale: str, purpose: str, channel: str
) -> None:
    """Each locale's message of each channel and purpose holds the brand, the code (digit by digit on
    a call) and the minutes, and its subject never the code."""
    message = templates.render(channel, purpose, code=CODE, ttl=FIVE_MINUTES, locale=locale, brand="Acme Leasing")

    expected_code = "4, 8, 2, 9, 1, 3" if channel == "voice" else CODE
    assert expected_code in message.text and "Acme Leasing" in message.text
    assert "5 minutes" in message.text
    assert "Acme Leasing" in message.subject and not any(c.isdigit() for c in message.subject)
    assert (message.html is not None) == (channel == "email")
    assert "$" not in message.text + message.subject + (message.html or "")


def test_english_and_french_sms_read_as_written(templates: MessageTemplates) -> None:
    """The English and French SMS of both purposes, word for word, with "1 minute" in the singular."""
    def sms(purpose: str, locale: str) -> str:
        return templates.render("sms", purpose, code=CODE, ttl=timedelta(seconds=60), locale=locale).text

    assert sms("document_opening", "en") == (
        "Your signgate code to open your document is 482913. It expires in 1 minute. Do not share it with anyone.")
    assert sms("signing", "en") == (
        "Your signgate code to sign your document is 482913. It expires in 1 minute. Do not share it with anyone.")
    assert sms("document_opening", "fr") == (
        "Votre code signgate pour ouvrir votre document est 482913. Il expire dans 1 minute. "
        "Ne le communiquez à personne.")
    assert sms("signing", "fr") == (
        "Votre code signgate pour signer votre document est 482913. Il expire dans 1 minute. "
        "Ne le communiquez à personne.")


@pytest.mark.parametrize("locale", SHIPPED_LOCALES)
@pytest.mark.parametrize("purpose", PURPOSES)
def test_a_shipped_sms_is_one_gsm7_segment_even_at_its_longest(
    templates: MessageTemplates, locale: str, purpose: str
) -> None:
    """With the longest brand, a nine-digit code and ten minutes, each shipped SMS is GSM-7 text of at
    most 160 characters: one segment, not a UCS-2 one of 70."""
    text = templates.render("sms", purpose, code="9" * 9, ttl=timedelta(minutes=10), locale=locale,
                            brand="B" * BRAND_NAME_MAX_LENGTH).text
    assert set(text) <= GSM7, set(text) - GSM7
    assert len(text) <= 160, len(text)


def test_a_call_reads_the_code_digit_by_digit() -> None:
    """Text-to-speech gets the digits apart, so "482913" is not read as a number."""
    assert spoken_code("048291") == "0, 4, 8, 2, 9, 1"


def test_the_html_body_escapes_what_it_is_given(templates: MessageTemplates) -> None:
    """The brand goes into the HTML body escaped; the text body has it as written."""
    message = templates.render("email", "document_opening", code=CODE, ttl=FIVE_MINUTES, brand="Smith & Sons")
    assert message.html is not None and "Smith &amp; Sons" in message.html and "Smith & Sons" not in message.html
    assert "Smith & Sons" in message.text


def test_without_a_brand_the_deployments_is_named() -> None:
    """A request without a brand gets the brand of the deployment's settings."""
    templates = load_message_templates("en", "Contoso Sign")
    assert "Your Contoso Sign code" in templates.render("sms", "signing", code=CODE, ttl=FIVE_MINUTES).text


@pytest.mark.parametrize(
    ("locale", "chosen"),
    [("fr", "fr"), ("fr-CA", "fr"), ("fr-Latn-CA", "fr"), ("en-GB", "en"), ("de-CH", "en"), ("zh-Hant-TW", "en"),
     (None, "en")],
)
def test_a_locale_falls_back_to_its_language_then_to_the_default(
    templates: MessageTemplates, locale: str | None, chosen: str
) -> None:
    """The exact tag's templates, else those of a shorter prefix of it, else the default locale's."""
    assert templates.resolve(locale).locale == chosen


def test_the_default_locale_is_a_setting(tmp_path: Path) -> None:
    """With French as the default, a locale without templates gets French."""
    assert load_message_templates("fr", "signgate").resolve("de").locale == "fr"


OPERATOR_FR_CA = """
[document_opening]
sms = "Votre code $brand pour ouvrir votre document : $code. Valide $minutes min."
"""


def test_an_operator_file_replaces_only_the_parts_it_gives(tmp_path: Path) -> None:
    """An operator's fr.toml with one SMS replaces that SMS alone; the other parts stay as shipped."""
    write(tmp_path, "fr.toml", '[signing]\nsms = "Code $brand pour signer : $code ($duration)."\n')
    templates = load_message_templates("en", "signgate", tmp_path)

    assert templates.render("sms", "signing", code=CODE, ttl=FIVE_MINUTES, locale="fr").text == (
        "Code signgate pour signer : 482913 (5 minutes).")
    assert templates.render("sms", "document_opening", code=CODE, ttl=FIVE_MINUTES, locale="fr").text.startswith(
        "Votre code signgate pour ouvrir votre document est 482913.")
    email = templates.render("email", "signing", code=CODE, ttl=FIVE_MINUTES, locale="fr")
    assert email.subject == "Votre code signgate pour signer" and email.html is not None


def test_a_regional_file_takes_what_it_leaves_out_from_its_language(tmp_path: Path) -> None:
    """An operator's fr-CA.toml with one SMS is chosen for fr-CA; everything else comes from fr, and fr
    itself is unchanged."""
    templates = load_message_templates("en", "signgate", write(tmp_path, "fr-CA.toml", OPERATOR_FR_CA))

    def sms(purpose: str, locale: str) -> str:
        return templates.render("sms", purpose, code=CODE, ttl=FIVE_MINUTES, locale=locale).text

    assert sms("document_opening", "fr-CA") == "Votre code signgate pour ouvrir votre document : 482913. Valide 5 min."
    assert sms("signing", "fr-CA").startswith("Votre code signgate pour signer votre document est 482913.")
    assert sms("document_opening", "fr").startswith("Votre code signgate pour ouvrir votre document est 482913.")


def test_a_new_locale_with_every_part_is_added(tmp_path: Path) -> None:
    """An operator's de.toml that gives every part is chosen for de-AT."""
    english = (Path(__file__).resolve().parents[2] / "services/otp_dispatch/templates/en.toml").read_text()
    german = english.replace("Your $brand code to open your document is", "Ihr $brand-Code zum Öffnen Ihres Dokuments:")
    templates = load_message_templates("en", "signgate", write(tmp_path, "de.toml", german))
    assert templates.render("sms", "document_opening", code=CODE, ttl=FIVE_MINUTES, locale="de-AT").text.startswith(
        "Ihr signgate-Code zum Öffnen Ihres Dokuments: 482913.")


def test_an_email_text_without_html_drops_the_shipped_html(tmp_path: Path) -> None:
    """An operator who rewrites an email's text without an HTML body sends their text alone, not the
    shipped HTML (which mail clients would show instead)."""
    write(tmp_path, "en.toml", '[document_opening]\nemail_text = "Code: $code"\n')
    email = load_message_templates("en", "signgate", tmp_path).render(
        "email", "document_opening", code=CODE, ttl=FIVE_MINUTES)
    assert (email.text, email.html) == ("Code: 482913", None)


@pytest.mark.parametrize(
    ("name", "text", "says"),
    [
        ("en.toml", '[signing]\nsms = "Your code is $cod."', "unknown placeholder $cod"),
        ("en.toml", '[signing]\nsms = "Your code is ${code.__class__}."', "a $ that starts no placeholder"),
        ("en.toml", '[signing]\nsms = "Pay $5 now: $code"', "a $ that starts no placeholder"),
        ("en.toml", '[signing]\nsms = "Your $brand code expires in $duration."', "[signing] sms: has no $code"),
        ("en.toml", '[signing]\nvoice = "Your code."', "[signing] voice: has no $code"),
        ("en.toml", '[signing]\nemail_subject = "Code $code"', "must not show the $code"),
        ("en.toml", '[signing]\nemail_subject = """Your code\nBcc: x"""', "must be one line"),
        ("en.toml", '[signing]\nemial_text = "$code"', "unknown part 'emial_text'"),
        ("en.toml", '[sign]\nsms = "$code"', "unknown table [sign]"),
        ("en.toml", '[signing]\nsms = ""', "[signing] sms: not a text"),
        ("en.toml", '[signing]\nsms = "$code', "en.toml"),
        ("es.toml", '[signing]\nsms = "Su código: $code"', "missing [units] minute"),
        ("english.toml", '[signing]\nsms = "$code"', "the file's name is not a locale"),
    ],
)
def test_a_broken_operator_template_is_refused_naming_it(tmp_path: Path, name: str, text: str, says: str) -> None:
    """A template with bad syntax, an unknown placeholder, no code (or a code in a subject), a typo in a
    part or table, or a new locale missing parts stops the templates from loading, saying where."""
    with pytest.raises(TemplateError) as refused:
        load_message_templates("en", "signgate", write(tmp_path, name, text))
    assert says in str(refused.value) and name in str(refused.value)


def test_a_default_locale_without_templates_is_refused() -> None:
    """A default locale that has no templates is refused, listing the locales that do."""
    with pytest.raises(TemplateError, match=r"default locale 'de' \(there are: en, fr\)"):
        load_message_templates("de", "signgate")


def test_a_missing_template_directory_is_refused(tmp_path: Path) -> None:
    """A templates directory that does not exist is refused rather than ignored."""
    with pytest.raises(TemplateError, match="is not a directory"):
        load_message_templates("en", "signgate", tmp_path / "absent")


def test_the_service_does_not_start_with_a_broken_template(tmp_path: Path) -> None:
    """create_app refuses an operator's template without $code before it connects to anything."""
    settings = OtpDispatchSettings(
        otp_store=OtpStoreSettings(pepper=SecretStr("p" * 32)),
        templates_dir=write(tmp_path, "en.toml", '[signing]\nsms = "Your code."'),
    )
    with pytest.raises(TemplateError, match=r"en.toml \[signing\] sms: has no \$code"):
        create_app(settings)


@pytest.mark.parametrize("brand", ["Visit evil.com", "x" * (BRAND_NAME_MAX_LENGTH + 1), "Call 0800 1234567", "a\nb"])
def test_the_deployments_brand_follows_the_senders_rules(brand: str) -> None:
    """The deployment's brand name is held to the rules of a sender's: no domain, no long digit run,
    no control character, at most the length."""
    with pytest.raises(ValueError, match="brand_name"):
        OtpDispatchSettings(brand_name=brand)
