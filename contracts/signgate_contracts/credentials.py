"""Which fields of the contracts are credentials: every field typed `Secret` (a `SecretStr`).

Redaction (of logs, dead letters) follows this list, taken from the models themselves, so a
credential field added to a contract is redacted without anyone remembering to say so.
Both the Python name and the wire name (an alias such as ``accessCode``) are listed.
"""

from __future__ import annotations

import types
import typing
from functools import cache
from typing import Any

from pydantic import AliasChoices, BaseModel, SecretStr

from signgate_contracts.topics import TOPICS


def _types_in(annotation: Any) -> typing.Iterator[Any]:
    """``annotation`` and every type it is made of (unions, lists, dicts, Annotated)."""
    yield annotation
    for argument in typing.get_args(annotation):
        yield from _types_in(argument)


def _is_secret(annotation: Any) -> bool:
    return any(t is SecretStr for t in _types_in(annotation))


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    return [
        t
        for t in _types_in(annotation)
        if isinstance(t, type)
        and not isinstance(t, types.GenericAlias)
        and issubclass(t, BaseModel)
    ]


def credential_fields_of(models: typing.Iterable[type[BaseModel]]) -> frozenset[str]:
    """The names (Python and wire) of the credential fields of ``models`` and the models they nest."""
    names: set[str] = set()
    seen: set[type[BaseModel]] = set()
    pending = list(models)
    while pending:
        model = pending.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, field in model.model_fields.items():
            if _is_secret(field.annotation):
                names |= {
                    name,
                    *(a for a in (field.alias, field.serialization_alias) if isinstance(a, str)),
                }
                if isinstance(field.validation_alias, str):
                    names.add(field.validation_alias)
                elif isinstance(field.validation_alias, AliasChoices):
                    names |= {c for c in field.validation_alias.choices if isinstance(c, str)}
            pending += _nested_models(field.annotation)
    return frozenset(names)


@cache
def credential_fields() -> frozenset[str]:
    """Every credential field of every message of the registry."""
    return credential_fields_of(message for topic in TOPICS for message in topic.messages)
