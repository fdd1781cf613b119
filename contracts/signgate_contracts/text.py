"""Text every signgate store can keep: no NUL character and no lone surrogate.

Postgres refuses both in ``text`` and ``jsonb`` (a NUL) or cannot be sent them at all (a lone
surrogate is not UTF-8), and a statement that fails inside a transaction aborts it. So the
contracts refuse such text in any field, at any depth, before a service acts on it: the
caller gets a 400 naming the field instead of a failure deep inside a use case.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, overload

from pydantic import SecretStr

Path = tuple[str | int, ...]


def storable(text: str) -> bool:
    """Whether ``text`` holds neither a NUL nor a lone surrogate."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def unstorable_at(value: Any) -> Path | None:
    """The path of the first string (or mapping key) in ``value`` that is not storable, if any."""
    return None if _clean(value) else _first_unstorable(value, ())


_ATOMS = frozenset({int, float, bool, type(None)})


def _clean(value: Any) -> bool:
    """Whether every string in ``value`` is storable: the fast check every message goes through."""
    kind = type(value)
    if kind is str:
        return storable(value)
    if kind is dict:
        for key, item in value.items():
            if type(key) is str and ("\x00" in key or not (key.isascii() or storable(key))):
                return False
            if type(item) is str:
                if "\x00" in item or not (item.isascii() or storable(item)):
                    return False
            elif type(item) not in _ATOMS and not _clean(item):
                return False
        return True
    if kind is list or kind is tuple:
        return all(type(item) in _ATOMS or _clean(item) for item in value)
    return _first_unstorable(value, ()) is None


def _first_unstorable(value: Any, path: Path) -> Path | None:
    if isinstance(value, str):
        return None if storable(value) else path
    if isinstance(value, SecretStr):
        return None if storable(value.get_secret_value()) else path
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str) and not storable(key):
                return (*path, printable(key))
            found = _first_unstorable(
                item, (*path, key if isinstance(key, str | int) else str(key))
            )
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _first_unstorable(item, (*path, index))
            if found is not None:
                return found
    return None


@overload
def printable(text: str) -> str: ...
@overload
def printable(text: None) -> None: ...
def printable(text: str | None) -> str | None:
    """``text`` with NULs and lone surrogates written as escapes: safe to echo and to store."""
    if text is None or storable(text):
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
