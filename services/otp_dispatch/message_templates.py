"""The texts that carry a code, per locale, purpose and channel: loaded and checked once, at start-up.

Each locale is one TOML file (``templates/en.toml``, ``templates/fr.toml``): a table per purpose
(`PURPOSES`) with the text of each part (`PARTS`: the SMS, the email's subject, text and optional
HTML body, what a voice call says) and a ``[units]`` table (the words for "minute" and "minutes").
An operator may point ``SIGNGATE_OTP_DISPATCH_TEMPLATES_DIR`` at a directory of their own files:
one named like a shipped locale replaces the parts it gives; one of a region (``fr-CA.toml``)
takes what it leaves out from its language (``fr``); one of another language adds it and must give
every part. An email text given without an HTML body drops the shipped HTML body, so
mail clients (which show the HTML) show the operator's words.

Templates are `string.Template` texts over a fixed set of names (`PLACEHOLDERS`): substitution
only, no attribute access, no expressions, no code. Every template is checked before the service
consumes anything; a broken one (bad syntax, an unknown placeholder, a body without ``$code``, a
subject with it, a missing part) stops start-up with a message naming the file, table and part.
"""

from __future__ import annotations

import html
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from string import Template
from typing import get_args

from signgate_contracts.localisation import normalise_locale
from signgate_contracts.otp import Purpose

SHIPPED = Path(__file__).with_name("templates")
"""The locales that ship with the service."""
PURPOSES: tuple[str, ...] = get_args(Purpose)
PARTS = ("sms", "email_subject", "email_text", "email_html", "voice")
OPTIONAL_PARTS = frozenset({"email_html"})
UNITS = ("minute", "minutes")
PLACEHOLDERS = frozenset({"code", "duration", "minutes", "brand"})
WITHOUT_CODE = frozenset({"email_subject"})
"""Parts that must not show the code: a subject shows on lock screens and in mail lists."""
ONE_LINE = frozenset({"email_subject"})
"""Parts that are a mail header, which a line break would end."""
Tables = dict[str, dict[str, str]]
"""A locale's texts as read: table (a purpose, or ``units``) -> part -> text."""


class TemplateError(ValueError):
    """A template file that cannot be used; the service does not start with it."""


@dataclass(frozen=True)
class RenderedMessage:
    """What a provider sends: the text (the SMS, the email's text body, what a call says), the
    email's subject (every delivery's title), and the email's HTML body when the locale has one."""

    text: str
    subject: str
    html: str | None = None


@dataclass(frozen=True)
class LocaleTemplates:
    """One locale's templates: purpose -> part -> template, and its words for minutes."""

    locale: str
    parts: Mapping[str, Mapping[str, Template]]
    units: Mapping[str, str]

    def duration(self, minutes: int) -> str:
        """ "1 minute", "5 minutes": one form for one, the other for more (codes last 1-10 minutes)."""
        return f"{minutes} {self.units['minute' if minutes == 1 else 'minutes']}"


def spoken_code(code: str) -> str:
    """The code as text-to-speech reads it digit by digit: "4, 8, 2, 9, 1, 3"."""
    return ", ".join(code)


@dataclass(frozen=True)
class MessageTemplates:
    """Every locale's templates, the default locale and the deployment's brand name."""

    locales: Mapping[str, LocaleTemplates]
    default_locale: str
    default_brand: str

    def resolve(self, locale: str | None) -> LocaleTemplates:
        """The templates for ``locale``: the tag itself (``fr-CA``), then each shorter prefix of it
        (``fr``), then the default locale (RFC 4647 lookup)."""
        tag = locale or ""
        while tag:
            if tag in self.locales:
                return self.locales[tag]
            tag = tag.rpartition("-")[0]
        return self.locales[self.default_locale]

    def render(
        self,
        channel: str,
        purpose: str,
        *,
        code: str,
        ttl: timedelta,
        locale: str | None = None,
        brand: str | None = None,
    ) -> RenderedMessage:
        """The message of ``channel`` (``sms``, ``email``, ``voice``) for a code of ``purpose``."""
        templates = self.resolve(locale)
        parts = templates.parts[purpose]
        minutes = max(1, math.ceil(ttl.total_seconds() / 60))
        values = {
            "code": code,
            "minutes": str(minutes),
            "duration": templates.duration(minutes),
            "brand": brand or self.default_brand,
        }
        subject = parts["email_subject"].substitute(values)
        if channel == "voice":
            return RenderedMessage(
                parts["voice"].substitute(values, code=spoken_code(code)), subject
            )
        if channel == "email":
            page = parts.get("email_html")
            escaped = {name: html.escape(value) for name, value in values.items()}
            return RenderedMessage(
                parts["email_text"].substitute(values),
                subject,
                page.substitute(escaped) if page else None,
            )
        return RenderedMessage(parts["sms"].substitute(values), subject)


def load_message_templates(
    default_locale: str, default_brand: str, directory: Path | None = None
) -> MessageTemplates:
    """The shipped locales with an operator's ``directory`` over them, every template checked;
    raises `TemplateError` naming what is wrong."""
    files: dict[str, list[Path]] = {}
    for folder in (SHIPPED, directory) if directory else (SHIPPED,):
        if not folder.is_dir():
            raise TemplateError(f"message templates: {folder} is not a directory")
        for file in sorted(folder.glob("*.toml")):
            files.setdefault(_locale_of(file), []).append(file)
    texts: dict[str, Tables] = {}
    sources: dict[str, list[str]] = {}
    for locale in sorted(files, key=lambda tag: tag.count("-")):  # a language before its regions
        parent = _parent(locale, texts)
        tables = {table: dict(parts) for table, parts in texts.get(parent or "", {}).items()}
        for file in files[locale]:
            _overlay(tables, _read(file))
        texts[locale] = tables
        sources[locale] = [*sources.get(parent or "", []), *map(str, files[locale])]
    locales = {
        locale: _checked(locale, tables, " + ".join(sources[locale]))
        for locale, tables in texts.items()
    }
    try:
        default = normalise_locale(default_locale)
    except ValueError:
        raise TemplateError(f"message templates: default locale {default_locale!r}") from None
    if default not in locales:
        raise TemplateError(
            f"message templates: no templates for the default locale {default!r} "
            f"(there are: {', '.join(sorted(locales))})"
        )
    return MessageTemplates(locales, default, default_brand)


def _parent(locale: str, known: Mapping[str, Tables]) -> str | None:
    """The longest shorter prefix of ``locale`` that has texts (``fr`` for ``fr-CA``), if any."""
    tag = locale.rpartition("-")[0]
    while tag and tag not in known:
        tag = tag.rpartition("-")[0]
    return tag or None


def _overlay(tables: Tables, given: Tables) -> None:
    """``given``'s parts over ``tables``'."""
    for table, parts in given.items():
        current = tables.setdefault(table, {})
        if "email_text" in parts and "email_html" not in parts:
            current.pop("email_html", None)  # a new text is not hidden behind the old HTML
        current.update(parts)


def _locale_of(file: Path) -> str:
    try:
        return normalise_locale(file.stem)
    except ValueError:
        raise TemplateError(
            f"message templates: {file}: the file's name is not a locale (en.toml, fr-CA.toml)"
        ) from None


def _read(file: Path) -> Tables:
    """A file's tables, each of strings; unknown tables and parts are refused (a typo would
    otherwise fall back to a shipped text without a word)."""
    try:
        document = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise TemplateError(f"message templates: {file}: {error}") from None
    known = {"units": UNITS, **dict.fromkeys(PURPOSES, PARTS)}
    tables: Tables = {}
    for table, parts in document.items():
        if table not in known or not isinstance(parts, dict):
            raise TemplateError(
                f"message templates: {file}: unknown table [{table}] "
                f"(known: {', '.join(f'[{name}]' for name in known)})"
            )
        for part, text in parts.items():
            if part not in known[table]:
                raise TemplateError(
                    f"message templates: {file} [{table}]: unknown part {part!r} "
                    f"(known: {', '.join(known[table])})"
                )
            if not isinstance(text, str) or not text.strip():
                raise TemplateError(f"message templates: {file} [{table}] {part}: not a text")
        tables[table] = {part: text.strip() for part, text in parts.items()}
    return tables


def _checked(locale: str, tables: Mapping[str, Mapping[str, str]], source: str) -> LocaleTemplates:
    """One locale's templates, complete and each valid."""
    units = tables.get("units", {})
    missing = [f"[units] {unit}" for unit in UNITS if unit not in units]
    parts: dict[str, dict[str, Template]] = {}
    for purpose in PURPOSES:
        given = tables.get(purpose, {})
        missing += [
            f"[{purpose}] {part}"
            for part in PARTS
            if part not in given and part not in OPTIONAL_PARTS
        ]
        parts[purpose] = {
            part: _template(text, f"{source} [{purpose}] {part}", part)
            for part, text in given.items()
        }
    if missing:
        raise TemplateError(f"message templates: {source}: missing {', '.join(missing)}")
    return LocaleTemplates(locale, parts, dict(units))


def _template(text: str, where: str, part: str) -> Template:
    """``text`` as a template of ``part``, or a `TemplateError` saying what is wrong ``where``."""
    if part in ONE_LINE and len(text.splitlines()) > 1:
        raise TemplateError(f"message templates: {where}: must be one line (it is a mail header)")
    needs_code = part not in WITHOUT_CODE
    template = Template(text)
    if not template.is_valid():
        raise TemplateError(
            f"message templates: {where}: a $ that starts no placeholder (write $$ for a dollar sign)"
        )
    names = set(template.get_identifiers())
    if unknown := names - PLACEHOLDERS:
        raise TemplateError(
            f"message templates: {where}: unknown placeholder "
            f"{', '.join('$' + name for name in sorted(unknown))} "
            f"(known: {', '.join('$' + name for name in sorted(PLACEHOLDERS))})"
        )
    if needs_code and "code" not in names:
        raise TemplateError(f"message templates: {where}: has no $code")
    if not needs_code and "code" in names:
        raise TemplateError(f"message templates: {where}: must not show the $code")
    return template
