"""Structured JSON logs with correlation ids, and redaction of every credential-shaped field."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import structlog
from structlog.typing import EventDict

from signgate_contracts.credentials import credential_fields

REDACTED = "[redacted]"

# Field names whose values are credentials: every field the contracts type as a credential
# (`signgate_contracts.credentials`), and any name that looks like one. Matched case-insensitively
# on the name with separators removed, so `user_password`, `accessCode` and `Access-Token` are all caught.
_SECRET_NAME = re.compile(
    r"(password|passwd|accesscode|otp|^code$|token|secret|pepper|apikey|authorization|grant$)",
)


def _squashed(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


_CREDENTIAL_FIELDS = frozenset(_squashed(name) for name in credential_fields())


def is_secret_name(name: str) -> bool:
    squashed = _squashed(name)
    return squashed in _CREDENTIAL_FIELDS or bool(_SECRET_NAME.search(squashed))


def redact(value: Any) -> Any:
    """A copy of ``value`` with the values of secret-named keys replaced, at any depth."""
    if isinstance(value, Mapping):
        return {
            key: REDACTED if isinstance(key, str) and is_secret_name(key) else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    return value


def redact_processor(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: no credential field reaches a log line."""
    return redact(event_dict)


# structlog's `dict_tracebacks` renders every frame's locals, credentials included.
_DICT_TRACEBACKS = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)


SUBJECT: ContextVar[Mapping[str, Any] | None] = ContextVar("signgate_log_subject", default=None)
"""What the work in hand is about when no record is bound (a batch: its records' correlation ids;
a record being published: its own): named on every line written meanwhile that names no record."""


@contextmanager
def about(fields: Mapping[str, Any]) -> Iterator[None]:
    """Lines written inside the block, and naming no record of their own, carry ``fields``
    (a plain context variable: cheap enough for every record a relay publishes)."""
    token = SUBJECT.set(fields)
    try:
        yield
    finally:
        SUBJECT.reset(token)


def add_subject(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: a line naming no record names what the work in hand is about."""
    fields = SUBJECT.get()
    if fields and "correlation_id" not in event_dict:
        for key, value in fields.items():
            event_dict.setdefault(key, value)
    return event_dict


def drop_colour(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: uvicorn's ``color_message`` extra is its message with ANSI colour codes."""
    event_dict.pop("color_message", None)
    return event_dict


LIBRARY_LOGGERS = ("faststream", "uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
"""Loggers that come with a handler (and colour formatter) of their own: they go to the root's."""


def configure_logging(level: str = "INFO", fmt: str = "json", service: str | None = None) -> None:
    """Route structlog and the standard library (FastStream, uvicorn, aiokafka) through one JSON
    renderer: every line the process writes to stderr is one JSON object."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # `extra=` of standard-library records (FastStream, aiokafka); redacted like the rest.
        structlog.stdlib.ExtraAdder(),
        add_subject,
        drop_colour,
        redact_processor,
    ]
    if service:  # after the context: a line written while a record is handled names its service
        shared.insert(shared.index(add_subject) + 1, _bind_service(service))
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        # Tracebacks without frame locals: a local may hold a password or an OTP.
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        # Below the level a line costs one check, not the processors' work.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _DICT_TRACEBACKS if fmt == "json" else _identity,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.setLevel(
        level.upper()
    )  # libraries set their loggers' levels themselves (uvicorn: INFO)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        library.handlers[:] = []
        library.propagate = True
        library.disabled = False  # a logging.config call before this one may have disabled it
    logging.captureWarnings(True)  # a warning is a line like any other, not raw text on stderr


def _identity(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    return event_dict


def _bind_service(service: str) -> Any:
    def add_service(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        event_dict.setdefault("service", service)
        return event_dict

    return add_service


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
