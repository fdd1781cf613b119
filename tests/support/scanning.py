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
