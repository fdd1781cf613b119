"""How the CLI and the demo show messages: one readable line each, secrets never shown."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, SecretStr
from rich.console import Console
from rich.table import Table
from rich.text import Text

from libs.security.masking import mask_contacts
from signgate_contracts.envelope import Command, Message
from signgate_contracts.rejection import CommandRejected
from signgate_contracts.workflow import HistoryEntry

ENVELOPE = frozenset(
    {
        "event_id",
        "type",
        "schema_version",
        "occurred_at",
        "correlation_id",
        "causation_id",
        "reply_to",
    }
)
HIDDEN = "•••"
_COLOURS = (
    "cyan",
    "magenta",
    "green",
    "yellow",
    "blue",
    "bright_cyan",
    "bright_magenta",
    "bright_green",
)


def fields(message: BaseModel) -> dict[str, Any]:
    """A message's own fields (not the envelope): secrets replaced by a mark, contacts masked."""
    shown = {
        name: _shown(getattr(message, name))
        for name in type(message).model_fields
        if name not in ENVELOPE and getattr(message, name) is not None
    }
    return _masked(shown)


def _masked(value: Any) -> Any:
    """Contacts masked at any depth; values that are masked already are left as they are."""
    if isinstance(value, dict):
        return {
            key: item
            if isinstance(item, str) and "*" in item
            else mask_contacts({key: _masked(item)})[key]
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_masked(item) for item in value]
    return value


def _shown(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return HIDDEN
    if isinstance(value, BaseModel):
        return fields(value)
    if isinstance(value, list):
        return [_shown(item) for item in value]
    if isinstance(value, dict):
        return {key: _shown(item) for key, item in value.items()}
    return value


SECRET_FIELDS = frozenset(
    {"password", "user_password", "accessCode", "access_code", "otp", "invitation", "access_grant"}
)
"""Fields of the gateway's JSON bodies (sent or answered) that hold a secret."""


def body_shown(value: Any) -> Any:
    """A JSON body as the demo prints it: secret fields replaced by a mark, contacts masked."""
    if isinstance(value, dict):
        return _masked(
            {
                key: HIDDEN
                if key in SECRET_FIELDS and isinstance(item, str) and item
                else body_shown(item)
                for key, item in value.items()
            }
        )
    if isinstance(value, list):
        return [body_shown(item) for item in value]
    return value


def http_line(
    arrow: str, head: str, body: Any = None, *, width: int = 160, failed: bool = False
) -> Text:
    """``→ PUT /v3/...  headers  body`` for a request, ``← 200 OK  body`` for its answer."""
    line = Text(f"{arrow} ")
    line.append(head, style="bold red" if failed else "bold")
    if isinstance(body, Mapping):
        text = summary(body_shown(body), width) if body else "{}"
        line.append("  " + text, style="red" if failed else "dim")
    elif body:
        line.append("  " + str(body), style="red" if failed else "dim")
    return line


def summary(values: Mapping[str, Any], width: int = 160) -> str:
    """``key=value`` pairs on one line, nested values compact, cut at ``width``."""
    text = " ".join(f"{key}={compact(value)}" for key, value in values.items())
    return text if len(text) <= width else text[: width - 1] + "…"


def compact(value: Any) -> str:
    """A value on one line: mappings as {k: v}, long lists as their length."""
    if isinstance(value, list) and len(value) > 3:
        return f"[{len(value)} items]"
    if isinstance(value, Mapping):
        return (
            "{" + ", ".join(f"{k}: {compact(v)}" for k, v in value.items() if v is not None) + "}"
        )
    if isinstance(value, list):
        return "[" + ", ".join(compact(v) for v in value) + "]"
    return str(value)


def colour_of(correlation_id: object) -> str:
    """A stable colour per correlation id, so one command's messages read as a group."""
    return _COLOURS[hashlib.sha256(str(correlation_id).encode()).digest()[0] % len(_COLOURS)]


def message_line(message: Message, *, arrow: str | None = None, width: int = 160) -> Text:
    """``→ type  fields`` for a command, ``← type  fields`` for what answered; rejections in red."""
    arrow = arrow or ("→" if isinstance(message, Command) else "←")
    style = "bold red" if isinstance(message, CommandRejected) else "bold"
    line = Text(f"{arrow} ")
    line.append(message.type, style=style)
    shown = fields(message)
    if shown:
        line.append(
            "  " + summary(shown, width),
            style="dim" if not isinstance(message, CommandRejected) else "red",
        )
    return line


def history_table(package_id: str, entries: Iterable[HistoryEntry]) -> Table:
    """A package's history, oldest first."""
    table = Table(title=f"history of {package_id}", title_justify="left")
    for column in ("#", "when (UTC)", "actor", "action", "order", "details"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        table.add_row(
            str(entry.sequence),
            entry.occurred_at.strftime("%H:%M:%S.%f")[:-3],
            _short_actor(entry.actor),
            entry.action,
            "" if entry.order is None else str(entry.order),
            Text(summary(entry.details, 100)),
        )
    return table


def console(**options: Any) -> Console:
    """A console as wide as the terminal, or 160 columns when output goes to a file or a pipe.

    Strings print as they are: no markup (``[bold]``), no emoji codes (``:email:``), no
    highlighting, since what is printed is data (names, reasons, topics); styles come as ``Text``.
    """
    options = {"markup": False, "emoji": False, "highlight": False, **options}
    wide = Console(**options)
    return wide if wide.is_terminal else Console(width=160, **options)


def _short_actor(actor: str) -> str:
    return actor if len(actor) <= 20 else actor[:8] + "…"
