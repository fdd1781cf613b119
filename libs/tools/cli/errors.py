"""The CLI's exit codes and its one error line: every failure is classified here, in one place.

A command ends with one of ``ExitCode``; anything but ``OK`` writes exactly one line on stderr,
``error: <what>: <why>`` (with ``--json``, one JSON object: ``{"error": kind, "exit_code": n,
"message": ...}``). Library log lines (aiokafka logs why a broker could not be reached and then
raises a bare "Unable to bootstrap") are collected rather than printed, and used as the why.
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from aiokafka import errors as kafka
from pydantic import ValidationError

from libs.tools.cli.stack import NoStack
from signgate_client import OutcomeTimeout
from signgate_client.security import KafkaSecurityError, KafkaTlsError
from signgate_contracts.rejection import CommandRejected


class ExitCode(IntEnum):
    """What a ``signgate`` command's exit status means (documented in the README)."""

    OK = 0
    REFUSED = 1
    """The command was answered with ``command.rejected``."""
    USAGE = 2
    """The command line is wrong or incomplete (typer's own checks; no token to act with)."""
    BAD_INPUT = 3
    """What was given is not a valid command: invalid JSON, an unknown field, a failed check."""
    UNREACHABLE = 4
    """No broker answered: none running, refused or timed out connections, a broker error."""
    NOT_AUTHORISED = 5
    """The broker or this client refused the connection's security: TLS, SASL, an ACL."""
    TIMEOUT = 6
    """Connected and sent, but the outcome did not arrive within ``--timeout``."""
    SECOND_FACTOR_REQUIRED = 7
    """``send authenticate`` was answered ``second_factor_required``: run it again with ``--code``."""
    INTERNAL = 70
    """A defect of the CLI itself (sysexits' EX_SOFTWARE); the traceback follows the line."""
    INTERRUPTED = 130
    """Ctrl-C (typer's own)."""
    PIPE_CLOSED = 141
    """Whoever read stdout stopped (``| head``); nothing more is written, as after SIGPIPE."""


@dataclass
class CliError(Exception):
    """A failure the CLI explains in one line and ends with ``code``."""

    code: ExitCode
    what: str
    why: str

    def __str__(self) -> str:
        return f"{self.what}: {self.why}"


_SECURITY = (
    KafkaSecurityError,  # the client's own diagnosis of a refused TLS or SASL
    ssl.SSLError,
    kafka.AuthenticationFailedError,
    kafka.AuthenticationMethodNotSupported,
    kafka.SaslAuthenticationFailed,
    kafka.UnsupportedSaslMechanismError,
    kafka.IllegalSaslStateError,
    kafka.TopicAuthorizationFailedError,
    kafka.GroupAuthorizationFailedError,
    kafka.ClusterAuthorizationFailedError,
    kafka.TransactionalIdAuthorizationFailed,
)


_UNREACHABLE = (
    kafka.KafkaConnectionError,
    kafka.NoBrokersAvailable,
    ConnectionError,
    socket.gaierror,
)


def classify(
    error: BaseException, logged: Sequence[BaseException] = (), *, broker: str | None = None
) -> CliError | None:
    """The exit code and line for ``error``; ``logged``: the errors libraries logged before it
    (why a connection failed); ``broker``: the bootstrap used. None for what is not an expected
    failure (a defect)."""
    connecting = isinstance(error, _UNREACHABLE) or (
        isinstance(error, CliError) and error.code is ExitCode.UNREACHABLE
    )
    security = next(
        (c for c in [*_chain(error), *(logged if connecting else ())] if isinstance(c, _SECURITY)),
        None,
    )
    if security is not None:
        what = (
            "TLS with the broker failed"
            if isinstance(security, ssl.SSLError | KafkaTlsError)
            else "not authorised"
        )
        return CliError(ExitCode.NOT_AUTHORISED, what, _text(security))
    if isinstance(error, CliError):
        return error
    if isinstance(error, NoStack):
        what, _, why = str(error).partition(": ")
        return CliError(ExitCode.UNREACHABLE, what, why or what)
    if isinstance(error, OutcomeTimeout):
        return CliError(ExitCode.TIMEOUT, "timeout", str(error))
    if isinstance(error, ValidationError):
        return CliError(ExitCode.BAD_INPUT, f"invalid {error.title}", validation_why(error))
    if isinstance(error, json.JSONDecodeError):
        where = f"line {error.lineno} column {error.colno}"
        return CliError(ExitCode.BAD_INPUT, "invalid JSON", f"{error.msg} at {where}")
    if isinstance(error, _UNREACHABLE):
        reasons = dict.fromkeys(_text(c) for c in logged)  # why each address failed, once
        return CliError(
            ExitCode.UNREACHABLE,
            f"cannot reach the broker at {broker}" if broker else "cannot reach the broker",
            "; ".join(reasons) or _text(error),
        )
    if isinstance(error, kafka.KafkaError):
        return CliError(
            ExitCode.UNREACHABLE, "the broker could not serve the request", _text(error)
        )
    return None


def refused(rejection: CommandRejected) -> CliError:
    """The line for a refusal: the command, the status and code, the service's message."""
    return CliError(
        ExitCode.REFUSED,
        f"refused {rejection.command_type or 'the command'}",
        f"{rejection.status} {rejection.code}: {rejection.message}"
        + (f" (field {rejection.field})" if rejection.field else ""),
    )


def validation_why(error: ValidationError) -> str:
    """Each failed check as ``field: message``, the field as a dotted path."""
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or '(document)'}: {e['msg']}" for e in error.errors()
    )


def report(error: CliError, *, as_json: bool) -> None:
    """Write the one stderr line for ``error``."""
    if as_json:
        line = json.dumps(
            {"error": error.code.name.lower(), "exit_code": int(error.code), "message": str(error)}
        )
    else:
        line = f"error: {error}"
    print(line.replace("\n", " "), file=sys.stderr)


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _text(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split())


class _Collected(logging.Handler):
    """Keeps the exceptions library log records carry (aiokafka logs why a connection failed)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.errors: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        args: Any = record.args
        found = [a for a in args if isinstance(a, BaseException)] if isinstance(args, tuple) else []
        if record.exc_info and record.exc_info[1] is not None:
            found.append(record.exc_info[1])
        self.errors += found


@contextmanager
def library_logs(*, verbose: bool) -> Iterator[list[BaseException]]:
    """Collect what libraries log while a command runs; shown on stderr only when ``verbose``."""
    collected = _Collected()
    root = logging.getLogger()
    shown = logging.StreamHandler(sys.stderr) if verbose else None
    previous = root.level
    root.addHandler(collected)
    if shown is not None:
        root.addHandler(shown)
        root.setLevel(logging.INFO)
    try:
        yield collected.errors
    finally:
        root.removeHandler(collected)
        if shown is not None:
            root.removeHandler(shown)
        root.setLevel(previous)
