"""Looking for secrets in what was published and logged, without tripping on ids and timestamps."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

_NOT_A_SECRET = re.compile(
    r"^(\d{4}-\d{2}-\d{2}[T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?"  # timestamps (microseconds look like codes)
    r"|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$"  # uuids
)


_DIGIT_RUN = re.compile(r"(?<![0-9A-Za-z])\d+(?![0-9A-Za-z])")
"""A run of digits standing on its own: inside hex digests and ids (``d25354f482913d39...``,
``sandbox-482913bc-...``) six digits in a row are common, and with hundreds of delivered codes
to look for, one of them now and then matches such a run by chance."""


def strings(document: Any) -> Iterator[str]:
    """Every string in a JSON document: keys and values, at any depth."""
    if isinstance(document, dict):
        for key, value in document.items():
            yield str(key)
            yield from strings(value)
    elif isinstance(document, list):
        for item in document:
            yield from strings(item)
    elif document is not None:
        yield str(document)


def leaks(texts: Iterable[str], secrets: Iterable[str]) -> list[tuple[str, str]]:
    """(secret, where) for every secret found in a text (a JSON document, or a plain line)."""
    secrets = [s for s in secrets if s]
    # a code is found where it is a whole run of digits: a set lookup per run, so thousands of
    # codes scan as fast as one (the chaos runs scan every code they delivered)
    codes = {s for s in secrets if s.isascii() and s.isdigit()}
    others = [(s, re.compile(rf"(?<!\d){re.escape(s)}(?!\d)")) for s in secrets if s not in codes]
    found = []
    for text in texts:
        try:
            values = list(strings(json.loads(text)))
        except (ValueError, RecursionError):
            values = [text]
        for value in values:
            if _NOT_A_SECRET.match(value):
                continue
            if codes:
                found += [(run, text[:200]) for run in _DIGIT_RUN.findall(value) if run in codes]
            found += [(secret, text[:200]) for secret, pattern in others if pattern.search(value)]
    return found


_ARGON2 = re.compile(r"\$argon2(id|i|d)\$")
_CLEAR_EMAIL = re.compile(r"(?<![\w.*+-])[\w.+-]*[A-Za-z][\w.+-]*(?<!\*)@[\w-]+(\.[\w-]+)*\.[a-z]{2,}",
                          re.IGNORECASE)
"""An email address whose local part is not masked (``a***@example.com`` is) and has a letter (an
SMTP message id, ``179628488529.25654.1530@signgate.localhost``, has none)."""
_CLEAR_PHONE = re.compile(r"\+\d{8,15}(?!\d)")
"""An E.164 number in full (``+44******0123`` is masked)."""
_JWT = re.compile(r"eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]{16,}")
"""A signed token: an access token, a grant or an invitation."""
_OTPAUTH = re.compile(r"otpauth://", re.IGNORECASE)
"""An authenticator app's provisioning URI: it holds a TOTP secret."""


def bus_findings(records: Iterable[Any], registry_kind: Any, caller_prefix: str) -> list[tuple[str, str, str]]:
    """(what, topic, excerpt) for each record that shows what its topic must not:

    - an argon2 hash anywhere but a command topic (where none is either, but a caller may send
      anything there);
    - an email address or a phone number in clear on an events topic or a dead-letter topic;
    - a token, grant or invitation anywhere but a command topic, a service's replies topic or a
      caller's own reply topic;
    - an otpauth URI (a TOTP secret) anywhere but a service's replies topic or a caller's own.

    ``registry_kind(topic)`` names the deployed topic's kind (``commands``, ``events``,
    ``replies``, ``requests``, ``dlq``) or None for a caller's topic."""
    found = []
    for record in records:
        topic = record.topic
        kind = "caller" if topic.startswith(caller_prefix) else registry_kind(topic)
        text = record.value.decode(errors="replace") if record.value else ""
        key = record.key.decode(errors="replace") if record.key else ""
        if kind != "commands" and _ARGON2.search(text):
            found.append(("argon2 hash", topic, text[:160]))
        if kind in ("events", "dlq"):
            for what, pattern in (("email in clear", _CLEAR_EMAIL), ("phone in clear", _CLEAR_PHONE)):
                for where in (text, key):
                    if match := pattern.search(where):
                        found.append((what, topic, match.group(0)))
        if kind not in ("commands", "replies", "caller") and _JWT.search(text):
            found.append(("token, grant or invitation", topic, text[:160]))
        if kind not in ("replies", "caller") and _OTPAUTH.search(text):
            found.append(("otpauth URI", topic, topic))  # the excerpt would show the secret
    return found


def bus_leaks(records: Iterable[Any], connections: Any) -> list[tuple[str, str, str]]:
    """`bus_findings` over records of a deployment's topics (``connections``: its `ConnectionSettings`)."""
    from signgate_contracts.topics import BY_NAME

    def kind(topic: str) -> str | None:
        name = connections.registry_name(topic)
        if name.endswith(".dlq"):
            return "dlq"
        registered = BY_NAME.get(name)
        return str(registered.kind) if registered else None

    return bus_findings(records, kind, connections.caller_reply_prefix)
